"""The Airflow deployments the e2e tests run against, each started once and torn down after its tests:
``stack`` (LocalExecutor, SQLite; about 15 s to start) for the package, ``cluster`` (CeleryExecutor,
PostgreSQL, Redis, two triggerers) for the distributed tests, which run first so that the two never
compete for the machine."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import ROOT, AirflowStack, DistributedStack

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
DAG_ID = "gemini_batch_enrichment"
_saved: list[Path] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    distributed = [item for item in items if item.path == HERE / "test_distributed.py"]
    first = next((item for item in items if item.path.is_relative_to(HERE)), None)
    if not distributed or first is None:
        return
    rest = [item for item in items if item not in distributed]
    at = rest.index(first) if first in rest else len(rest)
    items[:] = rest[:at] + distributed + rest[at:]


@contextlib.contextmanager
def running(airflow: AirflowStack, request: pytest.FixtureRequest) -> Iterator[None]:
    """Start ``airflow``; stop it and delete its home afterwards, printing the end of every log when
    the start or a test failed."""
    failed = request.session.testsfailed
    try:
        airflow.start()
        yield
    except BaseException:
        failed = -1
        raise
    finally:
        if request.session.testsfailed != failed:
            for name in airflow.processes:
                print(f"----- {name} (last lines) -----\n{airflow.log_tail(name)}")
        airflow.stop()
        shutil.rmtree(airflow.home, ignore_errors=True)


@pytest.fixture(scope="package")
def stack(request: pytest.FixtureRequest) -> Iterator[AirflowStack]:
    airflow = AirflowStack(Path(tempfile.mkdtemp(prefix="gemini-e2e-")))
    with running(airflow, request):
        yield airflow


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[DistributedStack]:
    """The enrichment example and ``dags/gemini_worker_loss.py`` in one dags folder."""
    home = Path(tempfile.mkdtemp(prefix="gemini-e2e-celery-"))
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "example_dags" / f"{DAG_ID}.py", dags)
    shutil.copy(HERE / "dags" / "gemini_worker_loss.py", dags)
    airflow = DistributedStack(home, dags)
    with running(airflow, request):
        yield airflow


SENSOR_STATES_SEEN: list[str] = []


@pytest.fixture(scope="package")
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


CHROMIUM = Path("/usr/bin/chromium")
# Chromium inside a closed network: no background calls to Google's hosts, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs the Debian package chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
