"""The pure parts of the batches page: which task instance a job belongs to, its progress, and the
spend per DAG with every batch counted once."""

from __future__ import annotations

import pytest

from airflow_provider_gemini.batch.identity import display_name_for, job_identity
from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState, BatchStats
from airflow_provider_gemini.plugins.rows import (
    DAY,
    Manifest,
    TaskInstanceRef,
    first_manifest_per_batch,
    index_task_instances,
    instance_part,
    job_row,
    owner_of,
    progress,
    spend_by_dag,
    task_url,
    visible,
)

CREATE = TaskInstanceRef("enrich", "create", "scheduled__2026-11-24T00:00:00+00:00")
MAPPED = TaskInstanceRef("shards", "group.create", "manual__1", 3)


def made_by(ref: TaskInstanceRef, fingerprint: str = "abc", prefix: str | None = None) -> BatchJobInfo:
    identity = job_identity(ref.dag_id, ref.task_id, ref.run_id, ref.map_index, fingerprint)
    name = display_name_for(identity, prefix or f"{ref.dag_id}.{ref.task_id}")
    return BatchJobInfo(name="batches/1", state=BatchState.RUNNING, display_name=name)


def manifest(dag_id: str, batch: str, cost: float, age_days: float, **extra: object) -> Manifest:
    value = {"batch_name": batch, "cost": {"batch": cost, "standard": 2 * cost}, "tokens": {"total": 7}}
    return Manifest(TaskInstanceRef(dag_id, "store", "r"), 1_000 * DAY - age_days * DAY, {**value, **extra})


@pytest.mark.parametrize("fingerprint", ["abc", "another input"])
@pytest.mark.parametrize("prefix", [None, "my job", "x" * 200])
def test_a_job_is_traced_to_the_task_instance_that_made_it(fingerprint: str, prefix: str | None) -> None:
    index = index_task_instances([CREATE, MAPPED])
    assert owner_of(made_by(CREATE, fingerprint, prefix), index) == CREATE
    assert owner_of(made_by(MAPPED, fingerprint, prefix), index) == MAPPED


def test_jobs_of_unknown_task_instances_or_other_tools_have_no_owner() -> None:
    index = index_task_instances([CREATE])
    other_run = TaskInstanceRef(CREATE.dag_id, CREATE.task_id, "manual__2")
    assert owner_of(made_by(other_run), index) is None
    for name in (None, "", "history-12", "nightly-0123456789abcdef0123", "x-0123456789ABCDEF0123"):
        assert (
            owner_of(BatchJobInfo(name="batches/2", state=BatchState.RUNNING, display_name=name), index)
            is None
        )
    assert instance_part("p-0123456789ab01234567") == "0123456789ab"


def test_progress_is_shares_of_the_request_count() -> None:
    job = BatchJobInfo("batches/1", BatchState.RUNNING, stats=BatchStats(8, succeeded=5, failed=1, pending=2))
    assert progress(job) == {
        "total": 8,
        "succeeded": 5,
        "failed": 1,
        "pending": 2,
        "succeeded_pct": 62.5,
        "failed_pct": 12.5,
    }
    assert progress(BatchJobInfo("batches/2", BatchState.PENDING))["total"] == 0


def test_a_batch_counts_once_and_the_submitting_run_wins() -> None:
    first = manifest("a", "batches/1", 1.0, age_days=2)
    again = manifest("a", "batches/1", 1.0, age_days=1, reattached=True)
    earlier_reattached = manifest("b", "batches/2", 3.0, age_days=5, reattached=True)
    submitted = manifest("b", "batches/2", 3.0, age_days=4, reattached=False)
    chosen = first_manifest_per_batch([again, first, earlier_reattached, submitted, manifest("c", "", 9, 1)])
    assert chosen == {"batches/1": first, "batches/2": submitted}


def test_spend_per_dag_sums_each_window() -> None:
    manifests = first_manifest_per_batch(
        [
            manifest("a", "batches/1", 1.5, age_days=1),
            manifest("a", "batches/1", 1.5, age_days=1, reattached=True),  # the same batch again
            manifest("a", "batches/2", 2.0, age_days=10),
            manifest("b", "batches/3", 0.25, age_days=6.9),
            manifest("b", "batches/4", 4.0, age_days=31),
        ]
    )
    assert spend_by_dag(manifests, now=1_000 * DAY) == [
        {"dag_id": "a", "cost_7d": 1.5, "cost_30d": 3.5},
        {"dag_id": "b", "cost_7d": 0.25, "cost_30d": 0.25},
    ]


def test_a_row_carries_the_manifest_figures_and_the_owner() -> None:
    job = made_by(CREATE)
    row = job_row(job, CREATE, manifest("enrich", job.name, 0.5, 1))
    assert row["task"] == {"dag_id": "enrich", "task_id": "create", "run_id": CREATE.run_id, "map_index": -1}
    assert (row["tokens"], row["cost"]["batch"], row["live"]) == ({"total": 7}, 0.5, True)
    assert job_row(job, None, None)["cost"] is None


def test_visibility_follows_dag_and_connection_access() -> None:
    assert visible(CREATE, {"enrich"}, sees_unlinked=False)
    assert not visible(CREATE, {"other"}, sees_unlinked=True)
    assert visible(None, set(), sees_unlinked=True)
    assert not visible(None, {"enrich"}, sees_unlinked=False)


def test_task_links_open_the_task_instance_in_the_grid() -> None:
    assert task_url("", CREATE) == (
        "/dags/enrich/runs/scheduled__2026-11-24T00%3A00%3A00%2B00%3A00/tasks/create"
    )
    assert task_url("/airflow", MAPPED) == "/airflow/dags/shards/runs/manual__1/tasks/group.create/mapped/3"
