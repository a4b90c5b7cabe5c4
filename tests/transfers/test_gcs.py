"""Results written to GCS (gcp-storage-emulator, over HTTP), read back with the expected schema."""

from __future__ import annotations

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.transfers.conftest import emulator_gcsfs
from tests.transfers.test_object_stores import check_read_back
from tests.transfers.test_results_to_storage import RECORDS, SCHEMA, pipeline

# ~0.5 s a test once Airflow is warm (~6 s for a first DAG run). A gcsfs slow path against the emulator
# (moveTo retried ~35 s, or a gRPC bucket lookup waiting 60 s per open) fails here instead of passing slowly.
pytestmark = [pytest.mark.usefixtures("airflow_db", "gemini_connection"), pytest.mark.timeout(30)]


@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_each_format_on_gcs(gemini_emulator, gcs_emulator, gcs_bucket, output_format):
    destination = f"gs://{gcs_bucket}/enriched/out.{output_format}"
    store = {
        "output_format": output_format,
        "destination_conn_id": "google_cloud_default",
        "parse_json": True,
        "response_schema": SCHEMA,
        "join_input": RECORDS,
    }
    dag_id = f"gcs_{output_format}"
    dag_run = run_dag(dag_id, pipeline(dag_id, destination, store=store))
    assert task_states(dag_run)["store"] == "success"

    gcs = emulator_gcsfs(gcs_emulator)
    listed = gcs.find(gcs_bucket, withdirs=False)
    assert listed == [f"{gcs_bucket}/enriched/out.{output_format}"]  # no temporary object left behind
    manifest = xcom_values(dag_id, dag_run.run_id)[("store", "return_value")]
    check_read_back(gcs.cat_file(listed[0]), output_format, manifest, destination)
