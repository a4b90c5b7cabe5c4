"""Embeddings batches through real Airflow against the emulator: created by our operator (inline and
through a file) or by the SDK directly, stored as Parquet, CSV and flat JSONL with a vector column."""

from __future__ import annotations

import csv
import json

import pytest
from google import genai

from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import failing_after_submit

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORDS = [{"id": i, "name": f"product {i}", "description": f"a thing of kind {i % 3}"} for i in range(1, 6)]
DIMS = 16


def pipeline(dag_id: str, destination: str, *, embed: dict, store: dict, prelude: str = "") -> str:
    embed_class = "FailAfterSubmit" if prelude else "GeminiBatchEmbedOperator"
    return f"""
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.operators.embed import GeminiBatchEmbedOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator
{prelude}
@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1))
def the_dag():
    embed = {embed_class}(task_id="embed", retries=1, retry_delay=datetime.timedelta(0), **{embed!r})
    wait = GeminiBatchSensor(task_id="wait", batch_name=embed.output["batch_name"], poke_interval=0.1)
    store = GeminiBatchResultsToStorageOperator(
        task_id="store", batch_name=embed.output["batch_name"], destination={destination!r}, **{store!r}
    )
    embed >> wait >> store

the_dag()
"""


def read_rows(path, output_format: str) -> list[dict]:
    if output_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), DIMS)
        return table.to_pylist()
    if output_format == "csv":
        with open(path, newline="") as handle:
            return [{**row, "embedding": json.loads(row["embedding"])} for row in csv.DictReader(handle)]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("input_mode", ["inline", "file"])
@pytest.mark.parametrize("output_format", ["parquet", "csv", "flat_jsonl"])
def test_our_embeddings_come_back_one_vector_per_key_joined_to_the_input(
    gemini_emulator, tmp_path, output_format, input_mode
):
    destination = tmp_path / f"vectors.{output_format}"
    embed = {
        "records": RECORDS,
        "text_field": "description",
        "task_type": "RETRIEVAL_DOCUMENT",
        "output_dimensionality": DIMS,
        "input_mode": input_mode,
    }
    store = {"output_format": output_format, "join_input": RECORDS}
    dag_id = f"embed_{output_format}_{input_mode}"
    dag_run = run_dag(dag_id, pipeline(dag_id, str(destination), embed=embed, store=store))
    assert set(task_states(dag_run).values()) == {"success"}
    rows = sorted(read_rows(destination, output_format), key=lambda r: int(r["id"]))
    assert [int(r["id"]) for r in rows] == [r["id"] for r in RECORDS]
    assert [r["name"] for r in rows] == [r["name"] for r in RECORDS]  # joined to the input
    assert all(len(r["embedding"]) == DIMS for r in rows)
    assert not any(r["error"] for r in rows)
    assert len({tuple(r["embedding"]) for r in rows}) == 3  # one vector per distinct text
    manifest = xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]
    assert (manifest["rows"], manifest["succeeded"], manifest["failed"]) == (5, 5, 0)
    stats = gemini_emulator.stats()
    assert (stats["calls"]["embed_creates"], stats["calls"]["uploads"]) == (1, int(input_mode == "file"))


@pytest.mark.parametrize("output_format", ["parquet", "csv", "flat_jsonl"])
@pytest.mark.parametrize("source", ["inline", "file"])
def test_a_job_the_sdk_made_is_stored_with_its_vectors(gemini_emulator, tmp_path, source, output_format):
    from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

    client = genai.Client(api_key=gemini_emulator.api_key, http_options={"base_url": gemini_emulator.url})
    if source == "inline":  # the SDK sends no keys: each answer is named after its place
        contents = [{"parts": [{"text": r["description"]}]} for r in RECORDS]
        src: dict = {"inlined_requests": {"contents": contents, "config": {"output_dimensionality": DIMS}}}
        join = [{**r, "id": f"request-{n:06d}"} for n, r in enumerate(RECORDS, start=1)]
    else:  # a file of keyed EmbedContentRequests, as the batch API takes them
        path = tmp_path / "requests.jsonl"
        lines = [
            {
                "key": str(r["id"]),
                "request": {"content": {"parts": [{"text": r["description"]}]}, "outputDimensionality": DIMS},
            }
            for r in RECORDS
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        uploaded = client.files.upload(
            file=str(path), config={"mime_type": "jsonl", "display_name": "vectors"}
        )
        src = {"file_name": uploaded.name}
        join = RECORDS
    job = client.batches.create_embeddings(
        model="gemini-embedding-001", src=src, config={"display_name": "made-by-the-sdk"}
    )
    destination = tmp_path / f"sdk.{output_format}"
    store = GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name=job.name,
        destination=str(destination),
        output_format=output_format,
        join_input=join,
    )
    manifest = store.execute({})
    rows = sorted(read_rows(destination, output_format), key=lambda r: r["key"])
    assert [r["key"] for r in rows] == sorted(str(r["id"]) for r in join)
    assert [r["name"] for r in rows] == [r["name"] for r in sorted(join, key=lambda r: str(r["id"]))]
    assert all(len(r["embedding"]) == DIMS for r in rows)
    assert (manifest["succeeded"], manifest["embeddings"]) == (5, 5)


def test_a_generation_request_in_an_embeddings_file_fails_before_anything_is_paid(
    gemini_emulator, tmp_path, capfd
):
    path = tmp_path / "requests.jsonl"
    good = {"key": "a", "request": {"content": {"parts": [{"text": "fine"}]}}}
    bad = {"key": "b", "request": {"contents": [{"parts": [{"text": "a generation request"}]}]}}
    path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    dag_run = run_dag(
        "embed_bad",
        pipeline("embed_bad", str(tmp_path / "out.jsonl"), embed={"input_path": str(path)}, store={}),
    )
    assert task_states(dag_run)["embed"] == "failed"
    captured = capfd.readouterr()
    assert f'{path}, line 2: request has no "content" (an embeddings request takes one "content"' in (
        captured.out + captured.err
    )
    calls = gemini_emulator.stats()["calls"]
    assert (calls["uploads"], calls["embed_creates"]) == (0, 0)


def test_a_model_without_batch_embeddings_fails_before_anything_is_paid(gemini_emulator, tmp_path, capfd):
    embed = {"records": RECORDS, "text_field": "name", "model": "gemini-2.5-flash"}
    dag_run = run_dag(
        "embed_model", pipeline("embed_model", str(tmp_path / "o.jsonl"), embed=embed, store={})
    )
    assert task_states(dag_run)["embed"] == "failed"
    captured = capfd.readouterr()
    assert "does not serve embeddings in batch mode" in captured.out + captured.err
    assert gemini_emulator.stats()["calls"]["embed_creates"] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_type": "RETRIEVAL"}, "task_type 'RETRIEVAL' is not one of"),
        ({"title": "Catalog"}, 'a title is only taken with task_type="RETRIEVAL_DOCUMENT"'),
        ({"output_dimensionality": 0}, "output_dimensionality must be a positive integer"),
        ({"generation_config": {"temperature": 0}}, "generation_config: for text generation, not embeddings"),
    ],
)
def test_settings_the_api_would_refuse_fail_when_the_dag_is_parsed(options, message):
    from airflow_provider_gemini.operators.embed import GeminiBatchEmbedOperator

    with pytest.raises(ValueError, match=message):
        GeminiBatchEmbedOperator(task_id="e", records=RECORDS, text_field="name", **options)


def test_a_retry_reattaches_to_the_embeddings_job_it_paid_for(gemini_emulator, tmp_path):
    prelude = failing_after_submit(base="GeminiBatchEmbedOperator")
    embed = {"records": RECORDS, "text_field": "name"}
    dag_run = run_dag(
        "embed_retry",
        pipeline("embed_retry", str(tmp_path / "o.jsonl"), embed=embed, store={}, prelude=prelude),
    )
    assert set(task_states(dag_run).values()) == {"success"}
    assert xcom_values("embed_retry", dag_run.run_id)[("embed", "return_value")]["reattached"] is True
    assert gemini_emulator.stats()["calls"]["embed_creates"] == 1


@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_every_format_counts_the_vectors_and_prices_them_only_with_token_counts(
    gemini_emulator, tmp_path, output_format
):
    dag_id = f"embed_count_{output_format}"
    embed = {"records": RECORDS, "text_field": "description", "output_dimensionality": DIMS}
    source = pipeline(
        dag_id, str(tmp_path / f"v.{output_format}"), embed=embed, store={"output_format": output_format}
    )
    dag_run = run_dag(dag_id, source)
    manifest = xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]
    assert (manifest["embeddings"], manifest["succeeded"]) == (5, 5)
    # The emulator's embedding responses carry no usage metadata: no cost is made up from zero tokens.
    assert (manifest["cost"]["batch"], manifest["tokens"]["total"]) == (None, 0)
    assert "no token counts" in manifest["cost"]["note"]


@pytest.mark.parametrize("given", ["requests", "input_path"])
def test_embeddings_from_requests_or_a_file_of_them(gemini_emulator, tmp_path, given):
    requests = [{"key": f"d{i}", "request": {"content": {"parts": [{"text": f"doc {i}"}]}}} for i in range(3)]
    if given == "input_path":
        path = tmp_path / "requests.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in requests))
        embed: dict = {"input_path": str(path), "output_dimensionality": DIMS}
    else:
        embed = {"requests": requests, "output_dimensionality": DIMS}
    dag_id = f"embed_from_{given}"
    destination = tmp_path / "v.parquet"
    dag_run = run_dag(
        dag_id, pipeline(dag_id, str(destination), embed=embed, store={"output_format": "parquet"})
    )
    assert set(task_states(dag_run).values()) == {"success"}
    rows = read_rows(destination, "parquet")
    assert sorted(r["key"] for r in rows) == ["d0", "d1", "d2"]
    assert all(len(r["embedding"]) == DIMS for r in rows)  # the operator's length, merged into each request
