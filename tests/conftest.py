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

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the metadata database once per session (about 3 s)."""
    from airflow.utils import db

    db.initdb()
    return _HOME
