"""Many runs of one deferred create at once, all waiting in one triggerer."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator


@dag(schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False, max_active_runs=200)
def chaos_fleet() -> None:
    GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        records=[{"id": 1, "name": "kettle"}],
        prompt_template="Describe {name} in one line.",
        key_field="id",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
    )


chaos_fleet()
