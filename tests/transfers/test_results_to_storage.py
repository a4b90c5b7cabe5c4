"""Results to storage through real Airflow, against the emulator, written to local files."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from airflow_provider_gemini.hooks.gemini import GeminiHook
from tests.airflow_helpers import run_dag, task_states, xcom_values

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORDS = [{"id": f"p{i}", "name": f"product {i}", "price": i * 1.5} for i in range(1, 7)]
SCHEMA = {
    "type": "OBJECT",
    "properties": {"headline": {"type": "STRING"}, "rating": {"type": "INTEGER", "minimum": 1, "maximum": 5}},
}


def pipeline(dag_id: str, destination: str, *, store: dict, create: dict | None = None) -> str:
    create = create or {
        "records": RECORDS,
        "prompt_template": "Describe {name}.",
        "key_field": "id",
        "generation_config": {"response_mime_type": "application/json", "response_schema": SCHEMA},
    }
    return f"""
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1))
def the_dag():
    create = GeminiBatchCreateOperator(task_id="create", model="gemini-2.5-flash", **{create!r})
    wait = GeminiBatchSensor(task_id="wait", batch_name=create.output["batch_name"], poke_interval=0.1,
                             max_failed_request_ratio=1.0)
    store = GeminiBatchResultsToStorageOperator(task_id="store", batch_name=create.output["batch_name"],
                                                destination={destination!r}, **{store!r})
    create >> wait >> store

the_dag()
"""


@pytest.mark.parametrize("input_mode", ["inline", "file"])
@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_each_format_reads_back_one_row_per_key(gemini_emulator, tmp_path, output_format, input_mode):
    destination = tmp_path / f"out.{output_format}"
    dag_id = f"store_{output_format}_{input_mode}"
    create = {
        "records": RECORDS,
        "prompt_template": "Describe {name}.",
        "key_field": "id",
        "input_mode": input_mode,
        "generation_config": {"response_mime_type": "application/json", "response_schema": SCHEMA},
    }
    store = {
        "output_format": output_format,
        "parse_json": True,
        "response_schema": SCHEMA,
        "join_input": RECORDS,
    }
    dag_run = run_dag(dag_id, pipeline(dag_id, str(destination), store=store, create=create))
    assert task_states(dag_run) == {"create": "success", "wait": "success", "store": "success"}

    rows = read_back(destination, output_format)
    assert sorted(r["key"] for r in rows) == [f"p{i}" for i in range(1, 7)]
    if output_format != "jsonl":
        row = next(r for r in rows if r["key"] == "p3")
        assert row["name"] == "product 3"  # joined back from the input record
        assert float(row["price"]) == 4.5
        assert 1 <= int(row["rating"]) <= 5  # structured output became a column
        assert row["headline"]
        assert int(row["total_tokens"]) > 0
    manifest = xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]
    assert manifest["rows"] == manifest["succeeded"] == 6
    assert manifest["failed"] == manifest["missing"] == 0
    assert manifest["bytes"] == destination.stat().st_size
    assert manifest["tokens"]["total"] > 0
    assert manifest["cost"]["standard"] > manifest["cost"]["batch"] > 0
    assert [p.name for p in tmp_path.iterdir()] == [destination.name]  # no temporary file left


def read_back(path, output_format):
    if output_format == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        assert table.schema.field("prompt_tokens").type == "int64"
        assert table.schema.field("rating").type == "int64"
        return table.to_pylist()
    if output_format == "csv":
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failed_requests_go_to_the_errors_file_and_the_threshold_fails_after_writing(
    gemini_emulator, tmp_path, capfd
):
    gemini_emulator.configure(failed_key_pattern="^p[25]$")
    destination, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    store = {
        "output_format": "flat_jsonl",
        "errors_destination": str(errors),
        "max_failed_request_ratio": 0.2,
    }
    dag_run = run_dag("store_errors", pipeline("store_errors", str(destination), store=store))
    assert task_states(dag_run)["store"] == "failed"
    assert len(destination.read_text().splitlines()) == 6  # written before the threshold failed the task
    failed = [json.loads(line) for line in errors.read_text().splitlines()]
    assert sorted(f["key"] for f in failed) == ["p2", "p5"]
    assert all("400 INVALID_ARGUMENT" in f["error"] for f in failed)
    captured = capfd.readouterr()
    assert "2 of 6 requests failed (33.3%)" in captured.out + captured.err


def test_missing_keys_are_an_error_unless_allowed(gemini_emulator, tmp_path, capfd):
    extra = [*RECORDS, {"id": "ghost", "name": "never asked"}]
    store = {"output_format": "flat_jsonl", "join_input": extra}
    dag_run = run_dag("store_missing", pipeline("store_missing", str(tmp_path / "o.jsonl"), store=store))
    assert task_states(dag_run)["store"] == "failed"
    captured = capfd.readouterr()
    assert "1 of 7 requests have no result (first: ghost)" in captured.out + captured.err
    allowed = {**store, "allow_missing": True}
    dag_run = run_dag(
        "store_missing_ok", pipeline("store_missing_ok", str(tmp_path / "p.jsonl"), store=allowed)
    )
    assert task_states(dag_run)["store"] == "success"
    assert xcom_values("store_missing_ok", dag_run.run_id)[("store", "return_value")]["missing"] == 1


def test_dropped_connection_fails_clearly_and_leaves_nothing(gemini_emulator, tmp_path, capfd):
    destination = tmp_path / "out.jsonl"
    create = {
        "requests": [{"contents": [{"parts": [{"text": f"q{i}"}]}]} for i in range(50)],
        "input_mode": "file",
    }
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=2000)
    dag_run = run_dag("store_dropped", pipeline("store_dropped", str(destination), store={}, create=create))
    assert task_states(dag_run)["store"] == "failed"
    captured = capfd.readouterr()
    assert "failed after 5 attempts" in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_refuses_before_reading(gemini_emulator, tmp_path):
    destination = tmp_path / "out.jsonl"
    destination.write_text("keep me\n")
    dag_run = run_dag("store_keep", pipeline("store_keep", str(destination), store={"overwrite": False}))
    assert task_states(dag_run)["store"] == "failed"
    assert destination.read_text() == "keep me\n"
    assert gemini_emulator.stats()["calls"]["downloads"] == 0


KILLED_TRANSFER = """
import sys
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator
op = GeminiBatchResultsToStorageOperator(task_id="t", batch_name=sys.argv[1], destination=sys.argv[2],
                                         output_format="parquet")
op.execute({})
"""


@pytest.mark.parametrize("images", [False, True], ids=["rows", "rows and images"])
def test_a_transfer_killed_mid_stream_leaves_nothing_and_its_retry_exactly_the_file(
    gemini_emulator, tmp_path, images
):
    # With images, each answer carries one (responseModalities IMAGE): written beside the rows.
    config = {"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}} if images else {}
    lines = b"".join(
        json.dumps(
            {"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"item {i} " * 20}]}], **config}}
        ).encode()
        + b"\n"
        for i in range(3000)
    )
    hook = GeminiHook()
    uploaded = hook.upload_file(__import__("io").BytesIO(lines))
    job = hook.create_batch(model="gemini-2.5-flash", display_name="big", file_name=uploaded["name"])
    gemini_emulator.add_fault(operations=["downloads"], chunk_delay_seconds=0.2, count=1)  # the first try
    destination = tmp_path / "out.parquet"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_TRANSFER, job.name, str(destination)], env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        assert child.poll() is None, "the transfer ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # mid-stream
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert not destination.exists()
    assert not (tmp_path / "out").exists()  # no image either: they wait, hidden, for their rows

    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    retry = GeminiBatchResultsToStorageOperator(
        task_id="t", batch_name=job.name, destination=str(destination), output_format="parquet"
    )
    manifest = retry.execute({})
    assert (manifest["succeeded"], manifest["images"]) == (3000, 3000 if images else 0)
    # The killed try's hidden parts are gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["out", "out.parquet"] if images else ["out.parquet"]
    )
    if images:
        assert len(list((tmp_path / "out" / "images").iterdir())) == 3000


def test_static_destination_is_an_asset_with_an_event(gemini_emulator, tmp_path):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    destination = tmp_path / "asset.jsonl"
    dag_run = run_dag("store_asset", pipeline("store_asset", str(destination), store={}))
    assert task_states(dag_run)["store"] == "success"
    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.uri == f"file://{destination}").one()
        events = session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id).all()
        assert len(events) == 1
        assert events[0].extra["rows"] == 6
    manifest = xcom_values("store_asset", dag_run.run_id)[("store", "return_value")]
    assert manifest["destination"] == f"file://{destination}"


def test_templated_destination_declares_no_asset():
    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    op = GeminiBatchResultsToStorageOperator(task_id="t", batch_name="b", destination="s3://x/{{ ds }}.jsonl")
    assert op.outlets == []
    fixed = GeminiBatchResultsToStorageOperator(task_id="u", batch_name="b", destination="s3://x/out.jsonl")
    assert [a.uri for a in fixed.outlets] == ["s3://x/out.jsonl"]


def file_job(display_name: str, count: int):
    """A batch job from an uploaded file of ``count`` requests keyed k0, k1 ..."""
    hook = GeminiHook()
    lines = b"".join(
        json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"q{i}"}]}]}}).encode()
        + b"\n"
        for i in range(count)
    )
    uploaded = hook.upload_file(io.BytesIO(lines))
    return hook.create_batch(model="gemini-2.5-flash", display_name=display_name, file_name=uploaded["name"])


def test_an_unreadable_result_line_in_the_passthrough_is_named_and_leaves_nothing(
    gemini_emulator, tmp_path, monkeypatch
):
    from airflow_provider_gemini.batch.errors import ResultsFormatError
    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    job = file_job("bad", 20)
    real = GeminiHook.iter_result_blocks

    def with_a_bad_line(self, name):  # the results as served, then a line that is not JSON
        yield from real(self, name)
        yield b"<html>Service Unavailable</html>\n"

    monkeypatch.setattr(GeminiHook, "iter_result_blocks", with_a_bad_line)
    destination = tmp_path / "out.jsonl"
    operator = GeminiBatchResultsToStorageOperator(
        task_id="t", batch_name=job.name, destination=str(destination), output_format="jsonl"
    )
    with pytest.raises(ResultsFormatError, match="result line 21: not JSON"):
        operator.execute({})
    assert list(tmp_path.iterdir()) == []


def test_vertex_results_elsewhere_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    from airflow_provider_gemini.batch.errors import GeminiBatchError
    from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState
    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    job = BatchJobInfo(name="batches/v1", state=BatchState.SUCCEEDED, result_file="gs://out/prefix")
    monkeypatch.setattr(GeminiHook, "get_batch", lambda self, name: job)  # a Vertex AI job's record
    operator = GeminiBatchResultsToStorageOperator(
        task_id="t", batch_name="batches/v1", destination=str(tmp_path / "out.jsonl")
    )
    with pytest.raises(GeminiBatchError, match=r"results to gs://out/prefix \(Vertex AI\)"):
        operator.execute({})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_an_empty_or_blocked_answer_fails_the_same_in_every_format(
    gemini_emulator, tmp_path, monkeypatch, output_format
):
    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    job = file_job("empty", 10)
    usage = '"usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}'
    answers = {  # spelled as a server may write them, not as json.dumps would
        "k3": '{"key": "k3", "response": {"candidates": [ ], ' + usage + "}}",
        "k6": '{"key": "k6", "response": {"promptFeedback": {"blockReason": "SAFETY"}, ' + usage + "}}",
    }
    real = GeminiHook.iter_result_blocks
    served = []

    def with_empty_answers(self, name):
        for block in real(self, name):
            block = b"".join(
                answers.get(json.loads(line)["key"], line.decode()).encode() + b"\n"
                for line in block.splitlines()
            )
            served.append(block)
            yield block

    monkeypatch.setattr(GeminiHook, "iter_result_blocks", with_empty_answers)
    destination, errors = tmp_path / f"out.{output_format}", tmp_path / "errors.jsonl"
    manifest = GeminiBatchResultsToStorageOperator(
        task_id="t",
        batch_name=job.name,
        destination=str(destination),
        output_format=output_format,
        errors_destination=str(errors),
        max_failed_request_ratio=1.0,
    ).execute({})

    assert (manifest["rows"], manifest["succeeded"], manifest["failed"]) == (10, 8, 2)
    failed = {f["key"]: f for f in map(json.loads, errors.read_text().splitlines())}
    assert {k: f["error"] for k, f in failed.items()} == {
        "k3": "blocked: no candidates",
        "k6": "blocked: SAFETY",
    }
    assert failed["k3"]["prompt_tokens"] == 7
    if output_format == "jsonl":
        assert destination.read_bytes() == b"".join(served)  # the bytes as they came
    else:
        if output_format == "parquet":
            import pyarrow.parquet as pq

            rows = {r["key"]: r for r in pq.read_table(destination).to_pylist()}
        else:
            rows = {r["key"]: r for r in read_back(destination, output_format)}
        assert rows["k3"]["error"] == "blocked: no candidates"
        assert rows["k6"]["error"] == "blocked: SAFETY"
        assert not rows["k1"]["error"]


def test_objects_frozen_for_the_transfer_are_put_back(gemini_emulator, tmp_path):
    import gc

    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    job = file_job("frozen", 5)
    assert gc.get_freeze_count() == 0
    manifest = GeminiBatchResultsToStorageOperator(
        task_id="t", batch_name=job.name, destination=str(tmp_path / "out.csv"), output_format="csv"
    ).execute({})
    assert manifest["rows"] == 5
    assert gc.get_freeze_count() == 0
