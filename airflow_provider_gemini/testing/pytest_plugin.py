"""Pytest fixtures for testing DAGs against the local Gemini emulator (installed as a pytest plugin).

- ``gemini_emulator_server`` (session): one emulator for the whole session.
- ``gemini_emulator``: that emulator, reset before the test.
- ``gemini_connection``: ``AIRFLOW_CONN_GEMINI_DEFAULT`` pointing at it, with fast retries.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_gemini.testing.emulator import EmulatorServer


@pytest.fixture(scope="session")
def gemini_emulator_server() -> Iterator[EmulatorServer]:
    from airflow_provider_gemini.testing.emulator import EmulatorServer

    # A distinctive key, so tests can prove it never shows up anywhere.
    with EmulatorServer(api_key="emu-key-" + secrets.token_hex(12)) as server:
        yield server


@pytest.fixture
def gemini_emulator(gemini_emulator_server: EmulatorServer) -> EmulatorServer:
    gemini_emulator_server.reset()
    return gemini_emulator_server


@pytest.fixture
def gemini_connection(gemini_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"base_url": gemini_emulator.url, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}
    conn = {"conn_type": "gemini", "password": gemini_emulator.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
    return "gemini_default"
