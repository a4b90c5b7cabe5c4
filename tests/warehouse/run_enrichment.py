"""Runs the enrichment example with ``airflow dags test`` in this process, measuring each paid step.

Started by ``test_postgres_enrichment.py`` as its own process (``python -m tests.warehouse.run_enrichment
<date>``), so that the peak memory of the create and load tasks is theirs, not the test's: before each
of those tasks the process's peak resident size is reset (``/proc/self/clear_refs``), and read after.
Prints one JSON line: the task states, the peaks, and the size of the create task's XCom.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DAG_ID = "gemini_batch_enrichment"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def measure(cls: type, peaks: dict[str, dict[str, float]]) -> None:
    """Wrap ``cls.execute``: resident size at its start, and its peak while it ran, in MB."""
    original = cls.execute  # type: ignore[attr-defined]

    def execute(self: Any, context: Any) -> Any:
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
        start = _status_kb("VmRSS")
        try:
            return original(self, context)
        finally:
            peaks[self.task_id] = {"start_mb": start / 1024, "peak_mb": _status_kb("VmHWM") / 1024}

    cls.execute = execute  # type: ignore[attr-defined]


def main(logical_date: str) -> None:
    from airflow.__main__ import main as airflow_main

    from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
    from airflow_provider_gemini.transfers.results_to_sql import GeminiBatchResultsToSqlOperator

    peaks: dict[str, dict[str, float]] = {}
    measure(GeminiBatchCreateOperator, peaks)
    measure(GeminiBatchResultsToSqlOperator, peaks)
    sys.argv = ["airflow", "dags", "test", DAG_ID, logical_date]
    try:
        airflow_main()
    except SystemExit as end:
        if end.code:
            raise
    print("RESULT " + json.dumps({"peaks": peaks, **_run_facts()}))


def _run_facts() -> dict[str, Any]:
    """The run's task states and the bytes each task keeps in XCom (as stored: JSON)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc())
        ).first()
        assert run is not None
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        xcom_bytes: dict[str, int] = {}
        query = select(XComModel.task_id, XComModel.value).where(
            XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id
        )
        for task_id, value in session.execute(query):
            stored = value if isinstance(value, str) else json.dumps(value)
            xcom_bytes[task_id] = xcom_bytes.get(task_id, 0) + len(stored.encode())
    return {"run_id": run.run_id, "states": states, "xcom_bytes": xcom_bytes}


if __name__ == "__main__":
    main(sys.argv[1])
