"""One real Airflow for the module's tests, started once (about 15 s) and torn down after."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import AirflowStack

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DAG_ID = "gemini_batch_enrichment"
_saved: list[Path] = []


@pytest.fixture(scope="session")
def stack() -> Iterator[AirflowStack]:
    home = Path(tempfile.mkdtemp(prefix="gemini-e2e-"))
    airflow = AirflowStack(home)
    try:
        airflow.start()
        yield airflow
    except BaseException:
        for name in airflow.processes:
            print(f"----- {name} (last lines) -----\n{airflow.log_tail(name)}")
        raise
    finally:
        airflow.stop()
        shutil.rmtree(home, ignore_errors=True)


SENSOR_STATES_SEEN: list[str] = []


@pytest.fixture(scope="session")
def enrichment_run(stack: AirflowStack) -> str:
    """A run of the enrichment example DAG, triggered through the REST API and finished; the sensor's
    states are watched through the API on the way (``SENSOR_STATES_SEEN``)."""
    stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger(DAG_ID, "2026-11-24T00:00:00Z")
    stack.wait_for_task(
        DAG_ID, run_id, "wait", {"success", "failed", "upstream_failed"}, seen=SENSOR_STATES_SEEN
    )
    state = stack.wait_for_run(DAG_ID, run_id)
    assert state == "success", (stack.task_states(DAG_ID, run_id), stack.log_tail("scheduler"))
    return run_id


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def remember_artifact(path: Path) -> None:
    _saved.append(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _saved:
        terminalreporter.section("e2e screenshots")
        here = Path.cwd()
        for path in _saved:
            terminalreporter.write_line(str(path.relative_to(here) if path.is_relative_to(here) else path))
