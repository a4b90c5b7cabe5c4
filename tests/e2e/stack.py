"""A real Airflow 3 on this machine, as a user runs it: api-server, scheduler, dag-processor and
triggerer as separate processes (LocalExecutor, SQLite metadata database), with the Gemini emulator in
a process of its own. The tests talk to it only through its REST API and a browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
API_KEY = "e2e-secret-key"
USERNAME = "admin"
PASSWORD = "e2e-admin-password"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
PRODUCTS = [
    ("p01", "Cast-iron skillet, 26 cm", "kitchen"),
    ("p02", "Merino running socks", "sport"),
    ("p03", "Bamboo cutting board", "kitchen"),
    ("p04", "LED desk lamp with dimmer", "home office"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStack:
    """Starts everything in ``home``; ``api`` is an authenticated client of the REST API."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.catalog = home / "catalog.db"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.emulator_url = ""
        self.api: httpx.Client | None = None

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._make_catalog()
        self._start_emulator()
        env = self.env()
        subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
        )
        for name in COMPONENTS:
            args = [str(BIN / "airflow"), name]
            if name == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            log = (self.home / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_for_api()
        return self

    def stop(self) -> None:
        """Each component with the processes it started (task runners, log servers)."""
        if self.api is not None:
            self.api.close()
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            _signal_group(process, signal.SIGKILL)

    def env(self) -> dict[str, str]:
        gemini = {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": self.emulator_url}}
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USERNAME: PASSWORD}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__SECRET_KEY": "e2e-session-secret",
                "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-jwt-secret-that-is-long-enough-for-hs512-signing-keys",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the tests trigger
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(gemini),
                "AIRFLOW_CONN_CATALOG_DB": json.dumps({"conn_type": "sqlite", "host": str(self.catalog)}),
                "AIRFLOW_VAR_GEMINI_ENRICHMENT_DIR": str(self.home / "enriched"),
            }
        )
        return env

    def _make_catalog(self) -> None:
        with sqlite3.connect(self.catalog) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, name TEXT, category TEXT, "
                "headline TEXT, tone TEXT, enriched_at TEXT)"
            )
            db.executemany("INSERT OR IGNORE INTO products (id, name, category) VALUES (?, ?, ?)", PRODUCTS)

    def add_product(self, key: str, name: str, category: str) -> None:
        with sqlite3.connect(self.catalog) as db:
            db.execute("INSERT INTO products (id, name, category) VALUES (?, ?, ?)", (key, name, category))

    def headlines(self) -> dict[str, str | None]:
        with sqlite3.connect(self.catalog) as db:
            return dict(db.execute("SELECT id, headline FROM products ORDER BY id").fetchall())

    def _start_emulator(self) -> None:
        port = free_port()
        log = (self.home / "emulator.log").open("wb")
        self.processes["emulator"] = subprocess.Popen(
            [
                str(BIN / "gemini-batch-emulator"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--api-key",
                API_KEY,
                "--pending-seconds",
                "3",
                "--running-seconds",
                "12",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.emulator_url = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _answers(f"{self.emulator_url}/_emulator/stats"), 30, "the emulator")

    def _wait_for_api(self) -> None:
        def ready() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            return _answers(f"{self.url}/api/v2/monitor/health")

        _wait_until(ready, 180, "the api-server")
        token = httpx.post(
            f"{self.url}/auth/token", json={"username": USERNAME, "password": PASSWORD}, timeout=30
        )
        token.raise_for_status()
        self.api = httpx.Client(
            base_url=f"{self.url}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=60,
        )

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.home / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- REST API ------------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        assert self.api is not None
        response = self.api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has parsed ``dag_id``; then unpause it."""
        assert self.api is not None
        _wait_until(lambda: self.api.get(f"/dags/{dag_id}").status_code == 200, timeout, f"DAG {dag_id}")
        self.api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def trigger(self, dag_id: str, logical_date: str, run_id: str | None = None) -> str:
        assert self.api is not None
        body = {"logical_date": logical_date, "dag_run_id": run_id or f"e2e__{logical_date}"}
        response = self.api.post(f"/dags/{dag_id}/dagRuns", json=body)
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        states: list[str] = []

        def finished() -> bool:
            states.append(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            return states[-1] in ("success", "failed")

        _wait_until(finished, timeout, f"run {run_id}", interval=2)
        return states[-1]

    def wait_for_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: set[str],
        timeout: float = 600,
        seen: list[str] | None = None,
    ) -> str:
        """Poll the task instance until it reaches one of ``states``; ``seen`` collects every state."""
        seen = [] if seen is None else seen

        def reached() -> bool:
            seen.append(str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]))
            return seen[-1] in states

        _wait_until(reached, timeout, f"{task_id} in {states}", interval=1)
        return seen[-1]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in instances}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text, the triggerer's part included."""
        body = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}", full_content=True
        )
        lines = []
        for entry in body["content"]:
            if isinstance(entry, dict):
                extra = {k: v for k, v in entry.items() if k not in ("event", "timestamp", "level")}
                lines.append(f"{entry.get('level', '')} {entry.get('event', '')} {extra or ''}".strip())
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def emulator(self, action: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.emulator_url}/_emulator/{action}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def emulator_stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.emulator_url}/_emulator/stats", timeout=30)
        response.raise_for_status()
        return dict(response.json())


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code < 500
    except httpx.HTTPError:
        return False


def _wait_until(check: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")
