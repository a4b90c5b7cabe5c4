"""The fault matrix of paying once, as tests on a real Airflow (api-server, scheduler, dag-processor,
triggerer as separate processes, LocalExecutor with 8 task slots, PostgreSQL) driven through its REST
API, with the emulator in its own process. One stack serves the whole package; every test counts the
emulator's calls and jobs as differences, so the tests share it without resetting it.

The emulator's clock is frozen: jobs end only when a test moves it, so no step races a clock. The
Gemini connection allows 10 s a call and no SDK retries, so a retry that finds a create in flight
waits 10 s (the longest such a create can take) before it submits.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.conftest import running
from tests.e2e.stack import AirflowStack, PostgresStack, kill_task_process, wait_until

pytestmark = pytest.mark.e2e
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="package")
def chaos(request: pytest.FixtureRequest) -> Iterator[AirflowStack]:
    stack = PostgresStack(
        Path(tempfile.mkdtemp(prefix="gemini-chaos-")),
        dags_folder=HERE / "dags",
        gemini_extra={"timeout": 10, "retry_attempts": 1},
        parallelism=8,
    )
    with running(stack, request):
        EmulatorClient(stack.emulator_url).freeze()
        yield stack


@pytest.fixture
def emulator(chaos: AirflowStack) -> Iterator[EmulatorClient]:
    """The stack's emulator, frozen, with no faults before and after the test."""
    client = EmulatorClient(chaos.emulator_url)
    client.clear_faults()
    client.configure(pending_seconds=0, running_seconds=3600)
    yield client
    client.clear_faults()


def task_instance(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return dict(stack.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))


def kill_running_task(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> int:
    """``kill -9`` the process running the task's current try; returns that try's number."""
    ti = task_instance(stack, dag_id, run_id, task_id)
    assert ti["state"] == "running", ti
    kill_task_process(ti["id"])
    return int(ti["try_number"])


def wait_for_try(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int) -> None:
    wait_until(
        lambda: int(task_instance(stack, dag_id, run_id, task_id)["try_number"]) >= try_number,
        300,
        f"{task_id}'s try {try_number}",
        interval=1,
    )
