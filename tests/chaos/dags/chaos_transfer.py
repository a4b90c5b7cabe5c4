"""A results transfer of an existing job (``batch_name`` in the run's conf) to a local folder; the chaos
test kills its task process mid-stream, and the retry must leave exactly the finished files."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator


@dag(
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=0)},
)
def chaos_transfer() -> None:
    GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name="{{ dag_run.conf['batch_name'] }}",
        destination="{{ dag_run.conf['destination'] }}",
        output_format="jsonl",
    )


chaos_transfer()
