"""DAG files the lifecycle tests write into the dags folder and run with ``dag.test()``."""

from __future__ import annotations

import json
from typing import Any

HEADER = """
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
"""


def create_and_wait(
    dag_id: str,
    *,
    create_kwargs: dict[str, Any],
    sensor_kwargs: dict[str, Any] | None = None,
    create_class: str = "GeminiBatchCreateOperator",
    extra_source: str = "",
    retries: int = 0,
) -> str:
    """A DAG of a create task, and (when sensor_kwargs is given) a sensor on its batch_name."""
    sensor = ""
    if sensor_kwargs is not None:
        sensor = f"""
    wait = GeminiBatchSensor(
        task_id="wait",
        batch_name=create.output["batch_name"],
        **{_py(sensor_kwargs)},
    )
    create >> wait
"""
    return f"""{HEADER}
{extra_source}

@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False,
     default_args={{"retries": {retries}, "retry_delay": datetime.timedelta(seconds=0)}})
def the_dag():
    create = {create_class}(task_id="create", **{_py({"model": "gemini-2.5-flash", **create_kwargs})})
{sensor}

the_dag()
"""


def _py(kwargs: dict[str, Any]) -> str:
    # JSON is valid Python for the plain values these tests pass (no true/false/null: use repr).
    return repr(json.loads(json.dumps(kwargs)))


RECORDS = [{"id": f"p{i}", "name": f"product {i}"} for i in range(1, 6)]


def failing_after_submit(base: str = "GeminiBatchCreateOperator", name: str = "FailAfterSubmit") -> str:
    """A create class whose first try fails after its job was submitted and recorded (a lost worker)."""
    return f"""
class {name}({base}):
    def execute(self, context):
        result = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("lost after the job was recorded")
        return result
"""


def dying_with_create_in_flight(
    base: str = "GeminiBatchCreateOperator", name: str = "DieWithCreateInFlight"
) -> str:
    """A create class whose first try dies while its create is on its way: the emulator has it whole
    (a ``hold_until_lists`` fault holds it) and acts on it later, whatever the client did."""
    return f"""
import contextlib
import threading

from airflow_provider_gemini.testing.emulator import EmulatorClient


class {name}({base}):
    def execute(self, context):
        self.first_try = context["ti"].try_number == 1
        return super().execute(context)

    def _submit(self, prepared, display_name):
        if not self.first_try:
            return super()._submit(prepared, display_name)
        emulator = EmulatorClient(self.hook.settings.base_url)
        submit = super()._submit

        def send():
            with contextlib.suppress(Exception):  # the client gives up; the server acts on it anyway
                submit(prepared, display_name)

        threading.Thread(target=send, daemon=True).start()
        while not emulator.stats()["held_requests"]:
            pass  # until the server has the request
        raise RuntimeError("worker lost with its create in flight")
"""
