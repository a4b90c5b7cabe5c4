"""The emulator's clock, answers, faults, control API, persistence and CLI."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

from airflow_provider_gemini.testing._app import build_app
from airflow_provider_gemini.testing._state import Emulated
from airflow_provider_gemini.testing.emulator import EmulatorClient, EmulatorServer

# The API requires a batch's display name (see tests/testing/test_emulator_fidelity.py).
NAMED = {"display_name": "emulator-behaviour"}


def client_for(emulator, **options) -> genai.Client:
    return genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.url, **options)
    )


def inline(texts, keys=None, config=None):
    return [
        {
            "contents": [{"parts": [{"text": t}]}],
            "metadata": {"key": (keys or [f"k{i}" for i in range(len(texts))])[i]},
            **({"config": config} if config else {}),
        }
        for i, t in enumerate(texts)
    ]


def raw_get(emulator, name):
    response = httpx.get(f"{emulator.url}/v1beta/{name}", headers={"x-goog-api-key": emulator.api_key})
    response.raise_for_status()
    return response.json()


def test_jobs_move_through_states_with_progress(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(pending_seconds=10, running_seconds=100)
    client = client_for(gemini_emulator)
    job = client.batches.create(
        model="gemini-2.5-flash", src=inline([f"t{i}" for i in range(10)]), config=NAMED
    )
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_PENDING"
    gemini_emulator.advance(10 + 50)  # half way through running
    running = raw_get(gemini_emulator, job.name)["metadata"]
    assert running["state"] == "BATCH_STATE_RUNNING"
    stats = running["batchStats"]
    assert stats["requestCount"] == "10"
    assert stats["successfulRequestCount"] == "5"
    assert stats["pendingRequestCount"] == "5"
    gemini_emulator.advance(50)
    done = raw_get(gemini_emulator, job.name)
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["done"] is True
    assert done["metadata"]["batchStats"]["successfulRequestCount"] == "10"
    assert done["metadata"]["endTime"] == _iso(gemini_emulator.clock()["now"])


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_frozen_clock_holds_jobs_until_advanced_and_reset_restores_real_time(gemini_emulator):
    frozen_at = gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=30)
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    created = raw_get(gemini_emulator, job.name)["metadata"]
    assert created["createTime"] == _iso(frozen_at)
    # Real time passed over the calls above; the emulator's did not.
    assert gemini_emulator.clock() == {"now": frozen_at, "frozen": True, "step_per_get": 0.0}
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_RUNNING"
    assert gemini_emulator.advance(29.9) == pytest.approx(frozen_at + 29.9)
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_RUNNING"
    gemini_emulator.advance(0.1)
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    with pytest.raises(httpx.HTTPStatusError):
        gemini_emulator.advance(-1)
    gemini_emulator.reset()
    assert gemini_emulator.clock()["frozen"] is False
    assert gemini_emulator.clock()["now"] == pytest.approx(time.time(), abs=5)


def test_a_clock_stepped_per_get_ends_a_job_after_a_set_number_of_polls(gemini_emulator):
    gemini_emulator.freeze(step_per_get=10)
    gemini_emulator.configure(pending_seconds=10, running_seconds=20)
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    seen = [client.batches.get(name=job.name).state.name for _ in range(4)]
    assert seen == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]


def test_an_advanced_running_clock_keeps_running_from_there(gemini_emulator):
    gemini_emulator.configure(running_seconds=3600)
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_RUNNING"
    moved_to = gemini_emulator.advance(3600)
    assert moved_to == pytest.approx(time.time() + 3600, abs=5)
    assert raw_get(gemini_emulator, job.name)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    gemini_emulator.freeze()
    assert gemini_emulator.unfreeze() >= moved_to


def test_answers_are_deterministic(gemini_emulator):
    client = client_for(gemini_emulator)
    first = client.batches.get(
        name=client.batches.create(model="gemini-2.5-flash", src=inline(["same"]), config=NAMED).name
    )
    second = client.batches.get(
        name=client.batches.create(model="gemini-2.5-flash", src=inline(["same"]), config=NAMED).name
    )
    assert first.dest.inlined_responses[0].response.text == second.dest.inlined_responses[0].response.text


@pytest.mark.parametrize("style", ["openapi", "json_schema"])
def test_structured_output_conforms_to_the_schema(gemini_emulator, style):
    if style == "openapi":
        schema = {
            "type": "OBJECT",
            "properties": {
                "title": {"type": "STRING"},
                "rating": {"type": "INTEGER", "minimum": 1, "maximum": 5},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
                "tone": {"type": "STRING", "enum": ["calm", "loud"]},
                "price": {"type": "NUMBER"},
                "ok": {"type": "BOOLEAN"},
                "dims": {"type": "OBJECT", "properties": {"w": {"type": "INTEGER"}}},
            },
        }
        config = {"response_mime_type": "application/json", "response_schema": schema}
    else:
        schema = {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": {"type": "string"}},
                "tone": {"enum": ["calm", "loud"]},
                "price": {"type": "number"},
                "ok": {"type": "boolean"},
                "dims": {"type": "object", "properties": {"w": {"type": "integer"}}},
            },
        }
        config = {"response_mime_type": "application/json", "response_json_schema": schema}
    client = client_for(gemini_emulator)
    job = client.batches.create(
        model="gemini-2.5-flash", src=inline(["a blue kettle"], config=config), config=NAMED
    )
    data = json.loads(client.batches.get(name=job.name).dest.inlined_responses[0].response.text)
    assert isinstance(data["title"], str)
    assert 1 <= data["rating"] <= 5
    assert isinstance(data["rating"], int)
    assert data["tags"]
    assert all(isinstance(t, str) for t in data["tags"])
    assert data["tone"] in ("calm", "loud")
    assert isinstance(data["price"], float)
    assert isinstance(data["ok"], bool)
    assert isinstance(data["dims"]["w"], int)


def test_failed_requests_by_pattern_and_ratio(gemini_emulator):
    client = client_for(gemini_emulator)
    gemini_emulator.configure(failed_key_pattern="^bad")
    keys = ["good1", "bad1", "good2", "bad2"]
    uploaded = client.files.upload(
        file=io.BytesIO(
            b"".join(
                json.dumps({"key": k, "request": {"contents": [{"parts": [{"text": k}]}]}}).encode() + b"\n"
                for k in keys
            )
        ),
        config={"mime_type": "jsonl"},
    )
    job = client.batches.get(
        name=client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED).name
    )
    lines = [json.loads(x) for x in client.files.download(file=job.dest.file_name).decode().splitlines()]
    failed = {line["key"] for line in lines if "error" in line}
    assert failed == {"bad1", "bad2"}
    assert all(line["error"]["code"] == 400 for line in lines if "error" in line)
    assert raw_get(gemini_emulator, job.name)["metadata"]["batchStats"]["failedRequestCount"] == "2"

    gemini_emulator.configure(failed_key_pattern=None, failed_request_ratio=0.5)
    job = client.batches.get(
        name=client.batches.create(
            model="gemini-2.5-flash", src=inline(["x"] * 200, [f"r{i}" for i in range(200)]), config=NAMED
        ).name
    )
    errors_seen = sum(1 for r in job.dest.inlined_responses if r.error)
    assert 60 < errors_seen < 140


@pytest.mark.parametrize("outcome", ["FAILED", "EXPIRED"])
def test_configured_job_outcomes_carry_an_error(gemini_emulator, outcome):
    gemini_emulator.configure(job_outcome=outcome, job_error="quota exhausted for this model")
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    raw = raw_get(gemini_emulator, job.name)
    assert raw["metadata"]["state"] == f"BATCH_STATE_{outcome}"
    assert raw["error"]["message"] == "quota exhausted for this model"
    assert client.batches.get(name=job.name).state == getattr(types.JobState, f"JOB_STATE_{outcome}")


def test_jobs_left_running_past_the_limit_expire(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=100, expire_seconds=30)
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    gemini_emulator.advance(29)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    gemini_emulator.advance(1)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_EXPIRED


def test_forcing_an_outcome_on_a_live_job(gemini_emulator):
    gemini_emulator.configure(running_seconds=100)
    client = client_for(gemini_emulator)
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    gemini_emulator.set_job_outcome(job.name, "FAILED", "disk on fire")
    assert raw_get(gemini_emulator, job.name)["error"]["message"] == "disk on fire"


def test_http_faults_then_sdk_retries_succeed(gemini_emulator):
    client = client_for(
        gemini_emulator,
        retry_options=types.HttpRetryOptions(attempts=5, initial_delay=0.01, max_delay=0.02, jitter=0),
    )
    job = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    gemini_emulator.add_fault(operations=["gets"], status=503, count=3)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED
    assert gemini_emulator.stats()["calls"]["gets"] == 4


def test_faults_without_retries_surface_googles_error_body(gemini_emulator):
    client = client_for(gemini_emulator)
    gemini_emulator.add_fault(operations=["lists"], status=429, count=1)
    with pytest.raises(errors.ClientError) as info:
        list(client.batches.list())
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert list(client.batches.list()) == []  # the rule expired after one call


def test_dropped_download_is_an_error_for_the_client(gemini_emulator):
    name = gemini_emulator.synthesize_file(50_000)
    gemini_emulator.add_fault(operations=["downloads"], drop_after_bytes=1000)
    client = client_for(gemini_emulator)  # held: a collected client closes its connections
    # The SDK's transport (httpx or its httpx2 fork) reports the short body.
    with pytest.raises(Exception, match="peer closed connection without sending complete message body"):
        client.files.download(file=name)


def test_ranged_download_resumes(gemini_emulator):
    name = gemini_emulator.synthesize_file(20_000)
    url = f"{gemini_emulator.url}/download/v1beta/{name}:download?alt=media"
    headers = {"x-goog-api-key": gemini_emulator.api_key}
    whole = httpx.get(url, headers=headers).content
    tail = httpx.get(url, headers={**headers, "Range": "bytes=1000-"})
    assert tail.status_code == 206
    assert tail.content == whole[1000:]


def test_synthesized_file_downloads_with_its_size(gemini_emulator):
    name = gemini_emulator.synthesize_file(3_000_000, line_bytes=500)
    client = client_for(gemini_emulator)
    data = client.files.download(file=name)
    assert len(data) >= 3_000_000
    first = json.loads(data.split(b"\n", 1)[0])
    assert first["key"] == "k0000000000"
    assert "candidates" in first["response"]


def test_stats_count_calls_and_created_resources(gemini_emulator):
    client = client_for(gemini_emulator)
    client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    gemini_emulator.add_fault(operations=["creates"], status=500, count=1)
    with pytest.raises(errors.ServerError):
        client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    stats = gemini_emulator.stats()
    assert stats["calls"]["creates"] == 2
    assert stats["jobs_created"] == 1


def test_data_dir_survives_a_restart(tmp_path):
    with EmulatorServer(api_key="k", data_dir=tmp_path, running_seconds=60) as first:
        client = client_for(first)
        uploaded = client.files.upload(
            file=io.BytesIO(b'{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'),
            config={"mime_type": "jsonl"},
        )
        job = client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED)
        deleted = client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED)
        client.batches.delete(name=deleted.name)
    with EmulatorServer(api_key="k", data_dir=tmp_path) as second:
        client = client_for(second)
        assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
        with pytest.raises(errors.ClientError) as gone:  # still deleted, and still at work
            client.batches.get(name=deleted.name)
        assert gone.value.code == 404
        assert second.stats()["live_jobs"] == 2
        second.advance(60)  # the job's clock was kept across the restart
        assert second.stats()["live_jobs"] == 0
        assert client.files.get(name=uploaded.name).size_bytes == uploaded.size_bytes
        done = client.batches.get(name=job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        assert b'"key": "a"' in client.files.download(file=done.dest.file_name)
        stats = second.stats()
    assert stats["jobs_created"] == 2  # the counts survive the restart too
    assert stats["files_created"] == 2  # the upload and the result file
    assert stats["calls"]["creates"] == 2


def test_each_change_appends_one_line_however_many_jobs_exist(tmp_path):
    state = Emulated(data_dir=tmp_path, api_key="k", persist=True)
    jobs = [
        state.new_job(
            kind="generate",
            model="models/gemini-2.5-flash",
            display_name=f"job-{i}",
            items=[],
            input_file=None,
            request_count=0,
            failed_count=0,
        )
        for i in range(200)
    ]
    before = state.journal_path.stat().st_size
    for job in jobs:
        state.end(job, "CANCELLED")
    ended = state.journal_path.read_text().splitlines()[-200:]
    assert all('"job_ended"' in line for line in ended)
    assert state.journal_path.stat().st_size - before == sum(len(line) + 1 for line in ended)

    reloaded = Emulated(data_dir=tmp_path, api_key="k", persist=True)
    assert {job.final_state for job in reloaded.jobs.values()} == {"CANCELLED"}
    assert reloaded.jobs_created == 200
    assert len(reloaded.journal_path.read_text().splitlines()) == 201  # compacted: a line a job, the counts


def test_cli_prints_its_address_and_serves(tmp_path):
    script = Path(sys.executable).parent / "gemini-batch-emulator"
    proc = subprocess.Popen(
        [str(script), "--host", "127.0.0.1", "--port", "0", "--api-key", "cli-key"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("gemini-batch-emulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[-1]
        control = EmulatorClient(url)
        control.configure(pending_seconds=0)
        client = genai.Client(api_key="cli-key", http_options=types.HttpOptions(base_url=url))
        client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
        assert control.stats()["jobs_created"] == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) in (0, -15)


def test_two_concurrent_gets_of_a_finishing_job_write_one_result_file(tmp_path):
    state = Emulated(data_dir=tmp_path / "emulator", api_key="k")
    request = {"contents": [{"parts": [{"text": "x" * 200}]}]}
    source = tmp_path / "input.jsonl"
    source.write_text("".join(json.dumps({"key": f"k{i}", "request": request}) + "\n" for i in range(2000)))
    uploaded = state.add_file(source, display_name=None, mime_type="jsonl", source="UPLOADED")
    state.clock.freeze()
    job = state.new_job(
        kind="generate",
        model="models/gemini-2.5-flash",
        display_name=None,
        items=None,
        input_file=uploaded.name,
        request_count=2000,
        failed_count=0,
    )
    job.running_seconds = 10
    state.clock.advance(10)  # finished, not yet settled: the first GET writes its results

    async def two_gets():
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
            get = client.get(f"/v1beta/{job.name}", headers={"x-goog-api-key": "k"})
            return await asyncio.gather(
                get, client.get(f"/v1beta/{job.name}", headers={"x-goog-api-key": "k"})
            )

    answers = [r.json() for r in asyncio.run(two_gets())]
    assert [a["metadata"]["state"] for a in answers] == ["BATCH_STATE_SUCCEEDED"] * 2
    assert answers[0]["response"]["responsesFile"] == answers[1]["response"]["responsesFile"]
    assert [f.name for f in state.files.values() if f.source == "GENERATED"] == [
        answers[0]["response"]["responsesFile"]
    ]


def test_a_held_create_is_acted_on_at_its_list_or_when_the_faults_are_cleared(gemini_emulator):
    import threading

    client = client_for(gemini_emulator)
    created: list[str] = []

    def create() -> None:
        created.append(client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED).name)

    for release in ("list", "clear"):
        gemini_emulator.add_fault(operations=["creates"], hold_until_lists=1, count=1)
        sender = threading.Thread(target=create)
        sender.start()
        while not gemini_emulator.stats()["held_requests"]:
            pass  # until the emulator holds it
        if release == "list":
            names = [job.name for job in client.batches.list(config={"page_size": 100})]
        else:
            gemini_emulator.clear_faults()
        sender.join(timeout=30)
        assert not sender.is_alive()
        assert len(created) == (1 if release == "list" else 2)
        if release == "list":
            assert created[-1] in names  # acted on before the list that released it was answered
    assert gemini_emulator.stats()["jobs_created"] == 2


def test_an_account_s_history_is_finished_jobs_from_the_past_listed_after_new_ones(gemini_emulator):
    client = client_for(gemini_emulator)
    now = gemini_emulator.freeze()
    assert gemini_emulator.add_history(4, days=2) == 4
    new = client.batches.create(model="gemini-2.5-flash", src=inline(["x"]), config=NAMED)
    listed = list(client.batches.list(config={"page_size": 2}))
    assert listed[0].name == new.name
    assert [job.display_name for job in listed[1:]] == ["history-3", "history-2", "history-1", "history-0"]
    ages = [now - job.create_time.timestamp() for job in listed[1:]]
    assert ages == pytest.approx([12 * 3600, 24 * 3600, 36 * 3600, 48 * 3600], abs=1)
    assert {job.state.name for job in listed[1:]} == {"JOB_STATE_SUCCEEDED"}
    assert gemini_emulator.stats()["jobs_created"] == 1  # the past is not counted as created here


def test_an_unknown_model_or_one_without_batch_is_refused_as_the_api_does(gemini_emulator):
    client = client_for(gemini_emulator)
    model = client.models.get(model="gemini-2.5-flash")
    assert "batchGenerateContent" in model.supported_actions
    with pytest.raises(errors.ClientError) as unknown:
        client.batches.create(model="gemini-2.5-flsh", src=inline(["x"]), config=NAMED)
    assert unknown.value.code == 404
    assert "models/gemini-2.5-flsh is not found for API version v1, or is not supported for " in str(
        unknown.value
    )
    with pytest.raises(errors.ClientError) as no_batch:
        client.batches.create(model="gemini-2.0-flash-live-001", src=inline(["x"]), config=NAMED)
    assert "not supported for batchGenerateContent" in str(no_batch.value)
    with pytest.raises(errors.ClientError):
        client.models.get(model="gemini-2.5-flsh")
    gemini_emulator.configure(extra_models=["gemini-9-flash"])
    assert client.batches.create(model="gemini-9-flash", src=inline(["x"]), config=NAMED).name.startswith(
        "batches/"
    )
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_an_invalid_response_schema_is_refused_whole_inline_and_per_request_in_a_file(
    gemini_emulator, tmp_path
):
    client = client_for(gemini_emulator)
    bad = {"response_mime_type": "application/json", "response_schema": {"type": "STRNG"}}
    with pytest.raises(errors.ClientError) as refused:
        client.batches.create(model="gemini-2.5-flash", src=inline(["a"], config=bad), config=NAMED)
    assert refused.value.code == 400
    assert "response_schema.type 'STRNG' is not a type" in str(refused.value)
    lines = [
        {"key": "good", "request": {"contents": [{"parts": [{"text": "a"}]}]}},
        {
            "key": "bad",
            "request": {
                "contents": [{"parts": [{"text": "b"}]}],
                "generationConfig": {"responseSchema": {"type": "OBJECT", "properties": {}}},
            },
        },
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    uploaded = client.files.upload(file=str(path), config={"mime_type": "jsonl"})
    job = client.batches.get(
        name=client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED).name
    )
    results = [json.loads(line) for line in client.files.download(file=job.dest.file_name).splitlines()]
    by_key = {r["key"]: r for r in results}
    assert "response" in by_key["good"]
    assert "properties must not be empty for an OBJECT" in by_key["bad"]["error"]["message"]
