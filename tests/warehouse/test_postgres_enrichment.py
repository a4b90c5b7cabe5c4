"""The enrichment example on a real PostgreSQL warehouse: 10,000 products read straight from the
table and their answers written back by id, no row through XCom, memory flat as the table grows.

PostgreSQL is the Debian package ``make test`` installs, started here on a loopback port; the DAG
runs with ``airflow dags test`` in a process of its own (``run_enrichment.py``), against the emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini.hooks.gemini import GeminiHook
from tests.e2e.stack import PostgresStack

pytestmark = [pytest.mark.usefixtures("gemini_connection"), pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
NAMES = ["Bergschuh «Alpin»", "茶壶 紫砂", "Lámpara de escritorio", "Чайник", "Sac à dos 🎒", "Desk lamp"]


@pytest.fixture(scope="module")
def warehouse() -> Iterator[PostgresStack]:
    """A PostgreSQL server with a ``catalog`` database (only the database: no Airflow around it). Its
    folder is under the system's temporary folder, which the ``postgres`` user can reach (pytest's
    own are private to this user)."""
    home = Path(tempfile.mkdtemp(prefix="gemini-warehouse-"))
    server = PostgresStack(home, ROOT / "example_dags")
    try:
        server.start_postgres()
        with contextlib.closing(server.connect("postgres")) as db:
            db.autocommit = True
            db.cursor().execute("CREATE DATABASE catalog")
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def sql(
    server: PostgresStack, query: str, rows: list[tuple[Any, ...]] | None = None
) -> list[tuple[Any, ...]]:
    with contextlib.closing(server.connect("catalog")) as db, db, db.cursor() as cursor:
        if rows is not None:
            cursor.executemany(query, rows)
            return []
        cursor.execute(query)
        return list(cursor.fetchall()) if cursor.description else []


def add_products(server: PostgresStack, first: int, count: int) -> None:
    rows = [
        (i, f"{NAMES[i % len(NAMES)]} no. {i}", ["kitchen", "outdoor", "home office"][i % 3])
        for i in range(first, first + count)
    ]
    sql(server, "INSERT INTO products (id, name, category) VALUES (%s, %s, %s)", rows)


def run_day(home: Path, env: dict[str, str], day: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.warehouse.run_enrichment", day],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (home / f"run-{day}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_ten_thousand_rows_in_and_back_with_flat_memory_and_nothing_in_xcom(
    warehouse, gemini_emulator, tmp_path
):
    sql(
        warehouse,
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, headline TEXT, tone TEXT)",
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW_CONN_CATALOG_DB": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": warehouse.pg_port,
                "login": "airflow",
                "schema": "catalog",
            }
        ),
        "AIRFLOW_VAR_GEMINI_ENRICHMENT_DIR": str(tmp_path / "enriched"),
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )

    add_products(warehouse, 1, 1_000)
    small = run_day(tmp_path, env, "2026-11-23")
    add_products(warehouse, 1_001, 10_000)
    large = run_day(tmp_path, env, "2026-11-24")

    for run in (small, large):
        assert set(run["states"].values()) == {"success"}, run["states"]
    assert sql(
        warehouse, "SELECT count(*) FROM products WHERE headline IS NOT NULL AND tone IS NOT NULL"
    ) == [(11_000,)]
    jobs = sorted(job.stats.request_count for job in GeminiHook().list_batches())
    assert jobs == [1_000, 10_000]  # day 2 sent only its 10,000 new rows
    assert large["xcom_bytes"]["create"] < 2_048  # no row travels through XCom
    load = large["peaks"]["load"]
    create = large["peaks"]["create"]

    before = sql(warehouse, "SELECT id, headline, tone FROM products ORDER BY id")
    rerun = run_day(tmp_path, env, "2026-11-24")  # the same day again: nothing new to enrich
    assert set(rerun["states"].values()) == {"skipped"}
    assert sql(warehouse, "SELECT id, headline, tone FROM products ORDER BY id") == before
    assert gemini_emulator.stats()["jobs_created"] == 2

    print(
        "\nEnrichment on PostgreSQL, peak resident memory of each task (MB, at start -> peak):\n"
        f"  rows    create                  load\n"
        f"  1,000   {_mb(small['peaks']['create'])}   {_mb(small['peaks']['load'])}\n"
        f"  10,000  {_mb(create)}   {_mb(load)}\n"
        f"  create task's XCom: {large['xcom_bytes']['create']} bytes"
    )


def _mb(peak: dict[str, float]) -> str:
    return f"{peak['start_mb']:6.0f} -> {peak['peak_mb']:6.0f} (+{peak['peak_mb'] - peak['start_mb']:.0f})"
