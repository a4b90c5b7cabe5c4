"""Results written to GCS (gcp-storage-emulator, over HTTP), read back with the expected schema."""

from __future__ import annotations

import pytest

from tests.transfers.conftest import emulator_gcsfs
from tests.transfers.test_object_stores import check_read_back, store_enriched

# ~0.5 s a test once Airflow is warm (~6 s for a first DAG run). A gcsfs slow path against the emulator
# (moveTo retried ~35 s, or a gRPC bucket lookup waiting 60 s per open) fails here instead of passing slowly.
pytestmark = [pytest.mark.usefixtures("airflow_db", "gemini_connection"), pytest.mark.timeout(30)]


@pytest.mark.parametrize("output_format", ["jsonl", "flat_jsonl", "csv", "parquet"])
def test_each_format_on_gcs(gemini_emulator, gcs_emulator, gcs_bucket, output_format):
    destination = f"gs://{gcs_bucket}/enriched/out.{output_format}"
    manifest = store_enriched(destination, output_format, "google_cloud_default", f"gcs_{output_format}")

    gcs = emulator_gcsfs(gcs_emulator)
    listed = gcs.find(gcs_bucket, withdirs=False)
    assert listed == [f"{gcs_bucket}/enriched/out.{output_format}"]  # no temporary object left behind
    check_read_back(gcs.cat_file(listed[0]), output_format, manifest, destination)
