"""Results into a SQL table through real Airflow, against the emulator, in a real SQLite database."""

from __future__ import annotations

import datetime
import json
import sqlite3

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import failing_after_submit

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORDS = [{"id": i, "name": f"product {i}", "category": "toys"} for i in range(1, 7)]
SCHEMA = {
    "type": "OBJECT",
    "properties": {"headline": {"type": "STRING"}, "rating": {"type": "INTEGER", "minimum": 1, "maximum": 5}},
}
RESULTS_TABLE = (
    "CREATE TABLE product_copy (id INTEGER PRIMARY KEY, key TEXT, name TEXT, headline TEXT, rating INTEGER, "
    "total_tokens INTEGER, error TEXT)"
)


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute(RESULTS_TABLE)
        conn.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, headline TEXT, rating INTEGER)"
        )
        conn.executemany(
            "INSERT INTO products (id, name) VALUES (?, ?)", [(r["id"], r["name"]) for r in RECORDS]
        )
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return str(path)


def pipeline(
    dag_id: str, load: dict, *, prelude: str = "", create_class: str = "GeminiBatchCreateOperator"
) -> str:
    retry = ", retries=1, retry_delay=datetime.timedelta(0)" if prelude else ""
    return f"""
import datetime
from airflow.sdk import dag
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_sql import GeminiBatchResultsToSqlOperator
{prelude}
@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1))
def the_dag():
    create = {create_class}(
        task_id="create", model="gemini-2.5-flash", records={RECORDS!r},
        prompt_template="Describe {{name}}."{retry},
        generation_config={{"response_mime_type": "application/json", "response_schema": {SCHEMA!r}}},
    )
    wait = GeminiBatchSensor(task_id="wait", batch_name=create.output["batch_name"], poke_interval=0.1)
    load = GeminiBatchResultsToSqlOperator(
        task_id="load", batch_name=create.output["batch_name"], sql_conn_id="warehouse", parse_json=True,
        response_schema={SCHEMA!r}, **{load!r}
    )
    create >> wait >> load

the_dag()
"""


def rows(database: str, query: str) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute(query).fetchall()


def test_upsert_loads_typed_rows_once_however_often_it_runs(gemini_emulator, database):
    load = {"table": "product_copy", "key_column": "id", "join_input": RECORDS}
    day = datetime.datetime(2026, 11, 2, tzinfo=datetime.timezone.utc)
    first = run_dag("sql_upsert", pipeline("sql_upsert", load), logical_date=day)
    assert task_states(first)["load"] == "success"
    loaded = rows(
        database, "SELECT id, typeof(id), key, name, headline, rating, total_tokens, error FROM product_copy"
    )
    assert [(r[0], r[1], r[2], r[3]) for r in loaded] == [
        (i, "integer", str(i), f"product {i}") for i in range(1, 7)
    ]
    assert all(r[4] and 1 <= r[5] <= 5 and r[6] > 0 and r[7] is None for r in loaded)
    manifest = xcom_values("sql_upsert", first.run_id)[("load", "return_value")]
    assert (manifest["loaded"], manifest["rows"], manifest["reattached"]) == (6, 6, False)
    assert manifest["destination"] == "product_copy"

    # The same run again (dag.test() starts its tasks at try 1 again: a second job), the same rows replaced.
    again = run_dag("sql_upsert", logical_date=day)
    assert task_states(again)["load"] == "success"
    assert rows(database, "SELECT id FROM product_copy ORDER BY id") == [(i,) for i in range(1, 7)]


def test_a_reattached_job_says_so_in_the_manifest(gemini_emulator, database):
    load = {"table": "product_copy", "key_column": "id"}
    source = pipeline("sql_reattached", load, prelude=failing_after_submit(), create_class="FailAfterSubmit")
    dag_run = run_dag("sql_reattached", source)
    assert task_states(dag_run)["load"] == "success"
    values = xcom_values("sql_reattached", dag_run.run_id)
    assert values[("create", "return_value")]["reattached"] is True
    assert values[("load", "return_value")]["reattached"] is True  # its cost may be in an earlier manifest
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_update_writes_answers_back_into_the_source_table(gemini_emulator, database):
    load = {"table": "products", "key_column": "id", "mode": "update"}
    dag_run = run_dag("sql_update", pipeline("sql_update", load))
    assert task_states(dag_run)["load"] == "success"
    updated = rows(database, "SELECT id, name, headline, rating FROM products ORDER BY id")
    assert [(r[0], r[1]) for r in updated] == [(r["id"], r["name"]) for r in RECORDS]
    assert all(r[2] and 1 <= r[3] <= 5 for r in updated)
    manifest = xcom_values("sql_update", dag_run.run_id)[("load", "return_value")]
    assert (manifest["loaded"], manifest["not_matched"]) == (6, 0)


def test_a_key_with_no_row_to_update_is_counted(gemini_emulator, database):
    with sqlite3.connect(database) as conn:
        conn.execute("DELETE FROM products WHERE id = 3")
    load = {"table": "products", "key_column": "id", "mode": "update"}
    dag_run = run_dag("sql_unmatched", pipeline("sql_unmatched", load))
    manifest = xcom_values("sql_unmatched", dag_run.run_id)[("load", "return_value")]
    assert (manifest["loaded"], manifest["not_matched"]) == (5, 1)


@pytest.mark.parametrize(
    ("load", "named"),
    [
        ({"table": "no_such_table"}, "cannot read the columns of table no_such_table"),
        ({"table": "products", "key_column": "sku"}, "table products has no column 'sku'"),
        ({"table": "products", "key_column": "id", "columns": {"text": "blurb"}}, "no column 'blurb'"),
    ],
)
def test_a_missing_table_or_column_fails_before_any_result_is_read(
    gemini_emulator, database, capfd, load, named
):
    dag_run = run_dag("sql_missing", pipeline("sql_missing", load))
    assert task_states(dag_run)["load"] == "failed"
    captured = capfd.readouterr()
    assert named in captured.out + captured.err
    assert gemini_emulator.stats()["calls"]["downloads"] == 0
    assert rows(database, "SELECT count(*) FROM product_copy") == [(0,)]


def test_failed_requests_stay_out_unless_asked_for_and_a_failed_load_changes_nothing(
    gemini_emulator, database
):
    gemini_emulator.configure(failed_key_pattern="^[25]$")
    load = {
        "table": "product_copy",
        "key_column": "id",
        "join_input": RECORDS,
        "max_failed_request_ratio": 0.5,
    }
    dag_run = run_dag("sql_failed", pipeline("sql_failed", load))
    assert task_states(dag_run)["load"] == "success"
    assert [r[0] for r in rows(database, "SELECT id FROM product_copy ORDER BY id")] == [1, 3, 4, 6]

    with_failed = {**load, "load_failed": True}
    dag_run = run_dag("sql_with_failed", pipeline("sql_with_failed", with_failed))
    assert task_states(dag_run)["load"] == "success"
    errors = rows(database, "SELECT id, error FROM product_copy WHERE error IS NOT NULL ORDER BY id")
    assert [e[0] for e in errors] == [2, 5]
    assert all("INVALID_ARGUMENT" in e[1] for e in errors)


def test_a_load_that_fails_midway_leaves_the_table_as_it_was(gemini_emulator, database):
    # The failed request's row has no headline, which the table refuses: chunks before it were written,
    # and the load fails on it, so the transaction is rolled back.
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE strict_copy (id INTEGER PRIMARY KEY, headline TEXT NOT NULL) STRICT")
        conn.execute("INSERT INTO strict_copy VALUES (99, 'kept')")
    gemini_emulator.configure(failed_key_pattern="^6$")
    load = {
        "table": "strict_copy",
        "key_column": "id",
        "join_input": RECORDS,
        "load_failed": True,
        "chunk_rows": 2,
    }
    dag_run = run_dag("sql_rollback", pipeline("sql_rollback", load))
    assert task_states(dag_run)["load"] == "failed"  # the failed request's row has no headline
    assert rows(database, "SELECT * FROM strict_copy") == [(99, "kept")]
