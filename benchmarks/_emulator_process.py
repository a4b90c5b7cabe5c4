"""Run the emulator in its own process for a benchmark, so its CPU and memory are not counted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


@contextmanager
def emulator_process(api_key: str = "bench-key", *extra: str) -> Iterator[str]:
    """Start ``gemini-batch-emulator`` on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [
            str(BIN / "gemini-batch-emulator"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            api_key,
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        prefix = "gemini-batch-emulator listening on "
        if not first.startswith(prefix):
            raise RuntimeError(f"emulator did not start: {first!r}")
        yield first[len(prefix) :]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def connection_env(url: str, api_key: str = "bench-key") -> dict[str, str]:
    import json

    extra = {"base_url": url, "retry_initial_delay": 0.05, "retry_max_delay": 1.0}
    return {
        "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(
            {"conn_type": "gemini", "password": api_key, "extra": extra}
        )
    }
