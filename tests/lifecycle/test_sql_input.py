"""Records straight from a SQL query (SQLite through its Airflow connection): no row through XCom."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from airflow_provider_gemini.sql import sql_records
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import create_and_wait

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")
ROWS = 10_000
DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)


@pytest.fixture
def tickets(tmp_path, monkeypatch):
    """A SQLite table of tickets, one with a NULL subject, and the Airflow connection to it."""
    path = tmp_path / "tickets.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT, body TEXT)")
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?)",
            ((i, None if i == 7 else f"subject {i}", f"body of ticket {i} ✓") for i in range(1, ROWS + 1)),
        )
    monkeypatch.setenv("AIRFLOW_CONN_TICKETS_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def test_rows_come_as_records_in_chunks_and_in_order(tickets):
    rows = list(
        sql_records("tickets_db", "SELECT id, subject FROM tickets WHERE id <= ? ORDER BY id", [5], 2)
    )
    assert rows == [{"id": i, "subject": f"subject {i}"} for i in range(1, 6)]


SQL_INPUT = {
    "sql": "SELECT id, subject, body FROM tickets ORDER BY id",
    "sql_conn_id": "tickets_db",
    "prompt_template": "Subject: {subject}\n{body}",
    "key_field": "id",
    "null_policy": "skip_row",
}


def test_a_create_reads_its_records_from_sql_and_keeps_them_out_of_xcom(gemini_emulator, tickets, capfd):
    dag_run = run_dag("sql_input", create_and_wait("sql_input", create_kwargs=SQL_INPUT))
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_values("sql_input", dag_run.run_id)[("create", "return_value")]
    assert (result["request_count"], result["null_records"]) == (ROWS - 1, 1)
    assert len(json.dumps(result)) < 2048  # the rows are not in XCom
    assert "from sql on tickets_db" in capfd.readouterr().out
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_the_identity_covers_the_rows_read(gemini_emulator, tickets):
    def display_name() -> str:
        dag_run = run_dag("sql_again", logical_date=DAY)
        return xcom_values("sql_again", dag_run.run_id)[("create", "return_value")]["display_name"]

    run_dag("sql_again", create_and_wait("sql_again", create_kwargs=SQL_INPUT), logical_date=DAY)
    first = display_name()
    assert display_name() == first  # the same rows: the same job identity
    with sqlite3.connect(tickets) as db:
        db.execute("UPDATE tickets SET body = 'changed' WHERE id = 3")
    assert display_name() != first  # one changed row: another input


def test_sql_without_its_connection_is_refused_when_the_dag_is_parsed():
    from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

    with pytest.raises(ValueError, match="sql needs sql_conn_id"):
        GeminiBatchCreateOperator(task_id="t", model="m", sql="SELECT 1", prompt_template="{x}")
