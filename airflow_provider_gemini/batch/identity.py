"""Deterministic identity of a submission, so a retry finds the job it already paid for.

The identity comes from where the task runs (dag, task, run, map index; never the try number) and
what it submits (a fingerprint of the normalised input). It travels in the job's display name, which
the API lets us list, so the lookup also covers a crash between "submitted" and "recorded".
"""

from __future__ import annotations

import hashlib
import re

# Display names are user-visible in AI Studio; keep them short and readable.
MAX_DISPLAY_NAME = 128
IDENTITY_LENGTH = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def job_identity(dag_id: str, task_id: str, run_id: str, map_index: int | None, fingerprint: str) -> str:
    """A short hex digest naming one submission of one task instance's input."""
    parts = [dag_id, task_id, run_id, str(-1 if map_index is None else map_index), fingerprint]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:IDENTITY_LENGTH]


def display_name_for(identity: str, prefix: str) -> str:
    """``<prefix>-<identity>``, the prefix made safe and cut so the whole fits the display-name limit."""
    safe = _UNSAFE.sub("-", prefix).strip("-") or "airflow"
    room = MAX_DISPLAY_NAME - len(identity) - 1
    return f"{safe[:room]}-{identity}"


def fingerprint_text(*parts: str) -> str:
    """A fingerprint for inputs we cannot read ourselves (an already uploaded ``files/...``)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
