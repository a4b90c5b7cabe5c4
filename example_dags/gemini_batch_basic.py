"""The simplest path: a JSONL file of prompts in, a JSONL file of Gemini's answers out, at batch price.

Each input line is ``{"key": ..., "request": GenerateContentRequest}``; the file can sit on any object
storage (``s3://``, ``gs://``, a local path). The create task checks every line before anything is
uploaded, the sensor waits in the triggerer, and the results land as Gemini returned them.

Variables (both optional): ``gemini_basic_input`` (default: the sample prompts beside this file) and
``gemini_basic_output_dir`` (default: ``/tmp/gemini-basic``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

SAMPLE_PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
INPUT = "{{ var.value.get('gemini_basic_input', '" + str(SAMPLE_PROMPTS) + "') }}"
OUTPUT_DIR = "{{ var.value.get('gemini_basic_output_dir', '/tmp/gemini-basic') }}"


@dag(schedule=None, start_date=datetime.datetime(2026, 11, 1), catchup=False, tags=["gemini", "example"])
def gemini_batch_basic():
    create = GeminiBatchCreateOperator(task_id="create", model="gemini-2.5-flash", input_path=INPUT)
    wait = GeminiBatchSensor(task_id="wait", batch_name=create.output["batch_name"], deferrable=True)
    store = GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name=create.output["batch_name"],
        destination=OUTPUT_DIR + "/results-{{ (logical_date or dag_run.run_after) | ds }}.jsonl",
        output_format="jsonl",
    )
    create >> wait >> store


gemini_batch_basic()
