"""The "Gemini batch job" extra link: where a person looks at the task's job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.execution_time.xcom import TaskInstanceKey  # type: ignore[attr-defined]

AI_STUDIO_BATCHES_URL = "https://aistudio.google.com/batches"


def batch_console_url(batch_name: str, base_url: str | None = None) -> str:
    """Where a person looks at the job.

    With the Gemini API: AI Studio's batch page, which lists jobs by display name (the task's
    identity is in it); AI Studio has no documented address for one job. With a connection whose
    ``base_url`` points elsewhere (the bundled emulator), that server's own page of the job, since AI
    Studio would not know it.
    """
    if base_url:
        return f"{base_url.rstrip('/')}/_emulator/{batch_name}"
    return AI_STUDIO_BATCHES_URL


class GeminiBatchJobLink(BaseOperatorLink):
    """Opens the task's batch job in the Google console; the URL is stored in XCom when the job is known."""

    name = "Gemini batch job"

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        context["ti"].xcom_push(key=cls().xcom_key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return value if isinstance(value, str) else ""
