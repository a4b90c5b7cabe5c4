"""An input too large for one job, split into shards and fanned out with dynamic task mapping.

A catalogue of product rows is split (with the provider's own :func:`split_requests_file`) into files
of at most ``MAX_ROWS_PER_JOB`` requests; each shard is submitted, waited for in the triggerer and
stored by its own mapped task group, so a failing shard is retried alone. One summary task then adds
up the shards' manifests: rows, failures, tokens and cost.

Variables (optional): ``gemini_sharded_input`` (a request JSONL file; default: the sample beside this
file) and ``gemini_sharded_dir`` (where shards and results go; default ``/tmp/gemini-sharded``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airflow.sdk import dag, task, task_group

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

MAX_ROWS_PER_JOB = 4
SAMPLE_PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
INPUT = "{{ var.value.get('gemini_sharded_input', '" + str(SAMPLE_PROMPTS) + "') }}"
WORK_DIR = "{{ var.value.get('gemini_sharded_dir', '/tmp/gemini-sharded') }}/{{ run_id | replace(':', '_') }}"


@dag(schedule=None, start_date=datetime.datetime(2026, 11, 1), catchup=False, tags=["gemini", "example"])
def gemini_batch_sharded():
    @task
    def split(source: str, work_dir: str) -> list[str]:
        from airflow_provider_gemini.storage import split_requests_file

        shards = split_requests_file(source, f"{work_dir}/shards", max_rows=MAX_ROWS_PER_JOB)
        print(f"{len(shards)} shards: " + ", ".join(f"{s.rows} rows" for s in shards))
        return [shard.path for shard in shards]

    @task_group
    def shard_batch(shard: str):
        create = GeminiBatchCreateOperator(task_id="create", model="gemini-2.5-flash", input_path=shard)
        wait = GeminiBatchSensor(task_id="wait", batch_name=create.output["batch_name"], deferrable=True)
        store = GeminiBatchResultsToStorageOperator(
            task_id="store",
            batch_name=create.output["batch_name"],
            destination=WORK_DIR + "/results/shard-{{ ti.map_index }}.jsonl",
            output_format="flat_jsonl",
        )
        create >> wait >> store
        return store.output

    @task
    def summarize(manifests: list[dict]) -> dict:
        from airflow_provider_gemini.batch.sharding import sum_manifests

        summary = sum_manifests(manifests)
        print(
            f"{summary['shards']} shards, {summary['rows']} rows, {summary['failed']} failed, "
            f"tokens {summary['tokens']}, cost {summary['cost']}"
        )
        return summary

    summarize(shard_batch.expand(shard=split(INPUT, WORK_DIR)))


gemini_batch_sharded()
