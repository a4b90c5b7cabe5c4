"""Deferred creates whose jobs never end: one stopped by ``execution_timeout`` (which Airflow does not
enforce on a deferred task, so the trigger keeps it), one by ``wait_timeout``."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

DEFERRED_CREATE = {
    "model": "gemini-2.5-flash",
    "records": [{"id": 1, "name": "kettle"}],
    "prompt_template": "Describe {name} in one line.",
    "key_field": "id",
    "wait_for_completion": True,
    "deferrable": True,
    "poll_interval": 1,
}


@dag(schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False)
def chaos_timeouts() -> None:
    GeminiBatchCreateOperator(
        task_id="execution_timeout", execution_timeout=datetime.timedelta(seconds=20), **DEFERRED_CREATE
    )
    GeminiBatchCreateOperator(task_id="wait_timeout", wait_timeout=20, **DEFERRED_CREATE)


chaos_timeouts()
