"""200 runs of a deferred create on one triggerer, their jobs ended all at once by the emulator's
clock, on a real Airflow: every run succeeds, with one job each."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.stack import API_KEY, AirflowStack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
DAG_ID = "chaos_fleet"
RUNS = 200
SUBMITTED = "gemini_batch_submitted"


def counted(stack: AirflowStack, path: str, **params: str) -> int:
    return int(stack.get(path, limit=1, **params)["total_entries"])


def test_200_deferred_runs_on_one_triggerer_all_succeed_when_their_jobs_end_at_once(
    chaos: AirflowStack, emulator: EmulatorClient
) -> None:
    chaos.wait_for_dag(DAG_ID)
    before = emulator.stats()
    first = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for hour in range(RUNS):
        chaos.trigger(DAG_ID, (first + timedelta(hours=hour)).isoformat())
    wait_until(
        lambda: counted(chaos, f"/dags/{DAG_ID}/dagRuns/~/taskInstances", state="deferred") == RUNS,
        1800,
        f"{RUNS} deferred creates",
        interval=5,
    )
    assert emulator.stats()["jobs_created"] - before["jobs_created"] == RUNS
    assert emulator.stats()["live_jobs"] >= RUNS

    runs = [  # the REST API's pages hold 100 at most
        run["dag_run_id"]
        for offset in range(0, RUNS, 100)
        for run in chaos.get(f"/dags/{DAG_ID}/dagRuns", limit=100, offset=offset)["dag_runs"]
    ]
    names = [chaos.xcom(DAG_ID, run_id, "create", key=SUBMITTED)["batch_name"] for run_id in runs]
    assert len(set(names)) == RUNS
    emulator.advance(3600)  # every job ends at this instant
    moved = time.monotonic()
    with httpx.Client(base_url=f"{chaos.emulator_url}/v1beta", headers={"x-goog-api-key": API_KEY}) as api:
        states = {api.get(f"/{name}").json()["metadata"]["state"] for name in names}
    settled = time.monotonic() - moved
    assert states == {"BATCH_STATE_SUCCEEDED"}
    print(f"{RUNS} jobs read as SUCCEEDED {settled:.2f} s after the emulator's clock ended them")

    wait_until(
        lambda: counted(chaos, f"/dags/{DAG_ID}/dagRuns", state="success") == RUNS,
        1800,
        f"{RUNS} successful runs",
        interval=5,
    )
    assert counted(chaos, f"/dags/{DAG_ID}/dagRuns", state="failed") == 0
    assert emulator.stats()["jobs_created"] - before["jobs_created"] == RUNS
    assert emulator.stats()["calls"]["cancels"] == before["calls"]["cancels"]
