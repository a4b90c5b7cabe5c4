"""common.ai's ``LLMBatchOperator`` on Gemini: the real operator, through ``dag.test()``, against the
emulator over HTTP. Jobs end at once (no pending or running time) unless a test says otherwise, so
the operator's first poll sees them finished and nothing waits on real time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.ai.batch import dispatch
from airflow.providers.common.ai.batch.output_schema import build_output_spec
from airflow.providers.common.ai.exceptions import (
    BatchProviderNotYetSupportedError,
    LLMBatchInputError,
    LLMBatchModelMismatchError,
)
from pydantic import BaseModel

from airflow_provider_gemini.adapters.common_ai import GeminiBatchAdapter
from airflow_provider_gemini.batch import inputs
from airflow_provider_gemini.batch.errors import GeminiApiError
from airflow_provider_gemini.testing._responses import answer_text
from tests.airflow_helpers import run_dag, task_states, xcom_values

pytestmark = pytest.mark.usefixtures("airflow_db")

CONN_ID = "gemini_llm_batch"
MODEL_ID = "google:gemini-2.5-flash"
PROMPTS = ["Name a red fruit.", "Name a green vegetable.", "Name a yellow flower."]
KEY16 = "0123456789abcdef"
FINGERPRINT = "f" * 64


class Product(BaseModel):
    name: str
    price: float
    in_stock: bool


@pytest.fixture
def llm_conn(gemini_emulator, monkeypatch) -> str:
    """A ``gemini`` connection as common.ai's dispatch reads it: the key, and the emulator as host."""
    conn = {"conn_type": "gemini", "host": gemini_emulator.url, "password": gemini_emulator.api_key}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID


@pytest.fixture
def adapter(gemini_emulator):
    built = GeminiBatchAdapter(api_key=gemini_emulator.api_key, base_url=gemini_emulator.url)
    yield built
    built.close()


def batch_dag(
    dag_id: str, kwargs: str, *, extra: str = "", retries: int = 0, cls: str = "LLMBatchOperator"
) -> str:
    """A DAG of one common.ai batch task; ``kwargs`` is Python source for the operator's arguments."""
    return f"""
import datetime
from airflow.sdk import dag
from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator
{extra}

@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False,
     default_args={{"retries": {retries}, "retry_delay": datetime.timedelta(seconds=0)}})
def the_dag():
    {cls}(task_id="batch", llm_conn_id={CONN_ID!r}, model_id={MODEL_ID!r}, deferrable=False, {kwargs})

the_dag()
"""


def manifest_and_rows(dag_id: str, dag_run: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifest = xcom_values(dag_id, dag_run.run_id)[("batch", "return_value")]
    path = manifest["result_uri"].removeprefix("file://")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return manifest, sorted(rows, key=lambda row: row["index"])


def spec(output_type: type = str) -> Any:
    return build_output_spec(output_type)


# -- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize("conn_type", ["gemini", "pydanticai"])
@pytest.mark.parametrize("model_id", ["google:gemini-2.5-flash", "google-gla:gemini-2.5-flash"])
def test_dispatch_finds_the_adapter_through_the_entry_point(conn_type, model_id):
    assert dispatch.get_adapter_class(conn_type, model_id) is GeminiBatchAdapter
    assert dispatch.resolve_adapter_name(conn_type, model_id) == "google"


def test_vertex_connections_are_refused():
    with pytest.raises(BatchProviderNotYetSupportedError, match="gemini"):
        dispatch.get_adapter_class("pydanticai_vertex", "google:gemini-2.5-flash")


def test_importing_the_adapter_does_not_import_the_sdk():
    code = (
        "import sys, airflow_provider_gemini.adapters.common_ai; "
        "print(sorted(m for m in sys.modules if m.startswith('google.genai')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- requests ----------------------------------------------------------------------------------


def test_requests_carry_prompt_system_prompt_token_cap_and_params(adapter):
    requests = [
        {"prompt": "one"},
        {"prompt": "two", "system_prompt": "Be terse.", "max_tokens": 7, "params": {"temperature": 0.9}},
    ]
    items = list(
        adapter._requests(
            requests,
            idempotency_key=KEY16,
            output_spec=spec(Product),
            system_prompt="Be kind.",
            max_tokens=100,
            request_params={"temperature": 0.1, "top_p": 0.5, "response_mime_type": "text/plain"},
        )
    )
    assert [item["key"] for item in items] == [f"{KEY16}-0", f"{KEY16}-1"]
    first, second = (item["request"] for item in items)
    assert first["contents"] == [{"role": "user", "parts": [{"text": "one"}]}]
    assert first["systemInstruction"] == {"parts": [{"text": "Be kind."}]}
    schema = Product.model_json_schema()
    # The structured-output directive wins over params; the rest are generation settings.
    assert first["generationConfig"] == {
        "temperature": 0.1,
        "topP": 0.5,
        "maxOutputTokens": 100,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert second["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert second["generationConfig"]["temperature"] == 0.9
    assert second["generationConfig"]["maxOutputTokens"] == 7
    assert second["generationConfig"]["responseJsonSchema"] == schema


def test_validation_refuses_mixed_models_and_bad_settings(adapter):
    with pytest.raises(LLMBatchModelMismatchError, match="one model"):
        adapter.validate_requests(
            [{"prompt": "a"}, {"prompt": "b", "model": "google:gemini-2.5-pro"}],
            model="gemini-2.5-flash",
            output_spec=spec(),
            idempotency_key=KEY16,
        )
    with pytest.raises(LLMBatchModelMismatchError):
        adapter.validate_requests(
            [{"prompt": "a", "model": "openai:gpt-5"}],
            model="gemini-2.5-flash",
            output_spec=spec(),
            idempotency_key=KEY16,
        )
    with pytest.raises(LLMBatchInputError, match="response_schema"):
        adapter.validate_requests(
            [{"prompt": "a", "params": {"response_schema": {"type": "STRNG"}}}],
            model="gemini-2.5-flash",
            output_spec=spec(),
            idempotency_key=KEY16,
        )
    adapter.validate_requests(
        [{"prompt": "a", "model": "google-gla:gemini-2.5-flash"}],
        model="gemini-2.5-flash",
        output_spec=spec(),
        idempotency_key=KEY16,
    )


# -- the operator end to end -------------------------------------------------------------------


def test_a_batch_of_prompts_runs_end_to_end(gemini_emulator, llm_conn, tmp_path):
    gemini_emulator.configure(failed_key_pattern=r"-3$")
    prompts = [*PROMPTS, "This one fails."]
    kwargs = (
        f"requests={prompts!r}, result_path={f'file://{tmp_path}'!r}, system_prompt='Answer in one word.'"
    )
    dag_run = run_dag("cai_e2e", batch_dag("cai_e2e", kwargs))

    assert task_states(dag_run) == {"batch": "success"}
    manifest, rows = manifest_and_rows("cai_e2e", dag_run)
    assert manifest["adapter"] == "google"
    assert manifest["batch_id"].startswith("batches/")
    assert manifest["counts"] == {
        "succeeded": 3,
        "errored": 1,
        "invalid_output": 0,
        "expired": 0,
        "cancelled": 0,
        "missing": 0,
    }
    assert [row["output"] for row in rows[:3]] == [answer_text(p) for p in PROMPTS]
    assert all(row["usage"]["input_tokens"] > 0 and row["finish_reason"] == "STOP" for row in rows[:3])
    assert rows[3]["status"] == "error"
    assert "emulated" in rows[3]["error"]["message"]
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_structured_output_returns_parsed_objects(gemini_emulator, llm_conn, tmp_path):
    kwargs = f"requests={PROMPTS!r}, result_path={f'file://{tmp_path}'!r}, output_type=Product"
    extra = "from pydantic import BaseModel\n\nclass Product(BaseModel):\n    name: str\n    price: float\n"
    dag_run = run_dag("cai_structured", batch_dag("cai_structured", kwargs, extra=extra))

    assert task_states(dag_run) == {"batch": "success"}
    manifest, rows = manifest_and_rows("cai_structured", dag_run)
    assert manifest["structured"] is True
    assert manifest["counts"]["succeeded"] == 3
    for row, prompt in zip(rows, PROMPTS, strict=True):
        assert set(row["output"]) == {"name", "price"}
        assert isinstance(row["output"]["price"], float)
        assert row["output"]["name"] in prompt  # the emulator names the prompt's subject


def test_the_decorator_deferred_through_the_trigger(gemini_emulator, llm_conn, tmp_path, monkeypatch):
    # The trigger builds its own adapter from the connection id; its first poll sees the job done.
    from airflow.providers.common.ai.triggers.llm_batch import LLMBatchTrigger

    runs = []
    real_run = LLMBatchTrigger.run

    def run(self):
        runs.append(self.adapter)
        return real_run(self)

    monkeypatch.setattr(LLMBatchTrigger, "run", run)
    source = f"""
import datetime
from airflow.sdk import dag, task

@dag(dag_id="cai_deferred", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False)
def the_dag():
    @task.llm_batch(llm_conn_id={CONN_ID!r}, model_id="google-gla:gemini-2.5-flash",
                    result_path={f"file://{tmp_path}"!r}, deferrable=True)
    def batch():
        return [{{"prompt": p, "max_tokens": 50}} for p in {PROMPTS!r}]

    batch()

the_dag()
"""
    dag_run = run_dag("cai_deferred", source)

    assert task_states(dag_run) == {"batch": "success"}
    assert [ti.try_number for ti in dag_run.get_task_instances()] == [1]
    manifest, rows = manifest_and_rows("cai_deferred", dag_run)
    assert manifest["adapter"] == "google"
    assert [row["output"] for row in rows] == [answer_text(p) for p in PROMPTS]
    assert runs == ["google"]


def test_a_job_submitted_before_a_crash_is_found_again(gemini_emulator, llm_conn, tmp_path, capfd):
    # The first try dies after its create reached the API and before the batch id was recorded.
    extra = """
from airflow.providers.common.ai.batch import state as batch_state

class CrashAfterSubmit(LLMBatchOperator):
    def execute(self, context):
        if context["ti"].try_number > 1:
            return super().execute(context)
        def lost(*args, **kwargs):
            raise RuntimeError("worker lost between submit and recording the batch id")
        real, batch_state.write_submitted = batch_state.write_submitted, lost
        try:
            return super().execute(context)
        finally:
            batch_state.write_submitted = real
"""
    kwargs = f"requests={PROMPTS!r}, result_path={f'file://{tmp_path}'!r}, on_orphaned_intent='fail'"
    source = batch_dag("cai_crash", kwargs, extra=extra, retries=1, cls="CrashAfterSubmit")
    dag_run = run_dag("cai_crash", source)

    assert task_states(dag_run) == {"batch": "success"}
    assert [ti.try_number for ti in dag_run.get_task_instances()] == [2]
    assert "worker lost between submit" in capfd.readouterr().out
    manifest, _ = manifest_and_rows("cai_crash", dag_run)
    assert manifest["counts"]["succeeded"] == 3
    assert gemini_emulator.stats()["jobs_created"] == 1  # re-attached, not paid twice


@pytest.mark.parametrize(
    ("outcome", "error"),
    [("FAILED", "LLMBatchJobError"), ("CANCELLED", "LLMBatchCancelledError")],
)
def test_a_failed_or_cancelled_job_fails_the_task(gemini_emulator, llm_conn, tmp_path, capfd, outcome, error):
    gemini_emulator.configure(
        job_outcome=outcome, job_error="The quota ran out." if outcome == "FAILED" else None
    )
    kwargs = f"requests={PROMPTS!r}, result_path={f'file://{tmp_path}'!r}"
    dag_run = run_dag(f"cai_{outcome.lower()}", batch_dag(f"cai_{outcome.lower()}", kwargs))

    assert task_states(dag_run) == {"batch": "failed"}
    logs = capfd.readouterr().out
    assert error in logs
    if outcome == "FAILED":
        assert "The quota ran out." in logs
    else:
        assert "cancelled before 3 of 3 requests completed" in logs


def test_an_expired_job_lands_its_requests_as_expired(gemini_emulator, llm_conn, tmp_path):
    gemini_emulator.configure(job_outcome="EXPIRED")
    kwargs = f"requests={PROMPTS!r}, result_path={f'file://{tmp_path}'!r}"
    dag_run = run_dag("cai_expired", batch_dag("cai_expired", kwargs))

    assert task_states(dag_run) == {"batch": "success"}
    manifest, _ = manifest_and_rows("cai_expired", dag_run)
    assert manifest["terminal_reason"] == "expired"
    assert manifest["counts"]["expired"] == 3


# -- the adapter against the emulator ----------------------------------------------------------


def submit(adapter: GeminiBatchAdapter, fingerprint: str = FINGERPRINT, prompts: list[str] = PROMPTS) -> str:
    return adapter.submit(
        [{"prompt": p} for p in prompts],
        model="gemini-2.5-flash",
        idempotency_key=KEY16,
        input_fingerprint=fingerprint,
        output_spec=spec(),
    ).batch_id


def test_find_orphaned_batch_matches_key_fingerprint_and_time(gemini_emulator, adapter):
    now = gemini_emulator.freeze()
    before = datetime.fromtimestamp(now, UTC)
    older = submit(adapter)
    gemini_emulator.advance(3600)
    newer = submit(adapter)
    submit(adapter, fingerprint="e" * 64)  # the same task instance, another input
    gemini_emulator.add_history(20)

    found = adapter.find_orphaned_batch(KEY16, FINGERPRINT, not_before=before.isoformat())
    assert found == newer != older
    assert adapter.find_orphaned_batch(KEY16, "d" * 64, not_before=before.isoformat()) is None
    assert adapter.find_orphaned_batch("fedcba9876543210", FINGERPRINT, not_before=before.isoformat()) is None
    later = (before + timedelta(hours=2)).isoformat()
    assert adapter.find_orphaned_batch(KEY16, FINGERPRINT, not_before=later) is None


def test_cancel_and_counts_of_a_cancelled_job(gemini_emulator, adapter):
    gemini_emulator.freeze()
    gemini_emulator.configure(pending_seconds=3600)
    batch_id = submit(adapter)
    assert adapter.get_batch(batch_id).status == "in_progress"

    adapter.cancel_batch(batch_id)
    state = adapter.get_batch(batch_id)
    assert state.status == "cancelled"
    assert state.counts == {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 3}
    assert list(adapter.iter_results(batch_id)) == []


def test_an_unknown_job_reads_as_not_found(gemini_emulator, adapter):
    with pytest.raises(GeminiApiError, match="404") as raised:
        adapter.get_batch("batches/nope")
    assert getattr(raised.value, "status_code", None) == 404  # what common.ai reads as "not found"
    with pytest.raises(GeminiApiError, match="404") as raised:
        adapter.iter_results("batches/nope")  # at the call, not when iterated
    assert getattr(raised.value, "status_code", None) == 404


def test_a_large_input_goes_through_an_uploaded_file(gemini_emulator, adapter, monkeypatch):
    monkeypatch.setattr(inputs, "AUTO_INLINE_BYTES", 0)  # every input counts as too large to inline
    result = adapter.submit(
        [{"prompt": p} for p in PROMPTS],
        model="gemini-2.5-flash",
        idempotency_key=KEY16,
        input_fingerprint=FINGERPRINT,
        output_spec=spec(),
    )
    assert str(result.provider_input_ref).startswith("files/")
    items = sorted(adapter.iter_results(result.batch_id), key=lambda item: item.index)
    assert [(item.index, item.provider_status, item.raw) for item in items] == [
        (i, "success", answer_text(p)) for i, p in enumerate(PROMPTS)
    ]
    calls = gemini_emulator.stats()["calls"]
    assert calls["uploads"] == 1
    assert calls["downloads"] >= 1  # the answers streamed from the result file
