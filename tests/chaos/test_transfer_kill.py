"""A results transfer killed mid-stream (``kill -9`` of its task process) and retried, on a real
Airflow: the destination's folder ends with the finished files and nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.chaos.conftest import kill_running_task, wait_for_try
from tests.e2e.stack import API_KEY, AirflowStack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DAG_ID = "chaos_transfer"
SIZE = 4_000_000


def test_a_transfer_killed_mid_stream_is_retried_to_a_complete_file_and_leaves_nothing_else(
    chaos: AirflowStack, emulator: EmulatorClient, tmp_path: Path
) -> None:
    chaos.wait_for_dag(DAG_ID)
    batch_name = emulator.synthesize_job(SIZE)
    folder = tmp_path / "results"
    destination = folder / "results.jsonl"
    # 16 KiB every 50 ms: the 4 MB stream takes about 12 s, long enough to be killed in the middle.
    emulator.add_fault(operations=["downloads"], chunk_delay_seconds=0.05)
    run_id = chaos.trigger(
        DAG_ID, "2026-10-05T00:00:00Z", conf={"batch_name": batch_name, "destination": str(destination)}
    )

    def streaming() -> bool:
        partial = [p for p in folder.glob(".*") if p.is_file()] if folder.exists() else []
        return any(p.stat().st_size > 0 for p in partial)

    wait_until(streaming, 300, "the transfer to write its temporary file")
    assert not destination.exists()
    assert kill_running_task(chaos, DAG_ID, run_id, "store") == 1
    emulator.clear_faults()
    wait_for_try(chaos, DAG_ID, run_id, "store", 2)
    assert chaos.wait_for_run(DAG_ID, run_id) == "success"

    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["results.jsonl"]
    source = served_results(chaos, batch_name)
    assert destination.stat().st_size == len(source)
    assert hashlib.sha256(destination.read_bytes()).digest() == hashlib.sha256(source).digest()
    manifest = chaos.xcom(DAG_ID, run_id, "store")
    assert manifest["rows"] == source.count(b"\n")


def served_results(stack: AirflowStack, batch_name: str) -> bytes:
    """The job's result file as the emulator serves it."""
    headers = {"x-goog-api-key": API_KEY}
    with httpx.Client(base_url=stack.emulator_url, headers=headers, timeout=60) as api:
        job = api.get(f"/v1beta/{batch_name}").raise_for_status().json()
        result_file = job["metadata"]["output"]["responsesFile"]
        return api.get(f"/download/v1beta/{result_file}:download", params={"alt": "media"}).content
