"""The plugin as Airflow finds it: registered by installing the package, light to import in every
Airflow process, and listing one page of jobs per API call through GeminiHook."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from airflow_provider_gemini.get_provider_info import get_provider_info
from airflow_provider_gemini.plugins.gemini_batches import URL_PREFIX, GeminiBatchesPlugin
from airflow_provider_gemini.testing.emulator import EmulatorServer

PLUGIN = "airflow_provider_gemini.plugins.gemini_batches"


def test_installing_the_package_registers_the_plugin() -> None:
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.name == "gemini_batches"]
    assert entry.load() is GeminiBatchesPlugin
    (declared,) = get_provider_info()["plugins"]
    module, _, name = declared["plugin-class"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is GeminiBatchesPlugin
    assert declared["name"] == GeminiBatchesPlugin.name
    (app,) = GeminiBatchesPlugin.fastapi_apps
    (view,) = GeminiBatchesPlugin.external_views
    assert (app["url_prefix"], view["href"], view["destination"]) == (URL_PREFIX, f"{URL_PREFIX}/", "nav")


def test_importing_the_plugin_leaves_the_sdk_and_fastapi_alone() -> None:
    code = (
        f"import sys, json; import {PLUGIN}; "
        "print(json.dumps([m for m in ('google.genai', 'fastapi', 'airflow.api_fastapi.core_api.security', "
        f"'{PLUGIN.rpartition('.')[0]}.app') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_one_page_is_one_list_call_and_the_key_stays_out_of_errors(
    gemini_emulator: EmulatorServer, gemini_connection: str
) -> None:
    from airflow_provider_gemini.plugins.app import ListError, list_page

    gemini_emulator.add_history(120)
    before = gemini_emulator.stats()["calls"]["lists"]
    first, token, _ = list_page(gemini_connection, None, 50)
    second, last_token, _ = list_page(gemini_connection, token, 50)
    third, end, _ = list_page(gemini_connection, last_token, 50)
    assert gemini_emulator.stats()["calls"]["lists"] - before == 3
    assert (len(first), len(second), len(third), end) == (50, 50, 20, None)
    assert not {j.name for j in first} & {j.name for j in second}
    gemini_emulator.add_fault(operations=["lists"], status=403, count=1)
    try:
        list_page(gemini_connection, None, 50)
    except ListError as err:
        message = str(err)
    else:
        raise AssertionError("a refused list call must raise")
    assert gemini_connection in message
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    key = GeminiHook(gemini_connection).settings.api_key
    assert key
    assert key not in message


def test_airflow_lists_the_plugin_with_its_app_and_navigation_entry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run(
        [airflow, "plugins", "--output", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (ours,) = [p for p in json.loads(out.stdout[out.stdout.index("[{") :]) if p["name"] == "gemini_batches"]
    assert ours["source"].startswith("airflow-provider-gemini==")
    assert [app["url_prefix"] for app in ours["fastapi_apps"]] == [URL_PREFIX]
    assert [view["url_route"] for view in ours["external_views"]] == ["gemini-batches"]
