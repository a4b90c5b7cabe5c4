"""Deterministic identity of a submission, so a retry finds the job it already paid for.

The identity comes from where the task runs (dag, task, run, map index; never the try number) and
what it pays for (a fingerprint of the normalised input, the model and the account). It travels in
the job's display name, which the API lets us list, so the lookup also covers a crash between
"submitted" and "recorded". Its first part names the task instance alone, so a job the same task
instance submitted for another model or input is recognised, and not re-used, with a reason.
"""

from __future__ import annotations

import hashlib
import re

# Display names are user-visible in AI Studio; keep them short and readable.
MAX_DISPLAY_NAME = 128
TASK_INSTANCE_PART = 12
SUBMISSION_PART = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def job_identity(dag_id: str, task_id: str, run_id: str, map_index: int | None, fingerprint: str) -> str:
    """A short hex digest naming one submission of one task instance: the task instance's part, then
    the submission's (``fingerprint`` covers what is paid for)."""
    place = "\x1f".join([dag_id, task_id, run_id, str(-1 if map_index is None else map_index)])
    task_instance = hashlib.sha256(place.encode()).hexdigest()[:TASK_INSTANCE_PART]
    submission = hashlib.sha256(f"{place}\x1f{fingerprint}".encode()).hexdigest()[:SUBMISSION_PART]
    return task_instance + submission


def same_task_instance(display_name: str, other: str) -> bool:
    """Whether two display names carry identities of the same task instance (any submission)."""
    return len(display_name) == len(other) and display_name[:-SUBMISSION_PART] == other[:-SUBMISSION_PART]


def display_name_for(identity: str, prefix: str) -> str:
    """``<prefix>-<identity>``, the prefix made safe and cut so the whole fits the display-name limit."""
    safe = _UNSAFE.sub("-", prefix).strip("-") or "airflow"
    room = MAX_DISPLAY_NAME - len(identity) - 1
    return f"{safe[:room]}-{identity}"


def fingerprint_text(*parts: str) -> str:
    """A fingerprint for inputs we cannot read ourselves (an already uploaded ``files/...``)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
