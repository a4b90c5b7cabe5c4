"""A real Airflow 3 on this machine, as a user runs it: api-server, scheduler, dag-processor and
triggerer as separate processes (LocalExecutor, SQLite metadata database), with the Gemini emulator in
a process of its own. The tests talk to it only through its REST API and a browser.

``DistributedStack`` is the same Airflow as a multi-machine deployment runs it: CeleryExecutor with a
Redis broker and one Celery worker, PostgreSQL as the metadata database, two triggerers.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import shutil
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

    def __init__(
        self,
        home: Path,
        dags_folder: Path = ROOT / "example_dags",
        gemini_extra: dict[str, Any] | None = None,
        parallelism: int = 4,
    ) -> None:
        self.home = home
        self.gemini_extra = gemini_extra or {}
        self.parallelism = parallelism
        self.dags_folder = dags_folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.catalog = home / "catalog.db"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.services: list[str] = []  # started before Airflow, stopped after it
        self.emulator_url = ""
        self.api: httpx.Client | None = None
        # Free ports rather than Airflow's fixed 8793/8794, so two stacks (or two engineers) never collide.
        self.log_ports = {"worker": free_port(), "triggerer": free_port()}

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._make_catalog()
        self._start_services()
        self._start_emulator()
        env = self.env()
        with (self.home / "db-migrate.log").open("wb") as log:
            migrate = [str(BIN / "airflow"), "db", "migrate"]
            done = subprocess.run(migrate, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300)
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{self.log_tail('db-migrate')}")
        for name, args in self.components().items():
            self.launch(name, args, env)
        self._wait_for_api()
        return self

    def components(self) -> dict[str, list[str]]:
        """The Airflow processes to start, by name (also the name of each one's log file)."""
        airflow = str(BIN / "airflow")
        return {
            "api-server": [airflow, *f"api-server --host 127.0.0.1 --port {self.port} --workers 1".split()],
            "scheduler": [airflow, "scheduler"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer"],
        }

    def launch(
        self, name: str, args: list[str], env: dict[str, str] | None = None, **popen: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` in a session of its own (so it can be killed with all it started), logging to
        ``home/<name>.log``."""
        log = (self.home / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args,
            env=self.env() if env is None else env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
        log.close()
        self.processes[name] = process
        return process

    def _start_services(self) -> None:
        """What Airflow needs running before it starts (nothing for SQLite and the LocalExecutor)."""

    def stop(self) -> None:
        """Airflow first, then the services it used; each process with all it started (task runners,
        log servers, pool processes), whatever process group they moved to."""
        if self.api is not None:
            self.api.close()
        airflow = [p for name, p in self.processes.items() if name not in self.services]
        services = [self.processes[name] for name in reversed(self.services) if name in self.processes]
        for batch in (airflow, services):
            for process in batch:
                _signal_group(process, signal.SIGTERM)
            for process in batch:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                kill_session(process)

    def env(self) -> dict[str, str]:
        gemini = {
            "conn_type": "gemini",
            "password": API_KEY,
            "extra": {"base_url": self.emulator_url, **self.gemini_extra},
        }
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USERNAME: PASSWORD}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
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
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports["worker"]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports["triggerer"]),
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
                "headline TEXT, tone TEXT)"
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
        options = (
            f"--host 127.0.0.1 --port {port} --api-key {API_KEY} --pending-seconds 3 --running-seconds 12"
        )
        self.launch("emulator", [str(BIN / "gemini-batch-emulator"), *options.split()], env=dict(os.environ))
        self.emulator_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{self.emulator_url}/_emulator/stats"), 30, "the emulator")

    def _wait_for_api(self) -> None:
        def ready() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            return _answers(f"{self.url}/api/v2/monitor/health")

        wait_until(ready, 180, "the api-server")
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
        wait_until(lambda: self.api.get(f"/dags/{dag_id}").status_code == 200, timeout, f"DAG {dag_id}")
        self.api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def trigger(
        self, dag_id: str, logical_date: str, run_id: str | None = None, conf: dict[str, Any] | None = None
    ) -> str:
        assert self.api is not None
        body = {
            "logical_date": logical_date,
            "dag_run_id": run_id or f"e2e__{logical_date}",
            "conf": conf or {},
        }
        response = self.api.post(f"/dags/{dag_id}/dagRuns", json=body)
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        states: list[str] = []

        def finished() -> bool:
            states.append(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            return states[-1] in ("success", "failed")

        wait_until(finished, timeout, f"run {run_id}", interval=2)
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

        wait_until(reached, timeout, f"{task_id} in {states}", interval=1)
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


def session_members(leader: int) -> list[int]:
    """The processes in the session ``leader`` started: Airflow's task runners move to process groups
    of their own, but stay in their worker's session."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == leader:  # state, ppid, pgrp, session
                members.append(int(entry.name))
    return members


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started by ``launch`` and everything it started, as if its machine had died."""
    import psutil  # Airflow's own dependency

    for _ in range(10):  # a process may fork while we kill; a few rounds find the latecomers
        members = []
        for pid in session_members(process.pid):
            with contextlib.suppress(psutil.Error):
                if pid != os.getpid():
                    members.append(psutil.Process(pid))
        if not members:
            break
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(members, timeout=5)  # until they are gone, not a fixed pause
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def kill_task_process(task_instance_id: str) -> int:
    """SIGKILL the process that runs a task instance (Airflow titles it ``airflow worker -- <id>``), as
    the kernel's OOM killer would; its supervisor lives on and reports the loss. Returns its pid."""
    import psutil  # Airflow's own dependency

    title = f"airflow worker -- {task_instance_id}"
    for process in psutil.process_iter(["cmdline"]):
        if title in " ".join(process.info["cmdline"] or []):
            process.kill()
            process.wait(timeout=30)
            return int(process.pid)
    raise LookupError(f"no process runs task instance {task_instance_id}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code < 500
    except httpx.HTTPError:
        return False


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll ``check`` until it is true; a generous ``timeout`` is the only clock a test waits on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


class PostgresStack(AirflowStack):
    """The same Airflow with PostgreSQL as its metadata database, as production runs it: SQLite locks
    under many concurrent runs (the scheduler dies of "database is locked")."""

    def __init__(self, home: Path, dags_folder: Path, **options: Any) -> None:
        super().__init__(home, dags_folder, **options)
        self.pg_port = free_port()
        self.database = f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"

    def env(self) -> dict[str, str]:
        return {**super().env(), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database}

    def _start_services(self) -> None:
        self.start_postgres()

    def start_postgres(self) -> None:
        """A throwaway cluster on a loopback port (also used alone, as a warehouse: ``stop()`` ends it).
        PostgreSQL refuses to run as root: as root, it runs as
        the ``postgres`` user the Debian package creates, from a data folder that user owns."""
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        assert versions, "PostgreSQL is missing: `make test` installs the Debian package postgresql"
        pg_bin = Path(versions[-1])
        data = self.home / "postgres"
        data.mkdir(mode=0o700)
        user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            self.home.chmod(0o711)  # the postgres user passes through home to its data folder
            user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        initdb = [
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "airflow",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        subprocess.run(
            initdb,
            check=True,
            capture_output=True,
            timeout=120,
            **user,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.pg_port),
            "unix_socket_directories": "",  # TCP on loopback only
            "max_connections": "200",
            "fsync": "off",  # a throwaway database: durability buys nothing here
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        args = [str(pg_bin / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self.launch("postgres", args, env=dict(os.environ), **user)
        self.services.append("postgres")
        wait_until(lambda: self._postgres_answers("postgres"), 60, "PostgreSQL")
        with contextlib.closing(self.connect("postgres")) as db:
            db.autocommit = True
            db.cursor().execute("CREATE DATABASE airflow")

    def connect(self, database: str = "airflow") -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.pg_port, user="airflow", dbname=database, connect_timeout=10
        )

    def _postgres_answers(self, database: str) -> bool:
        import psycopg2

        if self.processes["postgres"].poll() is not None:
            raise RuntimeError(f"PostgreSQL exited early:\n{self.log_tail('postgres')}")
        try:
            self.connect(database).close()
        except psycopg2.OperationalError:
            return False
        return True

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the metadata database."""
        with contextlib.closing(self.connect()) as db:
            db.autocommit = True
            with db.cursor() as cursor:
                cursor.execute(query, params)
                return list(cursor.fetchall())


class DistributedStack(PostgresStack):
    """Airflow as a deployment across machines runs it: PostgreSQL as the metadata database, Redis as
    the Celery broker, the CeleryExecutor with one worker (``airflow celery worker``), two triggerers,
    the api-server, scheduler and dag-processor, each in its own session so any one can be killed with
    ``kill_session`` like a lost machine. Heartbeats and health checks are short so that Airflow
    notices a lost triggerer or worker within seconds.

    Triggerers are told apart by their job ids (``triggerer_jobs``): each is started once the one
    before it has its ``job`` row, so start order and id order agree.
    """

    TRIGGERERS = ("triggerer-1", "triggerer-2")

    def __init__(self, home: Path, dags_folder: Path) -> None:
        super().__init__(home, dags_folder)
        self.redis_port = free_port()
        self.triggerer_jobs: dict[str, int] = {}
        self.workers = 1

    def start(self) -> DistributedStack:
        super().start()
        for name in self.TRIGGERERS:
            env = {**self.env(), "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
            self.launch(name, [str(BIN / "airflow"), "triggerer"], env)
            wait_until(functools.partial(self._registered, name), 180, f"{name}'s job row")
        return self

    def _registered(self, triggerer: str) -> bool:
        """Whether ``triggerer`` has its job row yet: the one triggerer job not known so far."""
        if self.processes[triggerer].poll() is not None:
            raise RuntimeError(f"{triggerer} exited early:\n{self.log_tail(triggerer)}")
        rows = self.sql("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id")
        new = [job for (job,) in rows if job not in self.triggerer_jobs.values()]
        if new:
            self.triggerer_jobs[triggerer] = new[0]
        return bool(new)

    def components(self) -> dict[str, list[str]]:
        components = super().components()
        del components["triggerer"]  # two, started in order by start()
        components["celery-worker-1"] = self.worker_command()
        return components

    def worker_command(self) -> list[str]:
        options = "--concurrency 2 --without-mingle --without-gossip"  # one worker: nothing to sync with
        return [str(BIN / "airflow"), "celery", "worker", *options.split()]

    def start_worker(self) -> str:
        """Another Celery worker, as on a replacement machine; returns its name."""
        self.workers += 1
        name = f"celery-worker-{self.workers}"
        self.launch(name, self.worker_command())
        return name

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                # A triggerer silent for 15 s is dead and another takes its triggers (defaults: beats
                # every 5 s, dead after 30 s); a busy loop on a loaded machine beats late by a few seconds.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                # A running task silent for 30 s (6 missed beats of its supervisor, every 5 s) is failed
                # and retried (default: 300 s, looked for every 10 s).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            }
        )
        return env

    # -- Redis -------------------------------------------------------------------------------------

    def _start_services(self) -> None:
        super()._start_services()
        self._start_redis()

    def _start_redis(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        assert Path(server).exists(), "Redis is missing: `make test` installs the Debian package redis-server"
        args = [server, "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.home), "--daemonize", "no"]
        self.launch("redis", args, env=dict(os.environ))
        self.services.append("redis")

        def answers() -> bool:
            import redis

            try:
                return bool(redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=5).ping())
            except redis.RedisError:
                return False

        wait_until(answers, 60, "Redis")

    # -- what the tests look at --------------------------------------------------------------------

    def trigger_holder(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        """The triggerer (by name) running the trigger of a deferred task instance, if one took it."""
        rows = self.sql(
            "SELECT t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s AND ti.state = 'deferred'",
            dag_id,
            run_id,
            task_id,
        )
        by_job = {job: name for name, job in self.triggerer_jobs.items()}
        return by_job.get(rows[0][0]) if rows and rows[0][0] is not None else None

    def task_try(self, dag_id: str, run_id: str, task_id: str) -> tuple[str | None, int]:
        ti = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti["state"], int(ti["try_number"])

    def log_files(self) -> list[Path]:
        """Every log this deployment wrote: each component's output and the task and triggerer logs."""
        return sorted(self.home.glob("*.log")) + sorted(
            p for p in (self.home / "logs").rglob("*") if p.is_file()
        )
