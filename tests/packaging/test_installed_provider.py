"""The provider as a user receives it: what Airflow's CLI says it ships, and the basic example DAG run
with ``airflow dags test`` against the emulator in a fresh Airflow home.

These run in every matrix environment; the one beside the Google provider installs this package from
its wheel, so there they test the package as built, not the source tree.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.version import Version

from airflow_provider_gemini._compat import AIRFLOW_VERSION
from airflow_provider_gemini.get_provider_info import get_provider_info

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _named_modules(info: dict[str, Any]) -> list[str]:
    modules = [
        module
        for section in ("operators", "sensors", "hooks", "triggers")
        for entry in info[section]
        for module in entry["python-modules"]
    ]
    return modules + [entry["python-module"] for entry in info["transfers"]]


def _named_classes(info: dict[str, Any]) -> list[str]:
    return info["extra-links"] + [entry["hook-class-name"] for entry in info["connection-types"]]


def _import_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    value = getattr(importlib.import_module(module), name)
    assert isinstance(value, type), dotted
    return value


def test_provider_info_names_only_what_imports():
    info = get_provider_info()
    modules = _named_modules(info)
    assert {m.split(".")[1] for m in modules} == {"operators", "sensors", "hooks", "triggers", "transfers"}
    for module in modules:
        importlib.import_module(module)
    for dotted in _named_classes(info):
        _import_class(dotted)


def _airflow(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        **extra,
    )
    return env


def test_airflow_cli_shows_what_the_provider_ships(tmp_path):
    out = _airflow(
        ["providers", "get", "airflow-provider-gemini", "--full", "--output", "json"], _airflow_env(tmp_path)
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # Airflow 3.0 prints log lines on stdout before the JSON document.
    (shown,) = json.loads(out.stdout[out.stdout.index("[{") :])
    info = get_provider_info()
    assert shown["package-name"] == "airflow-provider-gemini"
    for section in ("operators", "sensors", "hooks", "triggers", "transfers", "extra-links"):
        assert shown[section] == info[section], section


def test_basic_example_runs_with_airflow_dags_test(tmp_path, gemini_emulator):
    """The README's path for a user: the example in a dags folder, a connection, ``airflow dags test``."""
    dags = tmp_path / "dags"
    (dags / "data").mkdir(parents=True)
    shutil.copy(EXAMPLES / "gemini_batch_basic.py", dags)
    shutil.copy(EXAMPLES / "data" / "prompts.jsonl", dags / "data")
    conn = {
        "conn_type": "gemini",
        "password": gemini_emulator.api_key,
        "extra": {"base_url": gemini_emulator.url},
    }
    env = _airflow_env(
        tmp_path,
        AIRFLOW_CONN_GEMINI_DEFAULT=json.dumps(conn),
        AIRFLOW_VAR_GEMINI_BASIC_OUTPUT_DIR=str(tmp_path / "out"),
    )
    migrate = _airflow(["db", "migrate"], env)
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    run = _airflow(["dags", "test", "gemini_batch_basic", "2026-11-24"], env)

    logs = run.stdout + run.stderr
    assert run.returncode == 0, logs[-4000:]
    prompts = [json.loads(line)["key"] for line in (dags / "data" / "prompts.jsonl").read_text().splitlines()]
    results = (tmp_path / "out" / "results-2026-11-24.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in results] == prompts
    assert gemini_emulator.stats()["jobs_created"] == 1
    leaks = [line for line in logs.splitlines() if gemini_emulator.api_key in line]
    if Version("3.1") > AIRFLOW_VERSION:
        # Airflow 3.0's `airflow dags test` prints its own supervisor's debug messages to the console
        # whatever the logging level, among them the one asking to mask each secret, which carries the
        # secret (README, "What each Airflow version gets"). Anything else is ours.
        leaks = [line for line in leaks if "MaskSecret(value=" not in line]
    assert leaks == []
