"""For the distributed e2e: a create task that waits for its job on the worker, holding a worker slot
(``wait_for_completion=True, deferrable=False``), so that a worker lost mid-wait leaves a paid job
behind. The retry must re-attach to that job rather than pay for a second one."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

OUTPUT_DIR = "{{ var.value.get('gemini_enrichment_dir', '/tmp/gemini-enrichment') }}"
QUESTIONS = ["Name a colour.", "Name a river.", "Name a mountain."]


@dag(
    schedule=None,
    start_date=datetime.datetime(2026, 11, 1),
    catchup=False,
    tags=["gemini", "e2e"],
    default_args={"retries": 2, "retry_delay": datetime.timedelta(seconds=2)},
)
def gemini_worker_loss():
    create = GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        requests=[
            {"key": f"q{n}", "request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}}
            for n, text in enumerate(QUESTIONS)
        ],
        wait_for_completion=True,
        deferrable=False,
        poll_interval=2,
    )
    GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name=create.output["batch_name"],
        destination=OUTPUT_DIR + "/worker-loss-{{ ds }}.jsonl",
        output_format="jsonl",
    )


gemini_worker_loss()
