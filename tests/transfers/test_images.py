"""Answers with images (``responseModalities`` IMAGE): the images written as objects beside the rows,
the rows carrying their paths, and nothing left behind by a transfer that fails midway."""

from __future__ import annotations

import csv
import json

import pytest

from airflow_provider_gemini.testing._responses import png
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.transfers.test_results_to_storage import pipeline

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORDS = [{"id": f"p/{i}", "name": f"poster {i}"} for i in range(1, 5)]  # a "/" in a key, on purpose
CREATE = {
    "records": RECORDS,
    "prompt_template": "Draw {name}.",
    "generation_config": {"response_modalities": ["TEXT", "IMAGE"]},
    "input_mode": "file",
}


def read_rows(path, output_format: str) -> list[dict]:
    if output_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if output_format == "csv":
        with open(path, newline="") as handle:
            return [{**row, "images": json.loads(row["images"])} for row in csv.DictReader(handle)]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("output_format", ["parquet", "csv", "flat_jsonl"])
def test_images_are_written_beside_the_rows_which_name_them(gemini_emulator, tmp_path, output_format):
    destination = tmp_path / f"posters.{output_format}"
    dag_id = f"images_{output_format}"
    store = {"output_format": output_format, "join_input": RECORDS}
    dag_run = run_dag(dag_id, pipeline(dag_id, str(destination), store=store, create=CREATE))
    assert task_states(dag_run)["store"] == "success"
    rows = sorted(read_rows(destination, output_format), key=lambda r: r["key"])
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    folder = tmp_path / "posters" / "images"
    for row, record in zip(rows, RECORDS, strict=True):
        [path] = row["images"]
        name = f"{record['id'].replace('/', '_')}-1.png"
        assert path == f"file://{folder / name}"
        assert (folder / name).read_bytes() == png(f"Draw {record['name']}.")  # the image the model made
    manifest = xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]
    assert (manifest["images"], manifest["succeeded"]) == (4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posters", f"posters.{output_format}"]


def test_a_transfer_that_fails_midway_leaves_neither_rows_nor_images(gemini_emulator, tmp_path, capfd):
    destination = tmp_path / "posters.parquet"
    # Each try of the download is cut after 500 bytes (and resumed from there): 5 tries end short of
    # the file, after some images were already written.
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=500)
    records = [{"id": f"p{i}", "name": f"poster {i}"} for i in range(40)]
    create = {**CREATE, "records": records}
    store = {"output_format": "parquet"}
    dag_run = run_dag(
        "images_dropped", pipeline("images_dropped", str(destination), store=store, create=create)
    )
    assert task_states(dag_run)["store"] == "failed"
    captured = capfd.readouterr()
    assert "failed after 5 attempts" in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []  # no rows, no images, no hidden folder
