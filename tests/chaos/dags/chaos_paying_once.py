"""Creates for the chaos tests that are about paying once: a create whose task process is killed while
its request is held by the server (retried), and one whose model comes from a Variable (cleared after
the Variable changes)."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

RECORDS = [{"id": 1, "name": "kettle"}, {"id": 2, "name": "desk lamp"}]
RETRIED = {"retries": 1, "retry_delay": datetime.timedelta(seconds=0)}


@dag(schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False, default_args=RETRIED)
def chaos_killed_create() -> None:
    GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        records=RECORDS,
        prompt_template="Describe {name} in one line.",
        key_field="id",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
    )


@dag(schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False)
def chaos_model_from_variable() -> None:
    GeminiBatchCreateOperator(
        task_id="create",
        model="{{ var.value.chaos_model }}",
        records=RECORDS,
        prompt_template="Describe {name} in one line.",
        key_field="id",
    )


chaos_killed_create()
chaos_model_from_variable()
