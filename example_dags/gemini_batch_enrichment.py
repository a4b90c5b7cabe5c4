"""Scheduled warehouse enrichment with Gemini batch mode, at half the standard price.

Every day: read the products that still lack a headline from a SQL table (any DbApi connection works;
SQLite here), ask Gemini for a headline and a tone as structured output, wait in the triggerer, write
the answers joined to the input rows as Parquet, and load the new columns back into the table.
A day with nothing new skips; re-running a day changes nothing twice and creates no second job.

Connections: ``gemini_default`` (the Gemini API, or the local emulator) and ``catalog_db`` (the table).
Variable ``gemini_enrichment_dir``: where the Parquet files go (any object storage path).
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

CATALOG_CONN_ID = "catalog_db"
OUTPUT_DIR = "{{ var.value.get('gemini_enrichment_dir', '/tmp/gemini-enrichment') }}"
SCHEMA = {
    "type": "OBJECT",
    "properties": {
        "headline": {"type": "STRING", "description": "one catchy line, under 12 words"},
        "tone": {"type": "STRING", "enum": ["playful", "premium", "practical"]},
    },
    "required": ["headline", "tone"],
}


@dag(
    schedule="@daily",
    start_date=datetime.datetime(2026, 11, 1),
    catchup=False,
    tags=["gemini", "example"],
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=1)},
)
def gemini_batch_enrichment():
    @task
    def rows_to_enrich() -> list[dict]:
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        try:
            from airflow.sdk.exceptions import AirflowSkipException
        except ImportError:  # Airflow 3.0 and 3.1
            from airflow.exceptions import AirflowSkipException

        rows = SqliteHook(sqlite_conn_id=CATALOG_CONN_ID).get_records(
            "SELECT id, name, category FROM products WHERE headline IS NULL ORDER BY id"
        )
        if not rows:
            raise AirflowSkipException("every product is enriched already")
        return [{"id": row[0], "name": row[1], "category": row[2]} for row in rows]

    records = rows_to_enrich()
    create = GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        records=records,
        prompt_template="Write a short headline and pick the tone for: {name} (category: {category}).",
        key_field="id",
        system_instruction="You write concise, factual retail copy.",
        generation_config={"response_mime_type": "application/json", "response_schema": SCHEMA},
    )
    wait = GeminiBatchSensor(
        task_id="wait", batch_name=create.output["batch_name"], deferrable=True, poke_interval=10
    )
    store = GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name=create.output["batch_name"],
        destination=OUTPUT_DIR + "/enriched-{{ (logical_date or dag_run.run_after) | ds }}.parquet",
        output_format="parquet",
        parse_json=True,
        response_schema=SCHEMA,
        join_input=records,
    )

    @task
    def load_back(manifest: dict) -> int:
        """Write the generated columns into the table, only where they are still empty."""
        import pyarrow.parquet as pq
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook
        from airflow.sdk import ObjectStoragePath

        with ObjectStoragePath(manifest["destination"]).open("rb") as handle:
            rows = pq.read_table(handle).to_pylist()
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        updates = [(r["headline"], r["tone"], now, r["key"]) for r in rows if r["error"] is None]
        hook = SqliteHook(sqlite_conn_id=CATALOG_CONN_ID)
        with hook.get_conn() as conn:
            conn.executemany(
                "UPDATE products SET headline = ?, tone = ?, enriched_at = ? "
                "WHERE id = ? AND headline IS NULL",
                updates,
            )
        return len(updates)

    create >> wait >> store
    load_back(store.output)


gemini_batch_enrichment()
