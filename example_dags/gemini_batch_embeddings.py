"""Embed a product table with Gemini batch mode and search it: vectors at half the standard price.

Every day: read the products that have no vector yet straight from the SQL table (SQLite here; any
DbApi connection works), embed "name (category)" as retrieval documents of 64 dimensions, wait in the
triggerer, write each vector back into its row (a JSON array in the ``embedding`` column), and check
the result with a nearest-neighbour query: the products closest to the first one, by cosine
similarity. A day with nothing new skips; re-running a day creates no second job.

Connections: ``gemini_default`` (the Gemini API, or the local emulator) and ``catalog_db`` (the table,
which needs an ``embedding`` text column).
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task

from airflow_provider_gemini.operators.embed import GeminiBatchEmbedOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_sql import GeminiBatchResultsToSqlOperator

CATALOG_CONN_ID = "catalog_db"


@dag(
    schedule="@daily",
    start_date=datetime.datetime(2026, 11, 1),
    catchup=False,
    tags=["gemini", "example"],
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=1)},
)
def gemini_batch_embeddings():
    embed = GeminiBatchEmbedOperator(
        task_id="embed",
        model="gemini-embedding-001",
        sql="SELECT id, name, category FROM products WHERE embedding IS NULL ORDER BY id",
        sql_conn_id=CATALOG_CONN_ID,
        prompt_template="{name} ({category})",
        key_field="id",
        task_type="RETRIEVAL_DOCUMENT",
        output_dimensionality=64,
    )
    wait = GeminiBatchSensor(
        task_id="wait", batch_name=embed.output["batch_name"], deferrable=True, poke_interval=10
    )
    load = GeminiBatchResultsToSqlOperator(
        task_id="load",
        batch_name=embed.output["batch_name"],
        table="products",
        sql_conn_id=CATALOG_CONN_ID,
        key_column="id",
        mode="update",
        columns=["embedding"],
    )

    @task
    def nearest_neighbours(top: int = 3) -> list[dict]:
        """The products closest to the first one: the query a search feature would run."""
        import json
        import math

        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = DbApiHook.get_hook(CATALOG_CONN_ID)
        rows = hook.get_records(
            "SELECT id, name, embedding FROM products WHERE embedding IS NOT NULL ORDER BY id"
        )
        vectors = {(row[0], row[1]): json.loads(row[2]) for row in rows}
        (query_id, query_name), query = next(iter(vectors.items()))

        def cosine(a: list[float], b: list[float]) -> float:
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

        scored = sorted(
            (
                {"id": key[0], "name": key[1], "similarity": round(cosine(query, vector), 4)}
                for key, vector in vectors.items()
                if key[0] != query_id
            ),
            key=lambda item: -item["similarity"],
        )
        print(f"Closest to {query_name!r}: {scored[:top]}")
        return scored[:top]

    embed >> wait >> load >> nearest_neighbours()


gemini_batch_embeddings()
