"""GeminiHook against the emulator over real HTTP."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import traceback
from datetime import datetime, timezone

import pytest

from airflow_provider_gemini.batch.errors import GeminiApiError, ResultsDownloadError
from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState
from airflow_provider_gemini.hooks.gemini import GeminiHook, _reached

pytestmark = pytest.mark.usefixtures("gemini_connection")


def jsonl(count: int = 4) -> bytes:
    return b"".join(
        json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"item {i}"}]}]}}).encode()
        + b"\n"
        for i in range(count)
    )


INLINE = [{"request": {"contents": [{"parts": [{"text": "hello"}]}]}, "metadata": {"key": "only"}}]


def use_connection(monkeypatch, emulator, **extra):
    conn = {
        "conn_type": "gemini",
        "password": extra.pop("password", emulator.api_key),
        "extra": {"base_url": emulator.url, "retry_initial_delay": 0.01, "retry_max_delay": 0.05, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_upload_create_get_list_stream_cancel_delete(gemini_emulator, monkeypatch, tmp_path, api_version):
    use_connection(monkeypatch, gemini_emulator, api_version=api_version)
    hook = GeminiHook()
    odd = tmp_path / "a.b.jsonl"
    odd.write_bytes(jsonl())
    uploaded = hook.upload_file(odd, display_name="input")
    assert uploaded["name"].startswith("files/")
    assert hook.get_file(uploaded["name"])["displayName"] == "input"

    job = hook.create_batch(model="gemini-2.5-flash", display_name="hook-file", file_name=uploaded["name"])
    job = hook.get_batch(job.name)
    assert job.state is BatchState.SUCCEEDED
    assert job.stats.request_count == 4
    assert job.stats.succeeded == 4
    assert job.model == "models/gemini-2.5-flash"

    keys = [json.loads(line)["key"] for line in hook.iter_result_lines(job.result_file)]
    assert keys == ["k0", "k1", "k2", "k3"]

    hook.create_batch(model="gemini-2.5-flash", display_name="other", inline_requests=INLINE)
    assert [j.name for j in hook.list_batches(display_name="hook-file", page_size=1)] == [job.name]
    assert len(hook.list_batches(page_size=1)) == 2

    gemini_emulator.configure(running_seconds=60)
    live = hook.create_batch(model="models/gemini-2.5-flash", display_name="live", inline_requests=INLINE)
    assert live.state in (BatchState.PENDING, BatchState.RUNNING)
    hook.cancel_batch(live.name)
    assert hook.get_batch(live.name).state is BatchState.CANCELLED
    hook.delete_batch(live.name)
    with pytest.raises(GeminiApiError) as info:
        hook.get_batch(live.name)
    assert info.value.code == 404
    hook.delete_file(uploaded["name"])


def test_upload_from_stream_and_name_without_extension(gemini_emulator, tmp_path):
    hook = GeminiHook()
    bare = tmp_path / "requests"
    bare.write_bytes(jsonl())
    assert hook.upload_file(bare)["mimeType"] == "jsonl"
    assert int(hook.upload_file(io.BytesIO(jsonl(2)))["sizeBytes"]) == len(jsonl(2))


def test_inline_batch_keeps_inline_answers(gemini_emulator):
    hook = GeminiHook()
    job = hook.get_batch(
        hook.create_batch(model="gemini-2.5-flash", display_name="in", inline_requests=INLINE).name
    )
    assert job.inlined_responses[0]["metadata"] == {"key": "only"}
    assert "hello" in json.dumps(job.inlined_responses[0]["response"])


async def test_async_get_and_cancel(gemini_emulator):
    gemini_emulator.configure(running_seconds=60)
    hook = GeminiHook()
    job = hook.create_batch(model="gemini-2.5-flash", display_name="a", inline_requests=INLINE)
    assert (await hook.aget_batch(job.name)).state is BatchState.RUNNING
    await hook.acancel_batch(job.name)
    assert (await hook.aget_batch(job.name)).state is BatchState.CANCELLED
    assert gemini_emulator.stats()["calls"]["cancels"] == 1


def test_three_503s_then_success(gemini_emulator):
    hook = GeminiHook()
    job = hook.create_batch(model="gemini-2.5-flash", display_name="r", inline_requests=INLINE)
    gemini_emulator.add_fault(operations=["gets"], status=503, count=3)
    assert hook.get_batch(job.name).state is BatchState.SUCCEEDED
    assert gemini_emulator.stats()["calls"]["gets"] == 4


def test_a_400_is_raised_at_once_with_the_api_message(gemini_emulator):
    hook = GeminiHook()
    with pytest.raises(GeminiApiError) as info:
        hook.create_batch(model="gemini-2.5-flash", display_name="x", file_name="files/missing")
    assert info.value.code == 404
    gemini_emulator.add_fault(operations=["gets"], status=400)
    with pytest.raises(
        GeminiApiError, match="Gemini API error 400 INVALID_ARGUMENT on get batches/abc"
    ) as info:
        hook.get_batch("abc")
    assert "Emulated fault: HTTP 400 for gets" in str(info.value)
    assert gemini_emulator.stats()["calls"]["gets"] == 1


def test_dropped_download_is_an_error_never_a_short_result(gemini_emulator):
    hook = GeminiHook()
    name = gemini_emulator.synthesize_file(200_000)
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=50_000)
    with pytest.raises(ResultsDownloadError, match=rf"{name} failed after 5 attempts.*of \d+ bytes"):
        list(hook.iter_result_lines(name))
    assert gemini_emulator.stats()["calls"]["downloads"] == 5


def test_one_dropped_connection_resumes_from_the_last_line(gemini_emulator):
    hook = GeminiHook()
    name = gemini_emulator.synthesize_file(300_000)
    expected = list(hook.iter_result_lines(name))
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=123_457, count=1)
    assert list(hook.iter_result_lines(name)) == expected
    assert gemini_emulator.stats()["calls"]["downloads"] == 3


def test_connection_check(gemini_emulator, monkeypatch):
    assert GeminiHook().test_connection() == (True, "Connected to the Gemini API.")
    use_connection(monkeypatch, gemini_emulator, password="wrong-key-123")
    ok, message = GeminiHook().test_connection()
    assert not ok
    assert "API key not valid" in message


def test_api_key_reaches_no_log_error_or_repr(gemini_emulator, monkeypatch, caplog):
    key = gemini_emulator.api_key
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    hook = GeminiHook()
    texts.append(repr(hook))
    texts.append(repr(hook.settings))
    job = hook.create_batch(model="gemini-2.5-flash", display_name="s", inline_requests=INLINE)
    hook.get_batch(job.name)
    name = gemini_emulator.synthesize_file(20_000)
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=100)
    gemini_emulator.add_fault(operations=["gets"], status=400)

    failing = [
        lambda: list(hook.iter_result_lines(name)),
        lambda: hook.get_batch(job.name),
        lambda: GeminiHook(gemini_conn_id="gemini_default").create_batch(
            model="m", display_name="x", file_name="files/none"
        ),
    ]
    for call in failing:
        with pytest.raises((GeminiApiError, ResultsDownloadError)) as info:
            call()
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    use_connection(
        monkeypatch, gemini_emulator, password=key, base_url="http://127.0.0.1:9"
    )  # nothing listens
    with pytest.raises(Exception, match="onnect") as info:  # the transport's connect error, after retries
        GeminiHook().get_batch("abc")
    texts += [str(info.value), "".join(traceback.format_exception(info.value))]

    assert len(caplog.records) > 5
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert all(key not in text for text in texts)


def test_importing_the_hook_leaves_the_sdk_out():
    code = "import sys, airflow_provider_gemini.hooks.gemini; print('google.genai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_vertex_ai_mode_is_refused_at_first_use_before_any_call(gemini_emulator, monkeypatch):
    use_connection(monkeypatch, gemini_emulator, vertexai="true", project="proj", location="europe-west4")
    for call in (GeminiHook().get_batch, GeminiHook().cancel_batch):
        with pytest.raises(
            GeminiApiError, match=r"Vertex AI batch prediction is not supported .* nothing was"
        ):
            call("batches/anything")
    with pytest.raises(GeminiApiError, match="not supported by this provider yet"):
        await GeminiHook().aget_batch("batches/anything")
    assert sum(gemini_emulator.stats()["calls"].values()) == 0


def test_a_list_since_a_time_stops_paging_once_it_goes_back_past_it(gemini_emulator, monkeypatch):
    use_connection(monkeypatch, gemini_emulator)
    hook = GeminiHook()
    start = gemini_emulator.freeze()
    for day in range(5):  # one job a day, oldest first
        hook.create_batch(model="gemini-2.5-flash", display_name=f"day-{day}", inline_requests=INLINE)
        gemini_emulator.advance(86_400)
    lists = gemini_emulator.stats()["calls"]["lists"]
    since_day_3 = start + 3 * 86_400 - 60
    jobs = hook.list_batches(page_size=1, created_since=since_day_3)
    # Newest first: day 4, day 3, then day 2 (older than the time) ends the paging.
    assert [job.display_name for job in jobs] == ["day-4", "day-3", "day-2"]
    assert gemini_emulator.stats()["calls"]["lists"] - lists == 3
    assert len(hook.list_batches(page_size=1)) == 5


def _listed(*days: int | None) -> list[BatchJobInfo]:
    return [
        BatchJobInfo(
            name=f"batches/{i}", state=BatchState.RUNNING, create_time=day and f"2026-11-{day:02d}T10:00:00Z"
        )
        for i, day in enumerate(days)
    ]


def test_only_a_list_that_comes_newest_first_is_cut_short():
    since = datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()
    assert _reached(_listed(25, 22, 19), since)
    assert not _reached(_listed(25, 22, 21), since)  # not back to the time yet
    assert not _reached(_listed(19, 25, 18), since)  # another order: the whole list is read
    assert not _reached(_listed(25, None, 18), since)  # a job without a time: read on
    assert not _reached([], since)
