"""The API key never leaks from a lifecycle run, and DAG files stay light to import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger
from tests.airflow_helpers import rendered_fields, run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import RECORDS, create_and_wait

RECORD_INPUT = {"records": RECORDS, "prompt_template": "Describe {name}.", "key_field": "id"}


@pytest.mark.usefixtures("airflow_db", "gemini_connection")
def test_api_key_reaches_no_log_xcom_rendered_field_trigger_or_error(gemini_emulator, capfd, monkeypatch):
    key = gemini_emulator.api_key
    assert key
    serialized: list[str] = []
    real_serialize = GeminiBatchTrigger.serialize

    def serialize(self):
        result = real_serialize(self)
        serialized.append(json.dumps(result))
        return result

    monkeypatch.setattr(GeminiBatchTrigger, "serialize", serialize)
    # Three polls see the job running: the sensor defers (its trigger is serialized) at any speed.
    gemini_emulator.freeze(step_per_get=10)
    gemini_emulator.configure(running_seconds=30, failed_key_pattern="^p1$")
    source = create_and_wait(
        "sec_run",
        create_kwargs=RECORD_INPUT,
        sensor_kwargs={"deferrable": True, "poke_interval": 0.2, "max_failed_request_ratio": 0.0},
    )
    dag_run = run_dag("sec_run", source)
    assert task_states(dag_run) == {"create": "success", "wait": "failed"}  # 1 failed request: an error text

    captured = capfd.readouterr()
    assert "1 of 5 requests failed" in captured.out + captured.err
    assert key not in captured.out
    assert key not in captured.err
    assert serialized
    assert all(key not in s for s in serialized)
    assert key not in repr(xcom_values("sec_run", dag_run.run_id))
    assert key not in json.dumps(rendered_fields("sec_run", dag_run.run_id), default=str)


def test_importing_operator_sensor_and_trigger_leaves_the_sdk_out():
    code = (
        "import sys\n"
        "import airflow_provider_gemini.operators.batch, airflow_provider_gemini.sensors.batch\n"
        "import airflow_provider_gemini.triggers.batch, airflow_provider_gemini.links.batch\n"
        "import airflow_provider_gemini.transfers.results_to_storage\n"
        "import airflow_provider_gemini.transfers.results_to_sql\n"
        "import airflow_provider_gemini.operators.embed\n"
        "heavy = ('google.genai', 'pyarrow', 'numpy', 'openlineage.')\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
