"""``make demo``: the enrichment example DAG, run by real Airflow against the bundled emulator.

Makes a throwaway Airflow home and a small product catalogue (SQLite), starts the Gemini emulator,
runs ``airflow dags test gemini_batch_enrichment``, then prints the enriched rows and the manifest.
With ``DEMO_LIVE=1`` and ``GEMINI_API_KEY`` set it talks to the real Gemini API instead.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = [
    ("p01", "Cast-iron skillet, 26 cm", "kitchen", None),
    ("p02", "Merino running socks", "sport", None),
    ("p03", "Bamboo cutting board", "kitchen", None),
    ("p04", "LED desk lamp with dimmer", "home office", None),
    ("p05", "Insulated steel water bottle", "outdoor", None),
    ("p06", "Noise-cancelling headphones", "electronics", None),
    ("p07", "Linen bed sheets, queen", "bedroom", "Sleep cool on washed linen"),  # enriched earlier
    ("p08", "Ceramic pour-over coffee set", "kitchen", None),
]


def main() -> int:
    live = os.environ.get("DEMO_LIVE") == "1"
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-demo-")))
        catalog = home / "catalog.db"
        with sqlite3.connect(catalog) as db:
            db.execute(
                "CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT, category TEXT, headline TEXT, "
                "tone TEXT)"
            )
            db.executemany(
                "INSERT INTO products (id, name, category, headline) VALUES (?, ?, ?, ?)", PRODUCTS
            )

        if live:
            key = os.environ["GEMINI_API_KEY"]
            gemini = {"conn_type": "gemini", "password": key}
            print("Running against the real Gemini API (DEMO_LIVE=1): this creates a paid batch job.")
        else:
            from airflow_provider_gemini.testing.emulator import EmulatorServer

            emulator = stack.enter_context(
                EmulatorServer(api_key="demo-key", pending_seconds=1, running_seconds=4)
            )
            gemini = {"conn_type": "gemini", "password": "demo-key", "extra": {"base_url": emulator.url}}
            print(f"Gemini Batch API emulator at {emulator.url}")

        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(gemini),
            "AIRFLOW_CONN_CATALOG_DB": json.dumps({"conn_type": "sqlite", "host": str(catalog)}),
            "AIRFLOW_VAR_GEMINI_ENRICHMENT_DIR": str(home / "enriched"),
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        print("Running the DAG gemini_batch_enrichment with `airflow dags test` ...")
        run = subprocess.run(
            [airflow, "dags", "test", "gemini_batch_enrichment", "2026-11-24"],
            env=env,
            capture_output=True,
            text=True,
        )
        for line in run.stdout.splitlines() + run.stderr.splitlines():
            if " done, " in line or "Re-attached" in line or "Created Gemini batch" in line:
                print("  " + line.split("[info     ] ", 1)[-1].split(" [airflow", 1)[0][:120])
        if run.returncode != 0:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
            print(f"The DAG run failed (exit {run.returncode}).")
            return run.returncode

        with sqlite3.connect(catalog) as db:
            rows = db.execute("SELECT id, name, headline, tone FROM products ORDER BY id").fetchall()
        print("\nEnriched products:")
        for product_id, name, headline, tone in rows:
            print(f"  {product_id}  {name:<32} {tone or '':<10} {headline}")
        with sqlite3.connect(home / "airflow.db") as db:
            (value,) = db.execute(
                "SELECT value FROM xcom WHERE dag_id = 'gemini_batch_enrichment' AND task_id = 'store' "
                "AND key = 'return_value'"
            ).fetchone()
        manifest = json.loads(value) if isinstance(value, (str, bytes)) else value
        cost = manifest["cost"]
        print("\nManifest:")
        print(
            f"  rows {manifest['rows']}, succeeded {manifest['succeeded']}, failed {manifest['failed']}, "
            f"missing {manifest['missing']}"
        )
        print(f"  tokens {manifest['tokens']}")
        print(
            f"  cost at the batch price {cost['batch']} {cost['currency']}, "
            f"at the standard price {cost['standard']} {cost['currency']} (saved {cost['savings']})"
        )
        print(f"  written to {manifest['destination']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
