"""A local Gemini Batch API emulator that the unmodified ``google-genai`` SDK talks to over HTTP.

Use it to run DAGs and tests offline, for free::

    gemini-batch-emulator --host 127.0.0.1 --port 8765

or in Python (``EmulatorServer(...).start()``), or through the ``gemini_emulator`` pytest fixture.
Jobs move PENDING -> RUNNING -> SUCCEEDED on a clock you set; answers are deterministic and carry
realistic token counts; faults are injected through the control API under ``/_emulator/``.

The emulator's clock follows real time. Tests can freeze it and step it instead, so a job's windows
never race the machine's load::

    emulator.freeze()                                  # POST /_emulator/clock {"frozen": true}
    emulator.configure(running_seconds=60)
    ...                                                # the job stays RUNNING, however long this takes
    emulator.advance(60)                               # POST /_emulator/clock {"advance_seconds": 60}
    ...                                                # now it has SUCCEEDED

``emulator.freeze(step_per_get=10)`` also moves the clock 10 s after each batch GET it answers, so with
``running_seconds=30`` a job is seen RUNNING by three polls and ended by the fourth, at any speed.

Job states, progress, timestamps and cache expiry follow this clock; ``latency_seconds`` and fault
delays stay real waits, since they exist to exercise the client's own timeouts. ``reset()`` restores
real time.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

LISTENING = "gemini-batch-emulator listening on"


class EmulatorClient:
    """Controls an emulator through its ``/_emulator/`` API (works for one in another process).

    :param base_url: the emulator's address, ``http://127.0.0.1:PORT``.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, action: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_emulator/{action}", json=body, timeout=600)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget every file, job, fault and count; restore the default settings and real time."""
        self._call("POST", "reset")

    def stats(self) -> dict[str, Any]:
        """Calls received per operation, how many jobs and files were really created, and the live
        (pending or running) jobs, deleted ones included: as on the API, deleting does not cancel."""
        return self._call("GET", "stats")

    def freeze(self, step_per_get: float = 0.0) -> float:
        """Stop the emulator's clock: jobs stay in their state until :meth:`advance`. Returns its time.

        :param step_per_get: move the clock this many seconds after answering each batch GET, so a job
            ends after a set number of polls (for a DAG run or trigger the test cannot pause).
        """
        return self._call("POST", "clock", {"frozen": True, "step_per_get": step_per_get})["now"]

    def unfreeze(self) -> float:
        """Let the emulator's clock run with real time again, from where it stood. Returns its time."""
        return self._call("POST", "clock", {"frozen": False})["now"]

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward (frozen or not) by ``seconds``. Returns its time."""
        return self._call("POST", "clock", {"advance_seconds": seconds})["now"]

    def clock(self) -> dict[str, Any]:
        """The emulator's time (epoch seconds), whether it is frozen, and its ``step_per_get``."""
        return self._call("GET", "clock")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings for jobs created from now on: pending_seconds, running_seconds,
        expire_seconds, failed_request_ratio, failed_key_pattern, job_outcome, job_error, latency_seconds."""
        return self._call("POST", "config", settings)

    def add_fault(self, **rule: Any) -> None:
        """Inject a fault: operations, status, drop, drop_after_bytes, delay_seconds,
        chunk_delay_seconds, rate, count, hold_until_lists (a request received whole is held until that
        many more list calls arrive, then acted on before that list is answered, whatever its client
        did meanwhile)."""
        self._call("POST", "faults", rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_job_outcome(self, batch_name: str, state: str, error: str | None = None) -> dict[str, Any]:
        """End a job now, as ``SUCCEEDED``, ``FAILED`` or ``EXPIRED`` (with an error text)."""
        job_id = batch_name.rsplit("/", 1)[-1]
        return self._call("POST", f"batches/{job_id}:outcome", {"state": state, "error": error})

    def add_history(self, count: int, days: float = 30) -> int:
        """Fill the account with ``count`` finished jobs created over the last ``days`` (not counted in
        ``jobs_created``); returns how many jobs the account holds."""
        return int(self._call("POST", "batches:history", {"count": count, "days": days})["jobs"])

    def synthesize_file(self, size_bytes: int, line_bytes: int = 1000) -> str:
        """Write a downloadable result-shaped file of at least ``size_bytes``; returns ``files/...``."""
        body = {"size_bytes": size_bytes, "line_bytes": line_bytes}
        return self._call("POST", "files:synthesize", body)["name"]

    def synthesize_job(
        self,
        size_bytes: int,
        line_bytes: int = 1000,
        model: str = "gemini-2.5-flash",
        embedding_dimensions: int | None = None,
    ) -> str:
        """A SUCCEEDED job whose result file is synthesized (``size_bytes``): text answers, or with
        ``embedding_dimensions`` an embeddings job's vectors; returns ``batches/...``."""
        body: dict[str, Any] = {"size_bytes": size_bytes, "line_bytes": line_bytes, "model": model}
        if embedding_dimensions:
            body.update(kind="embed", dimensions=embedding_dimensions)
        return self._call("POST", "batches:synthesize", body)["name"]


class EmulatorServer(EmulatorClient):
    """The emulator served by uvicorn in a background thread of this process.

    :param host: address to listen on (keep it on loopback).
    :param port: port, 0 for a free one.
    :param api_key: the only key accepted; None accepts any non-empty key.
    :param data_dir: where files and job state live; kept across restarts. A temporary folder if None.
    :param pending_seconds: how long new jobs stay pending.
    :param running_seconds: how long new jobs run.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        data_dir: str | Path | None = None,
        pending_seconds: float = 0.0,
        running_seconds: float = 0.0,
        access_log: bool = False,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="gemini-emulator-"))
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(2048)  # connections queue from now on, even before uvicorn starts
        self.port = self._socket.getsockname()[1]
        super().__init__(f"http://{host}:{self.port}")
        self._settings = {"pending_seconds": pending_seconds, "running_seconds": running_seconds}
        self._access_log = access_log
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.base_url

    def _build_server(self) -> Any:
        import uvicorn

        from airflow_provider_gemini.testing._app import build_app
        from airflow_provider_gemini.testing._state import Emulated

        state = Emulated(data_dir=self.data_dir, api_key=self.api_key, persist=not self._own_dir)
        state.settings.update(self._settings)
        config = uvicorn.Config(
            build_app(state),
            log_level="warning",
            access_log=self._access_log,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,  # a request a fault still holds does not keep it running
        )
        return uvicorn.Server(config)

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread; returns once the emulator answers."""
        self._server = self._build_server()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="gemini-emulator"
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Gemini emulator did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM (what the console script does)."""
        self._server = self._build_server()
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``gemini-batch-emulator``: serve the emulator until interrupted."""
    parser = argparse.ArgumentParser(prog="gemini-batch-emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    parser.add_argument("--data-dir", default=None, help="keep files and jobs here, across restarts")
    parser.add_argument("--pending-seconds", type=float, default=0.0)
    parser.add_argument("--running-seconds", type=float, default=0.0)
    parser.add_argument("--access-log", action="store_true")
    server = EmulatorServer(**vars(parser.parse_args(argv)))  # each option is a parameter of the same name
    print(f"{LISTENING} {server.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
