"""Test session set-up: a throwaway Airflow home with a SQLite metadata database and a dags folder.

The environment is set before anything imports Airflow, so every test (and every DAG run through
``dag.test()``) uses it. The Gemini emulator fixtures come from the package's own pytest plugin.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="gemini-provider-airflow-"))
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ.pop("AIRFLOW_CONN_GEMINI_DEFAULT", None)
# Airflow parses each DAG file under its own SIGALRM timer and disarms it afterwards without restoring
# pytest-timeout's: past the first dag.test() a hung test would never time out. 0: no timer at all.
os.environ["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "0"
# The OpenLineage provider (a dev dependency) would emit events of every task run to the console;
# tests/lineage turns it on with a file transport where it is the subject.
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"

import pytest  # noqa: E402


def _log_tasks_like_a_deployment() -> None:
    """Airflow 3.0's ``dag.test()`` logs its tasks through structlog as this process left it: every
    level (debug lines print what the task sends its supervisor, the masked API key included), with
    tracebacks wrapped at 80 columns. Log INFO and up, tracebacks plain, as a deployment would, to file
    descriptor 1, where each test's ``capfd`` reads its own task logs. Airflow 3.1+ configure it.
    """
    import logging

    import structlog
    from airflow import __version__
    from packaging.version import Version

    if Version(__version__) < Version("3.1"):
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.dev.set_exc_info,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.dev.ConsoleRenderer(
                    colors=False, exception_formatter=structlog.dev.plain_traceback
                ),
            ],
            logger_factory=structlog.PrintLoggerFactory(open(1, "w", buffering=1, closefd=False)),  # noqa: SIM115
        )


_log_tasks_like_a_deployment()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the metadata database once per session (about 3 s)."""
    from airflow.utils import db

    db.initdb()
    return _HOME
