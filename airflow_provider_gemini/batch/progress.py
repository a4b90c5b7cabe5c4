"""Progress lines from ``batchStats``, logged only when they change."""

from __future__ import annotations

from airflow_provider_gemini.batch.jobs import BatchJobInfo


def format_progress(job: BatchJobInfo) -> str:
    """``batches/x RUNNING: 1200/5000 done, 3 failed, 24%``."""
    stats = job.stats
    head = f"{job.name} {job.state.value}"
    if not stats.request_count:
        return head
    percent = 100 * stats.done // stats.request_count
    return f"{head}: {stats.done}/{stats.request_count} done, {stats.failed} failed, {percent}%"


class ProgressLog:
    """Remembers the last progress line so a poll loop logs only news."""

    def __init__(self) -> None:
        self._last: str | None = None

    def update(self, job: BatchJobInfo) -> str | None:
        line = format_progress(job)
        if line == self._last:
            return None
        self._last = line
        return line
