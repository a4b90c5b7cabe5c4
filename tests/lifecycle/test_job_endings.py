"""Every way a job ends is handled: failed, expired, cancelled, and partial request failures."""

from __future__ import annotations

import pytest
from packaging.version import Version

from airflow_provider_gemini._compat import AIRFLOW_VERSION
from airflow_provider_gemini.hooks.gemini import GeminiHook
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import RECORDS, create_and_wait

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORD_INPUT = {"records": RECORDS, "prompt_template": "Describe {name}.", "key_field": "id"}


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poke"])
@pytest.mark.parametrize(
    ("outcome", "error", "expected"),
    [
        (
            "FAILED",
            "The model is overloaded in this region",
            "failed: The model is overloaded in this region",
        ),
        ("EXPIRED", None, "expired before it finished"),
    ],
)
def test_failed_and_expired_jobs_fail_the_sensor_with_the_jobs_text(
    gemini_emulator, capfd, trigger_spy, deferrable, outcome, error, expected
):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=30, job_outcome=outcome, job_error=error)
    dag_id = f"lc_end_{outcome.lower()}_{deferrable}"
    source = create_and_wait(
        dag_id, create_kwargs=RECORD_INPUT, sensor_kwargs={"deferrable": deferrable, "poke_interval": 0.2}
    )
    dag_run = run_dag(dag_id, source)
    assert task_states(dag_run) == {"create": "success", "wait": "failed"}
    captured = capfd.readouterr()
    assert expected in captured.out + captured.err
    # The deferred variant ended in the triggerer: the trigger ran and its event was handled.
    handled = 1 if deferrable else 0
    assert trigger_spy == {"trigger_runs": handled, "sensor_resumed": handled}


def test_cancelled_job_fails_the_deferred_sensor(gemini_emulator, capfd, trigger_spy):
    # Seen running first (the sensor defers), then cancelled while the trigger polls.
    gemini_emulator.freeze(step_per_get=10)
    gemini_emulator.configure(running_seconds=30, job_outcome="CANCELLED")
    job = GeminiHook().create_batch(
        model="gemini-2.5-flash",
        display_name="to-cancel",
        inline_requests=[{"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}],
    )
    source = f"""
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor

@dag(dag_id="lc_cancelled", schedule=None, start_date=datetime.datetime(2024, 1, 1))
def the_dag():
    GeminiBatchSensor(task_id="wait", batch_name={job.name!r}, deferrable=True, poke_interval=0.2)

the_dag()
"""
    dag_run = run_dag("lc_cancelled", source)
    assert task_states(dag_run) == {"wait": "failed"}
    captured = capfd.readouterr()
    assert f"Gemini batch {job.name} was cancelled" in captured.out + captured.err
    assert trigger_spy == {"trigger_runs": 1, "sensor_resumed": 1}


# None, the default: the wait lets the job through, and the store judges after writing every answer.
@pytest.mark.parametrize(("ratio", "expected_state"), [(0.0, "failed"), (0.5, "success"), (None, "success")])
def test_partial_request_failures_are_judged_by_the_ratio(
    gemini_emulator, capfd, trigger_spy, ratio, expected_state
):
    gemini_emulator.freeze(step_per_get=10)  # seen running first: the sensor defers
    gemini_emulator.configure(running_seconds=30, failed_key_pattern="^p[12]$")  # 2 of 5 requests fail
    dag_id = f"lc_partial_{str(ratio).replace('.', '_')}"
    source = create_and_wait(
        dag_id,
        create_kwargs=RECORD_INPUT,
        sensor_kwargs={"deferrable": True, "poke_interval": 0.2, "max_failed_request_ratio": ratio},
    )
    dag_run = run_dag(dag_id, source)
    assert task_states(dag_run)["wait"] == expected_state
    if expected_state == "failed":
        captured = capfd.readouterr()
        assert "2 of 5 requests failed (40.0%)" in captured.out + captured.err
    else:
        assert xcom_values(dag_id, dag_run.run_id)[("wait", "return_value")]["stats"]["failed"] == 2
    assert trigger_spy == {"trigger_runs": 1, "sensor_resumed": 1}


def test_waits_survive_a_third_of_gets_failing(gemini_emulator):
    # Six answered polls see the job running (failed GETs do not move the clock).
    gemini_emulator.freeze(step_per_get=10)
    gemini_emulator.configure(running_seconds=60)
    gemini_emulator.add_fault(operations=["gets"], status=503, rate=0.3)
    source = f"""
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor

@dag(dag_id="lc_flaky", schedule=None, start_date=datetime.datetime(2024, 1, 1))
def the_dag():
    create = GeminiBatchCreateOperator(task_id="create", model="gemini-2.5-flash", records={RECORDS!r},
                                       prompt_template="Describe {{name}}", key_field="id")
    deferred = GeminiBatchSensor(task_id="deferred", batch_name=create.output["batch_name"],
                                 deferrable=True, poke_interval=0.1)
    poking = GeminiBatchSensor(task_id="poking", batch_name=create.output["batch_name"],
                               deferrable=False, poke_interval=0.1)
    create >> [deferred, poking]

the_dag()
"""
    dag_run = run_dag("lc_flaky", source)
    assert task_states(dag_run) == {"create": "success", "deferred": "success", "poking": "success"}
    stats = gemini_emulator.stats()
    assert stats["jobs_created"] == 1
    assert stats["calls"]["gets"] > 5  # the faults were really met


def test_soft_fail_skips_a_job_that_fails_while_deferred(gemini_emulator, trigger_spy):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=30, job_outcome="FAILED", job_error="broken")
    source = create_and_wait(
        "lc_soft_fail",
        create_kwargs=RECORD_INPUT,
        sensor_kwargs={"deferrable": True, "poke_interval": 0.1, "soft_fail": True},
    )
    assert task_states(run_dag("lc_soft_fail", source)) == {"create": "success", "wait": "skipped"}
    assert trigger_spy == {"trigger_runs": 1, "sensor_resumed": 1}


@pytest.mark.skipif(
    Version("3.1") > AIRFLOW_VERSION,
    reason="Airflow 3.0's dag.test() hands a rescheduled sensor its first start date as text (its in-process "
    "API client skips validation) and BaseSensorOperator fails on it; deployments parse it",
)
def test_reschedule_mode_waits_without_holding_a_slot(gemini_emulator):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=20)
    source = create_and_wait(
        "lc_reschedule",
        create_kwargs=RECORD_INPUT,
        sensor_kwargs={"deferrable": False, "mode": "reschedule", "poke_interval": 0.2},
    )
    dag_run = run_dag("lc_reschedule", source)
    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    assert xcom_values("lc_reschedule", dag_run.run_id)[("wait", "return_value")]["state"] == "SUCCEEDED"


def test_killing_a_waiting_create_task_cancels_its_job(gemini_emulator):
    from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

    gemini_emulator.configure(running_seconds=60)
    job = GeminiHook().create_batch(
        model="gemini-2.5-flash",
        display_name="killed",
        inline_requests=[{"request": {"contents": [{"parts": [{"text": "x"}]}]}, "metadata": {"key": "a"}}],
    )
    operator = GeminiBatchCreateOperator(task_id="t", model="gemini-2.5-flash", requests=[{"contents": []}])
    operator._batch_name = job.name  # what execute() records once the job exists
    operator.on_kill()
    assert GeminiHook().get_batch(job.name).state.value == "CANCELLED"
    keep = GeminiBatchCreateOperator(task_id="k", model="m", requests=[{}], cancel_on_kill=False)
    keep._batch_name = "batches/never-touched"
    keep.on_kill()  # would raise on an unknown job if it called the API


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "on_the_worker"])
@pytest.mark.parametrize("cancel_on_kill", [True, False], ids=["cancels", "keeps"])
def test_a_create_whose_wait_times_out_cancels_its_job_when_asked(
    gemini_emulator, capfd, deferrable, cancel_on_kill
):
    gemini_emulator.freeze()  # the job never ends by itself
    gemini_emulator.configure(running_seconds=60)
    dag_id = f"lc_wait_timeout_{deferrable}_{cancel_on_kill}"
    create = {
        **RECORD_INPUT,
        "wait_for_completion": True,
        "deferrable": deferrable,
        "poll_interval": 0.05,
        "wait_timeout": 0.01,  # past at the first poll, however fast the machine
        "cancel_on_kill": cancel_on_kill,
    }
    dag_run = run_dag(dag_id, create_and_wait(dag_id, create_kwargs=create))
    assert task_states(dag_run) == {"create": "failed"}
    [job] = GeminiHook().list_batches()
    out = capfd.readouterr().out
    assert "the timeout passed; the task fails without retry" in out
    if cancel_on_kill:
        assert job.state.value == "CANCELLED"
        assert "The job was cancelled (cancel_on_kill)" in out
    else:
        assert job.state.value == "RUNNING"
        assert "The job may still be running (cancel_on_kill is off)" in out


def test_the_wait_ends_with_execution_timeout_or_wait_timeout_whichever_is_first():
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

    started = datetime.now(timezone.utc) - timedelta(seconds=100)
    context = {"ti": SimpleNamespace(start_date=started)}
    both = GeminiBatchCreateOperator(
        task_id="t", model="m", requests=[{}], wait_timeout=3600, execution_timeout=timedelta(seconds=160)
    )
    assert both._deadline(context) == pytest.approx(started.timestamp() + 160, abs=0.01)
    only_wait = GeminiBatchCreateOperator(task_id="w", model="m", requests=[{}], wait_timeout=30)
    assert only_wait._deadline(context) == pytest.approx(datetime.now(timezone.utc).timestamp() + 30, abs=1)
    assert GeminiBatchCreateOperator(task_id="n", model="m", requests=[{}])._deadline(context) is None


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poke"])
def test_a_sensor_timeout_cancels_the_job_only_with_cancel_on_kill(gemini_emulator, capfd, deferrable):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    dag_id = f"lc_sensor_timeout_{deferrable}"
    sensor = {"deferrable": deferrable, "poke_interval": 0.05, "timeout": 0.01, "cancel_on_kill": True}
    dag_run = run_dag(dag_id, create_and_wait(dag_id, create_kwargs=RECORD_INPUT, sensor_kwargs=sensor))
    assert task_states(dag_run) == {"create": "success", "wait": "failed"}
    [job] = GeminiHook().list_batches()
    assert job.state.value == "CANCELLED"
    assert "The job was cancelled (cancel_on_kill)" in capfd.readouterr().out
