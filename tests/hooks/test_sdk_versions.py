"""What the hook relies on across the google-genai versions we support (1.74 through 3.x).

Run on the oldest supported SDK and on the Google provider's 2.x as well as on the pinned 3.x.
"""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_gemini.batch.jobs import BatchState
from airflow_provider_gemini.hooks.gemini import GeminiHook

INLINE = [{"request": {"contents": [{"parts": [{"text": "hello"}]}]}, "metadata": {"key": "only"}}]


def use_connection(monkeypatch, emulator, **extra):
    extra = {"base_url": emulator.url, "retry_initial_delay": 0.01, "retry_max_delay": 0.05, **extra}
    conn = {"conn_type": "gemini", "password": emulator.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))


def test_an_answer_slower_than_the_timeout_is_retried_by_the_sdk(gemini_emulator, monkeypatch):
    """The SDK's HttpRetryOptions retry timeouts and refused connections from google-genai 1.74 on
    (1.73 retried only HTTP status codes): this sets the package's floor."""
    use_connection(monkeypatch, gemini_emulator, timeout=1)
    hook = GeminiHook()
    job = hook.create_batch(model="gemini-2.5-flash", display_name="slow", inline_requests=INLINE)
    gemini_emulator.add_fault(operations=["gets"], delay_seconds=2.5, count=1)
    assert hook.get_batch(job.name).state is BatchState.SUCCEEDED
    assert gemini_emulator.stats()["calls"]["gets"] >= 2  # the slow one, then the retry


@pytest.fixture
def httpx2_level():
    logger = logging.getLogger("httpx2")
    before = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(before)


def test_the_transports_request_lines_stay_out_of_task_logs(
    gemini_emulator, gemini_connection, httpx2_level, caplog
):
    """google-genai 3 sends through httpx2, whose logger Airflow leaves at INFO (it quiets only httpx,
    what 2.x sends through): one line per call, and an upload's URL carries its upload id."""
    caplog.set_level(logging.INFO)
    hook = GeminiHook()
    hook.list_batches()
    assert httpx2_level.getEffectiveLevel() == logging.WARNING
    assert not [record for record in caplog.records if record.name.startswith("httpx2")]


def test_a_level_the_deployment_set_for_httpx2_is_kept(gemini_emulator, gemini_connection, httpx2_level):
    httpx2_level.setLevel(logging.DEBUG)
    GeminiHook().list_batches()
    assert httpx2_level.level == logging.DEBUG
