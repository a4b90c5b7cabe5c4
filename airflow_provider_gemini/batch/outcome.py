"""How a finished job is judged: every terminal state, and the failed-request threshold."""

from __future__ import annotations

from airflow_provider_gemini.batch.errors import BatchJobError
from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState


def check_outcome(job: BatchJobInfo, max_failed_request_ratio: float | None = 0.0) -> None:
    """Raise :class:`BatchJobError` unless the job succeeded with few enough failed requests.

    :param job: a job in a terminal state.
    :param max_failed_request_ratio: the share of failed requests tolerated (0 = none, 1 = all;
        None: not judged here, as by a wait whose results the store judges after writing them).
    """
    said = f": {job.error}" if job.error else ""
    ids = {"batch_name": job.name, "state": job.state.value}
    if job.state is BatchState.FAILED:
        raise BatchJobError(f"Gemini batch {job.name} failed{said or ' (the API gave no reason)'}", **ids)
    if job.state is BatchState.CANCELLED:
        raise BatchJobError(f"Gemini batch {job.name} was cancelled{said}", **ids)
    if job.state is BatchState.EXPIRED:
        raise BatchJobError(
            f"Gemini batch {job.name} expired before it finished (jobs pending or running "
            f"for more than 48 hours expire){said}",
            **ids,
        )
    if not job.state.has_results:
        raise BatchJobError(f"Gemini batch {job.name} is not finished (state {job.state.value})", **ids)
    stats = job.stats
    if max_failed_request_ratio is not None and stats.failed and stats.request_count:
        ratio = stats.failed / stats.request_count
        if ratio > max_failed_request_ratio:
            ended = job.state.value.lower().replace("_", " ")
            raise BatchJobError(
                f"Gemini batch {job.name} {ended} but {stats.failed} of {stats.request_count} "
                f"requests failed ({ratio:.1%}), over max_failed_request_ratio={max_failed_request_ratio}",
                **ids,
            )
