"""The enrichment example DAG in a real Airflow (api-server, scheduler, dag-processor, triggerer),
triggered and checked only through the REST API, as a user's automation would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import DAG_ID, SENSOR_STATES_SEEN
from tests.e2e.stack import API_KEY, PRODUCTS, AirflowStack

pytestmark = pytest.mark.timeout(900)


def test_the_run_succeeds_and_fills_the_table(stack: AirflowStack, enrichment_run: str) -> None:
    assert stack.task_states(DAG_ID, enrichment_run) == dict.fromkeys(
        ["create", "wait", "store", "load"], "success"
    )
    headlines = stack.headlines()
    assert set(headlines) == {key for key, _, _ in PRODUCTS}
    assert all(headlines.values()), headlines
    assert stack.emulator_stats()["jobs_created"] == 1


def test_the_sensor_deferred_and_the_triggerer_logged_progress(
    stack: AirflowStack, enrichment_run: str
) -> None:
    assert "deferred" in SENSOR_STATES_SEEN, SENSOR_STATES_SEEN  # as the REST API reported it
    assert SENSOR_STATES_SEEN[-1] == "success"
    log = stack.task_log(DAG_ID, enrichment_run, "wait")
    assert "Pausing task as DEFERRED" in log
    trigger_lines = [line for line in log.splitlines() if "GeminiBatchTrigger" in line]
    assert any(" RUNNING: " in line for line in trigger_lines), log
    assert any(" SUCCEEDED: 4/4 done, 0 failed, 100%" in line for line in trigger_lines), log
    assert "succeeded" in log.split("Pausing task as DEFERRED", 1)[1]  # the sensor resumed afterwards


def test_the_manifest_in_xcom_is_complete(stack: AirflowStack, enrichment_run: str) -> None:
    manifest = stack.xcom(DAG_ID, enrichment_run, "store")
    assert manifest["rows"] == manifest["succeeded"] == len(PRODUCTS)
    assert manifest["failed"] == manifest["missing"] == 0
    assert manifest["batch_name"] == stack.xcom(DAG_ID, enrichment_run, "create", "batch_name")
    assert manifest["tokens"]["prompt"] > 0
    assert manifest["tokens"]["output"] > 0
    assert manifest["tokens"]["total"] >= manifest["tokens"]["prompt"] + manifest["tokens"]["output"]
    assert 0 < manifest["cost"]["batch"] < manifest["cost"]["standard"]
    assert manifest["destination"].endswith("enriched-2026-11-24.parquet")
    assert Path(manifest["destination"].removeprefix("file://")).stat().st_size == manifest["bytes"]
    assert stack.xcom(DAG_ID, enrichment_run, "load")["loaded"] == len(PRODUCTS)


def test_a_failed_job_shows_its_error_in_the_task_log(stack: AirflowStack, enrichment_run: str) -> None:
    reason = "Quota exceeded for batch jobs in this project (e2e)"
    stack.emulator("config", {"job_outcome": "FAILED", "job_error": reason})
    stack.add_product("p99", "Walnut chess set", "games")
    try:
        run_id = stack.trigger(DAG_ID, "2026-11-25T00:00:00Z")
        state = stack.wait_for_task(DAG_ID, run_id, "wait", {"up_for_retry", "failed"})
    finally:
        stack.emulator("config", {"job_outcome": "SUCCEEDED", "job_error": None})
    assert stack.api is not None
    stack.api.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})  # no retries to wait for
    log = stack.task_log(DAG_ID, run_id, "wait")
    assert state in ("up_for_retry", "failed")
    assert f"failed: {reason}" in log
    assert API_KEY not in log
    assert API_KEY not in stack.task_log(DAG_ID, run_id, "create")
