"""A create task that waits for its own job in the triggerer: the user-action e2e tests clear it, mark
it successful and mark it failed while it is deferred."""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator


@dag(dag_id="gemini_user_actions", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False)
def gemini_user_actions() -> None:
    GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        records=[{"id": 1, "name": "kettle"}, {"id": 2, "name": "desk lamp"}],
        prompt_template="Describe {name} in one line.",
        key_field="id",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
    )


gemini_user_actions()
