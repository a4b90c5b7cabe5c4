"""The package is a provider Airflow finds: listed, with its connection type, form and hook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_gemini.get_provider_info import get_provider_info


def test_airflow_lists_the_provider(airflow_db):
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
    )
    assert "airflow-provider-gemini" in out.stdout


def test_gemini_connection_type_has_its_hook_and_form():
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_gemini._compat import AIRFLOW_VERSION

    if AIRFLOW_VERSION.release < (3, 2):
        # Before 3.2 the form comes from the hook as WTForms fields (FAB provider); without it, none.
        pytest.importorskip("wtforms")

    manager = ProvidersManager()
    hook = manager.hooks["gemini"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_gemini.hooks.gemini.GeminiHook"
    assert hook.connection_id_attribute_name == "gemini_conn_id"
    widgets = manager.connection_form_widgets
    assert "extra__gemini__base_url" in widgets
    assert widgets["extra__gemini__keyfile_dict"].is_sensitive
    behaviour = manager.field_behaviours["gemini"]
    assert behaviour["relabeling"] == {"password": "API key"}
    assert "login" in behaviour["hidden_fields"]


@pytest.mark.parametrize("section", ["hooks", "connection-types"])
def test_provider_info_declares(section):
    assert get_provider_info()[section]


def test_the_job_link_opens_ai_studio_for_the_api_and_the_server_s_own_page_elsewhere():
    from airflow_provider_gemini.links.batch import AI_STUDIO_BATCHES_URL, batch_console_url

    assert batch_console_url("batches/abc") == AI_STUDIO_BATCHES_URL
    assert (
        batch_console_url("batches/abc", "http://127.0.0.1:8765/")
        == "http://127.0.0.1:8765/_emulator/batches/abc"
    )
