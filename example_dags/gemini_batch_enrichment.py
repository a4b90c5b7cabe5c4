"""Scheduled warehouse enrichment with Gemini batch mode, at half the standard price.

Every day: read the products that still lack a headline straight from a SQL table (any DbApi
connection works; SQLite here, PostgreSQL in the tests), ask Gemini for a headline and a tone as
structured output, wait in the triggerer, keep the answers as Parquet, and write the new columns back
into the table by id. No row travels through XCom. A day with nothing new skips; re-running a day
changes nothing twice and creates no second job.

Connections: ``gemini_default`` (the Gemini API, or the local emulator) and ``catalog_db`` (the table).
Variable ``gemini_enrichment_dir``: where the Parquet files go (any object storage path).
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_sql import GeminiBatchResultsToSqlOperator
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
    # An empty result (every product enriched already) skips the run: skip_on_empty is the default.
    create = GeminiBatchCreateOperator(
        task_id="create",
        model="gemini-2.5-flash",
        sql="SELECT id, name, category FROM products WHERE headline IS NULL ORDER BY id",
        sql_conn_id=CATALOG_CONN_ID,
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
    )
    load = GeminiBatchResultsToSqlOperator(
        task_id="load",
        batch_name=create.output["batch_name"],
        table="products",
        sql_conn_id=CATALOG_CONN_ID,
        key_column="id",
        mode="update",  # the answers go back into the rows they came from
        parse_json=True,
        response_schema=SCHEMA,
        columns=["headline", "tone"],
    )
    create >> wait >> [store, load]


gemini_batch_enrichment()
