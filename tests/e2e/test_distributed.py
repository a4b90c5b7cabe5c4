"""The provider in a distributed Airflow: CeleryExecutor with a Redis broker and one Celery worker,
PostgreSQL as the metadata database, two triggerers, the api-server, scheduler and dag-processor, the
emulator in its own process. Components are lost the hard way (``kill -9`` of the process and all it
started, as when a machine dies) while a Gemini job is in flight; Airflow's own failure handling takes
over, and the job is paid for once.

The emulator's jobs run until a test ends them (``set_job_outcome``), so no step races a clock: every
wait polls the REST API, the metadata database or the emulator until a condition holds.
"""

from __future__ import annotations

import re
import time

import pytest

from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.conftest import DAG_ID
from tests.e2e.stack import API_KEY, PRODUCTS, DistributedStack, kill_session, session_members, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
LOSS_DAG_ID = "gemini_worker_loss"
TASKS = ["create", "wait", "store", "load"]


def until_ended_by_the_test(emulator: EmulatorClient) -> None:
    emulator.configure(pending_seconds=1, running_seconds=3600)


def test_a_killed_triggerer_hands_the_deferred_wait_to_the_other_one(cluster: DistributedStack) -> None:
    emulator = EmulatorClient(cluster.emulator_url)
    until_ended_by_the_test(emulator)
    before = emulator.stats()
    cluster.wait_for_dag(DAG_ID)
    run_id = cluster.trigger(DAG_ID, "2026-11-24T00:00:00Z")

    holders: list[str | None] = [None]

    def held() -> bool:
        holders[0] = cluster.trigger_holder(DAG_ID, run_id, "wait")
        return holders[0] is not None

    wait_until(held, 300, "a triggerer to take the sensor's trigger", interval=1)
    holder = holders[0]
    assert holder is not None
    survivor = next(name for name in cluster.TRIGGERERS if name != holder)
    gets = emulator.stats()["calls"]["gets"]
    wait_until(lambda: emulator.stats()["calls"]["gets"] > gets, 120, f"{holder} to poll the job")

    beat = cluster.sql(
        "SELECT extract(epoch FROM now() - latest_heartbeat) FROM job WHERE id = %s",
        cluster.triggerer_jobs[holder],
    )[0][0]
    kill_session(cluster.processes[holder])
    killed = time.monotonic()
    assert session_members(cluster.processes[holder].pid) == []
    assert cluster.task_try(DAG_ID, run_id, "wait")[0] == "deferred"
    assert cluster.trigger_holder(DAG_ID, run_id, "wait") == holder  # until Airflow sees it is gone
    wait_until(
        lambda: cluster.trigger_holder(DAG_ID, run_id, "wait") == survivor,
        180,
        f"{survivor} to take the trigger over",
        interval=1,
    )
    print(
        f"{holder} (job {cluster.triggerer_jobs[holder]}, last beat {float(beat):.1f} s before) held the "
        f"trigger and was killed; {survivor} (job {cluster.triggerer_jobs[survivor]}) took it over "
        f"{time.monotonic() - killed:.0f} s later"
    )
    gets = emulator.stats()["calls"]["gets"]
    wait_until(lambda: emulator.stats()["calls"]["gets"] > gets, 120, f"{survivor} to poll the job")

    batch_name = cluster.xcom(DAG_ID, run_id, "create", "batch_name")
    emulator.set_job_outcome(batch_name, "SUCCEEDED")
    assert cluster.wait_for_run(DAG_ID, run_id) == "success", cluster.task_states(DAG_ID, run_id)

    assert cluster.task_states(DAG_ID, run_id) == dict.fromkeys(TASKS, "success")
    assert cluster.task_try(DAG_ID, run_id, "wait") == ("success", 1)  # handed over, not retried
    headlines = cluster.headlines()
    assert set(headlines) == {key for key, _, _ in PRODUCTS}
    assert all(headlines.values()), headlines
    after = emulator.stats()
    assert after["jobs_created"] - before["jobs_created"] == 1
    assert after["calls"]["creates"] - before["calls"]["creates"] == 1
    print(f"run {cluster.task_states(DAG_ID, run_id)}; jobs created: 1, create calls: 1")
    log = cluster.task_log(DAG_ID, run_id, "wait")
    assert "Pausing task as DEFERRED" in log
    assert any(" SUCCEEDED: 4/4 done, 0 failed" in line for line in log.splitlines()), log


def test_a_killed_worker_s_task_is_retried_and_reattaches_to_its_job(cluster: DistributedStack) -> None:
    emulator = EmulatorClient(cluster.emulator_url)
    until_ended_by_the_test(emulator)
    before = emulator.stats()
    cluster.wait_for_dag(LOSS_DAG_ID)
    run_id = cluster.trigger(LOSS_DAG_ID, "2026-11-26T00:00:00Z")

    # The create task has submitted its job and polls it from the worker (a get follows the record).
    wait_until(lambda: emulator.stats()["jobs_created"] > before["jobs_created"], 300, "the job", interval=1)
    gets = emulator.stats()["calls"]["gets"]
    wait_until(lambda: emulator.stats()["calls"]["gets"] > gets, 120, "the create task to poll its job")
    assert cluster.task_try(LOSS_DAG_ID, run_id, "create") == ("running", 1)

    lost = f"celery-worker-{cluster.workers}"
    kill_session(cluster.processes[lost])
    killed = time.monotonic()
    assert session_members(cluster.processes[lost].pid) == []
    cluster.start_worker()

    # No heartbeat: the scheduler fails the try, and the retry runs on the new worker.
    tries: list[tuple[str | None, int]] = []

    def retried() -> bool:
        tries.append(cluster.task_try(LOSS_DAG_ID, run_id, "create"))
        return tries[-1][1] >= 2 and tries[-1][0] == "running"

    wait_until(retried, 300, "the create task's retry", interval=1)
    reattached: list[str] = []

    def reattach_logged() -> bool:
        found = re.search(
            r"Re-attached to (batches/\S+) \((\w+)\)", cluster.task_log(LOSS_DAG_ID, run_id, "create", 2)
        )
        reattached[:] = list(found.groups()) if found else []
        return bool(found)

    wait_until(reattach_logged, 180, "the retry to re-attach", interval=2)
    batch_name, state = reattached
    print(
        f"{lost} was killed during try 1; try 2 re-attached to {batch_name} ({state}) "
        f"{time.monotonic() - killed:.0f} s later; task states seen: {sorted(set(tries))}"
    )
    assert state in ("PENDING", "RUNNING")  # the job was still going when the worker died
    emulator.set_job_outcome(batch_name, "SUCCEEDED")
    assert cluster.wait_for_run(LOSS_DAG_ID, run_id) == "success", cluster.task_states(LOSS_DAG_ID, run_id)

    assert cluster.task_try(LOSS_DAG_ID, run_id, "create") == ("success", 2)
    assert f"Created Gemini batch {batch_name}" in cluster.task_log(LOSS_DAG_ID, run_id, "create", 1)
    assert cluster.xcom(LOSS_DAG_ID, run_id, "create", "reattached") is True
    assert cluster.xcom(LOSS_DAG_ID, run_id, "store")["rows"] == 3
    after = emulator.stats()
    assert after["jobs_created"] - before["jobs_created"] == 1
    assert after["calls"]["creates"] - before["calls"]["creates"] == 1
    print(f"run {cluster.task_states(LOSS_DAG_ID, run_id)}; jobs created: 1, create calls: 1")


def test_the_api_key_is_in_no_log(cluster: DistributedStack) -> None:
    files = cluster.log_files()
    names = {path.name for path in files}
    assert {"celery-worker-1.log", "triggerer-1.log", "scheduler.log", "postgres.log", "redis.log"} <= names
    task_logs = [path for path in files if path.name.startswith("attempt=")]
    assert len(task_logs) >= 7, files  # the two runs above wrote theirs (create twice in the second)
    # The search finds what is there: the job's creation is in a task log, the key in none.
    assert any(b"Created Gemini batch batches/" in path.read_bytes() for path in task_logs)
    assert [path for path in files if API_KEY.encode() in path.read_bytes()] == []
    print(f"the API key is in none of {len(files)} log files ({len(task_logs)} task logs)")
    for dag_id in (DAG_ID, LOSS_DAG_ID):  # and the task logs as the API serves them, every try
        for run in cluster.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]:
            path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
            for ti in cluster.get(path)["task_instances"]:
                for attempt in range(1, int(ti["try_number"]) + 1):
                    log = cluster.task_log(dag_id, run["dag_run_id"], ti["task_id"], attempt)
                    assert log
                    assert API_KEY not in log
