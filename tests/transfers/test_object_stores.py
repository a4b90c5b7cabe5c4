"""Results written to S3 (moto's server, over HTTP), read back with the expected schema."""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest

from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.transfers.test_results_to_storage import RECORDS, SCHEMA, pipeline

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")


def s3_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def store_enriched(destination: str, output_format: str, conn_id: str, dag_id: str) -> dict:
    """Run create -> wait -> store to ``destination``, joined and parsed; the store task's manifest."""
    store = {
        "output_format": output_format,
        "destination_conn_id": conn_id,
        "parse_json": True,
        "response_schema": SCHEMA,
        "join_input": RECORDS,
    }
    dag_run = run_dag(dag_id, pipeline(dag_id, destination, store=store))
    assert task_states(dag_run)["store"] == "success"
    return xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]


@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_each_format_on_s3(gemini_emulator, moto_s3, s3_bucket, output_format):
    destination = f"s3://{s3_bucket}/enriched/out.{output_format}"
    manifest = store_enriched(destination, output_format, "aws_default", f"s3_{output_format}")

    objects = s3_objects(moto_s3, s3_bucket)
    assert list(objects) == [f"enriched/out.{output_format}"]  # no temporary object left behind
    check_read_back(objects[f"enriched/out.{output_format}"], output_format, manifest, destination)


def check_read_back(body: bytes, output_format: str, manifest: dict, destination: str) -> None:
    """The object holds one row per input key with the expected columns; the manifest says so."""
    if output_format == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(body))
        assert {"key", "text", "rating", "name", "total_tokens"} <= set(table.schema.names)
        rows = table.to_pylist()
    elif output_format == "csv":
        rows = list(csv.DictReader(io.StringIO(body.decode())))
    else:
        rows = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(r["key"] for r in rows) == [f"p{i}" for i in range(1, 7)]
    assert manifest["destination"] == destination
    assert manifest["bytes"] == len(body)


def test_a_missing_bucket_fails_before_any_result_is_read_naming_the_path(gemini_emulator, s3_bucket, capfd):
    destination = f"s3://{s3_bucket}-gone/enriched/out.parquet"
    store = {"output_format": "parquet", "destination_conn_id": "aws_default"}
    create = {
        "records": RECORDS,
        "prompt_template": "Describe {name}.",
        "input_mode": "file",
    }  # a result file
    dag_run = run_dag(
        "s3_missing_bucket", pipeline("s3_missing_bucket", destination, store=store, create=create)
    )
    assert task_states(dag_run)["store"] == "failed"
    captured = capfd.readouterr()
    assert f"cannot write to {destination}" in captured.out + captured.err
    stats = gemini_emulator.stats()
    assert (stats["jobs_created"], stats["calls"]["downloads"]) == (1, 0)


def test_images_go_beside_the_rows_on_s3(gemini_emulator, moto_s3, s3_bucket):
    destination = f"s3://{s3_bucket}/posters/run.parquet"
    create = {
        "records": RECORDS,
        "prompt_template": "Draw {name}.",
        "generation_config": {"response_modalities": ["TEXT", "IMAGE"]},
    }
    store = {"output_format": "parquet", "destination_conn_id": "aws_default"}
    dag_run = run_dag("s3_images", pipeline("s3_images", destination, store=store, create=create))
    assert task_states(dag_run)["store"] == "success"
    objects = s3_objects(moto_s3, s3_bucket)
    images = sorted(key for key in objects if key.startswith("posters/run/images/"))
    assert images == [f"posters/run/images/p{i}-1.png" for i in range(1, 7)]
    assert all(objects[key].startswith(b"\x89PNG") for key in images)
    assert sorted(set(objects) - set(images)) == ["posters/run.parquet"]  # nothing hidden left behind
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(objects["posters/run.parquet"])).to_pylist()
    assert sorted(path for row in rows for path in row["images"]) == [
        f"s3://{s3_bucket}/{key}" for key in images
    ]
