"""What the batches page shows, computed from plain data: no Airflow, FastAPI or SDK imports here.

A job made by our create operator carries its task instance's identity at the end of its display
name (``<prefix>-<12 hex: task instance><8 hex: submission>``, see ``batch/identity.py``). The hash
cannot be reversed, so the page hashes the create task instances Airflow knows and matches the parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_gemini.batch.identity import SUBMISSION_PART, TASK_INSTANCE_PART, job_identity
from airflow_provider_gemini.batch.jobs import LIVE_STATES, BatchJobInfo

_IDENTITY = re.compile(rf"-([0-9a-f]{{{TASK_INSTANCE_PART}}})[0-9a-f]{{{SUBMISSION_PART}}}$")
DAY = 86_400.0
WINDOWS = (7, 30)


@dataclass(frozen=True)
class TaskInstanceRef:
    """Where a job came from: one task instance of one DAG run."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Manifest:
    """A results operator's XCom return value, with where and when it was written."""

    task: TaskInstanceRef
    written_at: float  # epoch seconds
    value: Mapping[str, Any]

    @property
    def batch_name(self) -> str | None:
        name = self.value.get("batch_name")
        return name if isinstance(name, str) and name else None

    @property
    def batch_cost(self) -> float:
        cost = self.value.get("cost") or {}
        return float(cost.get("batch") or 0.0) if isinstance(cost, Mapping) else 0.0


def instance_part(display_name: str | None) -> str | None:
    """The task-instance part of the identity at the end of a display name, if it has one."""
    match = _IDENTITY.search(display_name or "")
    return match.group(1) if match else None


def instance_key(ref: TaskInstanceRef) -> str:
    """The task-instance part the create operator put in the display name of ``ref``'s jobs."""
    return job_identity(ref.dag_id, ref.task_id, ref.run_id, ref.map_index, "")[:TASK_INSTANCE_PART]


def index_task_instances(refs: Iterable[TaskInstanceRef]) -> dict[str, TaskInstanceRef]:
    return {instance_key(ref): ref for ref in refs}


def owner_of(job: BatchJobInfo, index: Mapping[str, TaskInstanceRef]) -> TaskInstanceRef | None:
    part = instance_part(job.display_name)
    return index.get(part) if part else None


def progress(job: BatchJobInfo) -> dict[str, float | int]:
    """Shares of the request count (percent) for the bar; pending is what is neither done nor failed."""
    stats = job.stats
    total = max(0, stats.request_count)
    succeeded, failed = (stats.succeeded, stats.failed) if total else (0, 0)
    return {
        "total": total,
        "succeeded": succeeded,
        "failed": failed,
        "pending": max(0, total - succeeded - failed),
        "succeeded_pct": round(100.0 * succeeded / total, 2) if total else 0.0,
        "failed_pct": round(100.0 * failed / total, 2) if total else 0.0,
    }


def first_manifest_per_batch(manifests: Iterable[Manifest]) -> dict[str, Manifest]:
    """One manifest per batch: a job re-attached by a later run is stored (and billed) once, so the
    manifest of the run that submitted it counts, else the earliest written."""

    def rank(manifest: Manifest) -> tuple[bool, float]:
        return (manifest.value.get("reattached") is True, manifest.written_at)

    chosen: dict[str, Manifest] = {}
    for manifest in manifests:
        name = manifest.batch_name
        if name is not None and (name not in chosen or rank(manifest) < rank(chosen[name])):
            chosen[name] = manifest
    return chosen


def spend_by_dag(
    manifests: Mapping[str, Manifest], now: float, windows: Iterable[int] = WINDOWS
) -> list[dict[str, Any]]:
    """Batch-price cost per DAG over each window of days, each batch counted once, most spent first."""
    windows = tuple(windows)
    totals: dict[str, dict[str, Any]] = {}
    for manifest in manifests.values():
        age = now - manifest.written_at
        entry = totals.setdefault(
            manifest.task.dag_id, {"dag_id": manifest.task.dag_id, **{f"cost_{d}d": 0.0 for d in windows}}
        )
        for days in windows:
            if 0 <= age <= days * DAY:
                entry[f"cost_{days}d"] += manifest.batch_cost
    rows = [{k: round(v, 6) if isinstance(v, float) else v for k, v in e.items()} for e in totals.values()]
    return sorted(rows, key=lambda r: (-r[f"cost_{windows[-1]}d"], r["dag_id"]))


def job_row(job: BatchJobInfo, owner: TaskInstanceRef | None, manifest: Manifest | None) -> dict[str, Any]:
    """One line of the jobs table, JSON-able; never carries anything of the connection."""
    return {
        "name": job.name,
        "display_name": job.display_name,
        "state": job.state.value,
        "live": job.state in LIVE_STATES,
        "model": (job.model or "").removeprefix("models/") or None,
        "created": job.create_time,
        "ended": job.end_time,
        "progress": progress(job),
        "task": owner.to_dict() if owner else None,
        "tokens": dict(manifest.value.get("tokens") or {}) if manifest else None,
        "cost": dict(manifest.value.get("cost") or {}) if manifest else None,
    }


def visible(owner: TaskInstanceRef | None, readable_dags: set[str], sees_unlinked: bool) -> bool:
    """A job of a DAG shows to those who may read that DAG; a job of no known DAG, to those who may
    read the connection it was listed with."""
    return owner.dag_id in readable_dags if owner else sees_unlinked


def task_url(base_path: str, ref: TaskInstanceRef) -> str:
    """The task instance in the UI (its mapped instance when it has a map index)."""
    url = f"{base_path}/dags/{quote(ref.dag_id, safe='')}/runs/{quote(ref.run_id, safe='')}/tasks/"
    url += quote(ref.task_id, safe="")
    return url + (f"/mapped/{ref.map_index}" if ref.map_index >= 0 else "")
