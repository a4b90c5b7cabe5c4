"""Each example DAG, copied into the test dags folder, run to success by real Airflow on the emulator."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom_values

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
PROMPTS = EXAMPLES / "data" / "prompts.jsonl"
DAY_1 = datetime(2026, 11, 24, tzinfo=timezone.utc)
DAY_2 = datetime(2026, 11, 25, tzinfo=timezone.utc)
pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")


def run_example(dag_id: str, logical_date: datetime = DAY_1) -> Any:
    return run_dag(dag_id, (EXAMPLES / f"{dag_id}.py").read_text(), logical_date=logical_date)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_basic_writes_one_answer_per_prompt(gemini_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_BASIC_INPUT", str(PROMPTS))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_BASIC_OUTPUT_DIR", str(tmp_path))
    run = run_example("gemini_batch_basic")
    assert task_states(run) == {"create": "success", "wait": "success", "store": "success"}
    lines = read_jsonl(tmp_path / "results-2026-11-24.jsonl")
    assert [line["key"] for line in lines] == [
        json.loads(raw)["key"] for raw in PROMPTS.read_text().splitlines()
    ]
    assert all(line["response"]["candidates"][0]["content"]["parts"][0]["text"] for line in lines)
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_sharded_fans_out_one_job_per_shard_and_sums_the_manifests(gemini_emulator, monkeypatch, tmp_path):
    source = tmp_path / "catalogue.jsonl"
    with source.open("w") as out:
        for number in range(10):  # 10 rows, at most 4 per job: shards of 4, 4 and 2
            request = {"contents": [{"role": "user", "parts": [{"text": f"Describe product {number}"}]}]}
            out.write(json.dumps({"key": f"p{number:02d}", "request": request}) + "\n")
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_SHARDED_INPUT", str(source))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_SHARDED_DIR", str(tmp_path / "work"))
    run = run_example("gemini_batch_sharded")
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert sorted(i for (task, i) in states if task == "shard_batch.create") == [0, 1, 2]
    assert gemini_emulator.stats()["jobs_created"] == 3

    results = sorted((tmp_path / "work").glob("*/results/shard-*.jsonl"))
    rows = [row for path in results for row in read_jsonl(path)]
    assert [len(read_jsonl(path)) for path in results] == [4, 4, 2]
    assert sorted(row["key"] for row in rows) == [f"p{n:02d}" for n in range(10)]

    summary = xcom_values("gemini_batch_sharded", run.run_id)[("summarize", "return_value")]
    assert summary["shards"] == 3
    assert summary["rows"] == summary["succeeded"] == 10
    assert summary["failed"] == summary["missing"] == 0
    assert summary["tokens"]["total"] == sum(row["total_tokens"] for row in rows) > 0
    assert 0 < summary["cost"]["batch"] < summary["cost"]["standard"]


def test_cached_context_uses_the_cache_in_every_request_and_deletes_it(
    gemini_emulator, monkeypatch, tmp_path
):
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_CACHED_DOCUMENT", str(EXAMPLES / "data" / "store_handbook.md"))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_CACHED_OUTPUT_DIR", str(tmp_path))
    run = run_example("gemini_batch_cached_context")
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    with (tmp_path / "answers-2026-11-24.csv").open() as handle:
        answers = list(csv.DictReader(handle))
    assert len(answers) == 8
    assert all(int(row["cached_tokens"]) > 1000 for row in answers)  # the handbook, from the cache
    assert all(row["text"] and not row["error"] for row in answers)
    stats = gemini_emulator.stats()
    assert stats["caches_created"] == 1
    assert stats["live_caches"] == []  # the teardown deleted it


def test_cached_context_deletes_the_cache_even_when_the_batch_fails(gemini_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_CACHED_DOCUMENT", str(EXAMPLES / "data" / "store_handbook.md"))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_CACHED_OUTPUT_DIR", str(tmp_path))
    gemini_emulator.configure(job_outcome="FAILED", job_error="emulated outage")
    run = run_example("gemini_batch_cached_context")
    states = task_states(run)
    assert states["wait"] == "failed"
    assert states["delete_cache"] == "success"
    assert gemini_emulator.stats()["caches_created"] == 1
    assert gemini_emulator.stats()["live_caches"] == []


# -- the enrichment example: a second day enriches only new rows; re-running a day changes nothing --


@pytest.fixture
def catalog(monkeypatch, tmp_path) -> Path:
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT, category TEXT, headline TEXT, tone TEXT)"
        )
        db.executemany(
            "INSERT INTO products (id, name, category) VALUES (?, ?, ?)",
            [("p1", "Trail shoes", "sport"), ("p2", "Tea kettle", "kitchen"), ("p3", "Desk lamp", "home")],
        )
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_ENRICHMENT_DIR", str(tmp_path / "enriched"))
    return path


def table(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, headline, tone FROM products ORDER BY id").fetchall()


def test_enrichment_second_run_takes_only_new_rows_and_a_rerun_changes_nothing(gemini_emulator, catalog):
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    first = run_example("gemini_batch_enrichment", DAY_1)
    assert set(task_states(first).values()) == {"success"}
    after_first = table(catalog)
    assert all(headline and tone for _, headline, tone in after_first)

    with sqlite3.connect(catalog) as db:
        db.executemany(
            "INSERT INTO products (id, name, category) VALUES (?, ?, ?)",
            [("p4", "Rain jacket", "outdoor"), ("p5", "Chef's knife", "kitchen")],
        )
    second = run_example("gemini_batch_enrichment", DAY_2)
    assert set(task_states(second).values()) == {"success"}
    after_second = table(catalog)
    assert after_second[:3] == after_first  # the rows of day 1 are untouched
    assert all(headline for _, headline, _ in after_second)
    jobs = GeminiHook().list_batches()
    assert sorted(job.stats.request_count for job in jobs) == [2, 3]  # day 2 sent only the new rows
    assert gemini_emulator.stats()["jobs_created"] == 2

    rerun = run_example("gemini_batch_enrichment", DAY_2)  # the same day again
    assert set(task_states(rerun).values()) == {"skipped"}  # the query found nothing new
    assert table(catalog) == after_second
    assert gemini_emulator.stats()["jobs_created"] == 2


# -- the embeddings example: vectors back into the table, and a nearest-neighbour query on them --


def test_embeddings_fill_the_vector_column_and_the_check_finds_neighbours(gemini_emulator, catalog):
    with sqlite3.connect(catalog) as db:
        db.execute("ALTER TABLE products ADD COLUMN embedding TEXT")
    run = run_example("gemini_batch_embeddings", DAY_1)
    assert set(task_states(run).values()) == {"success"}
    with sqlite3.connect(catalog) as db:
        vectors = {key: json.loads(value) for key, value in db.execute("SELECT id, embedding FROM products")}
    assert sorted(vectors) == ["p1", "p2", "p3"]
    assert all(len(vector) == 64 for vector in vectors.values())
    neighbours = xcom_values("gemini_batch_embeddings", run.run_id)[("nearest_neighbours", "return_value")]
    expected = sorted(
        ((key, round(cosine(vectors["p1"], vectors[key]), 4)) for key in ("p2", "p3")), key=lambda kv: -kv[1]
    )
    assert [(n["id"], n["similarity"]) for n in neighbours] == expected  # closest first, to p1

    rerun = run_example("gemini_batch_embeddings", DAY_1)  # every row has its vector: nothing to embed
    assert set(task_states(rerun).values()) == {"skipped"}
    assert gemini_emulator.stats()["calls"]["embed_creates"] == 1


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    )
