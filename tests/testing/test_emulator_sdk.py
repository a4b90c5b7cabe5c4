"""The unmodified google-genai SDK, sync and async, against the emulator over real HTTP."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

REQUESTS = [
    {"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"Describe item {i}"}]}]}} for i in range(4)
]

# The API requires a batch's display name (see tests/testing/test_emulator_fidelity.py).
NAMED = {"display_name": "emulator-sdk"}


def jsonl(lines=REQUESTS) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def client_for(emulator, **options) -> genai.Client:
    return genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.url, **options)
    )


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_sync_sdk_upload_create_get_list_download(gemini_emulator, tmp_path, api_version):
    client = client_for(gemini_emulator, api_version=api_version)
    odd = tmp_path / "a.b.jsonl"
    odd.write_bytes(jsonl())
    uploaded = client.files.upload(file=odd, config={"mime_type": "jsonl"})
    assert uploaded.name.startswith("files/")
    assert uploaded.size_bytes == len(jsonl())

    job = client.batches.create(
        model="gemini-2.5-flash", src=uploaded.name, config={"display_name": "sdk-file"}
    )
    job = client.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.display_name == "sdk-file"

    lines = [
        json.loads(line) for line in client.files.download(file=job.dest.file_name).decode().splitlines()
    ]
    assert [line["key"] for line in lines] == ["k0", "k1", "k2", "k3"]
    response = types.GenerateContentResponse.model_validate(lines[0]["response"])
    assert "Describe item 0" in response.text
    assert response.usage_metadata.total_token_count == (
        response.usage_metadata.prompt_token_count + response.usage_metadata.candidates_token_count
    )


def test_upload_from_a_stream_and_a_name_without_extension(gemini_emulator, tmp_path):
    client = client_for(gemini_emulator)
    bare = tmp_path / "requests"
    bare.write_bytes(jsonl())
    assert client.files.upload(file=bare, config={"mime_type": "jsonl"}).mime_type == "jsonl"
    streamed = client.files.upload(
        file=io.BytesIO(jsonl()), config={"mime_type": "jsonl", "display_name": "s"}
    )
    assert streamed.display_name == "s"
    assert client.files.get(name=streamed.name).size_bytes == len(jsonl())
    assert {f.name for f in client.files.list()} >= {streamed.name}
    client.files.delete(name=streamed.name)
    with pytest.raises(errors.ClientError) as info:
        client.files.get(name=streamed.name)
    assert info.value.code == 404


def test_inline_batch_keeps_keys_and_order(gemini_emulator):
    client = client_for(gemini_emulator)
    src = [
        {"contents": [{"parts": [{"text": f"question {i}"}], "role": "user"}], "metadata": {"key": f"q{i}"}}
        for i in range(3)
    ]
    job = client.batches.get(name=client.batches.create(model="gemini-2.5-flash", src=src, config=NAMED).name)
    answers = job.dest.inlined_responses
    assert [a.metadata["key"] for a in answers] == ["q0", "q1", "q2"]
    assert "question 2" in answers[2].response.text


def test_list_pages_through_every_job(gemini_emulator):
    client = client_for(gemini_emulator)
    names = {
        client.batches.create(
            model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": str(i)}]}]}], config=NAMED
        ).name
        for i in range(7)
    }
    seen = {job.name for job in client.batches.list(config={"page_size": 3})}
    assert seen == names
    assert gemini_emulator.stats()["calls"]["lists"] == 3


def test_cancel_then_delete(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    client = client_for(gemini_emulator)
    job = client.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}], config=NAMED
    )
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    with pytest.raises(errors.ClientError) as info:
        client.batches.cancel(name=job.name)
    assert info.value.status == "FAILED_PRECONDITION"
    client.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as info:
        client.batches.get(name=job.name)
    assert info.value.code == 404


# Embeddings batches, page sizes, a cancelled job's error and delete: test_emulator_fidelity.py.


async def test_async_sdk_full_cycle(gemini_emulator):
    aio = client_for(gemini_emulator).aio
    uploaded = await aio.files.upload(file=io.BytesIO(jsonl()), config={"mime_type": "jsonl"})
    job = await aio.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED)
    job = await aio.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    names = [j.name async for j in await aio.batches.list(config={"page_size": 1})]
    assert job.name in names
    data = await aio.files.download(file=job.dest.file_name)
    assert data.count(b"\n") == 4

    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    live = await aio.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}], config=NAMED
    )
    await aio.batches.cancel(name=live.name)
    assert (await aio.batches.get(name=live.name)).state == types.JobState.JOB_STATE_CANCELLED
    await aio.batches.delete(name=live.name)


def test_base_url_with_a_path_prefix(gemini_emulator):
    client = genai.Client(
        api_key=gemini_emulator.api_key,
        http_options=types.HttpOptions(base_url=f"{gemini_emulator.url}/proxy/gemini"),
    )
    uploaded = client.files.upload(file=io.BytesIO(jsonl()), config={"mime_type": "jsonl"})
    job = client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config=NAMED)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED


def test_wrong_and_missing_api_keys_get_googles_errors(gemini_emulator):
    wrong = genai.Client(api_key="not-the-key", http_options=types.HttpOptions(base_url=gemini_emulator.url))
    with pytest.raises(errors.ClientError) as info:
        list(wrong.batches.list())
    assert info.value.code == 400
    assert info.value.message == "API key not valid. Please pass a valid API key."

    missing = httpx.get(f"{gemini_emulator.url}/v1beta/batches")
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"


def test_uploaded_files_cannot_be_downloaded(gemini_emulator):
    client = client_for(gemini_emulator)
    uploaded = client.files.upload(file=io.BytesIO(jsonl()), config={"mime_type": "jsonl"})
    with pytest.raises(errors.ClientError) as info:
        client.files.download(file=uploaded.name)
    assert info.value.code == 400


def test_context_caches_through_the_sdk_and_in_a_batch(gemini_emulator, gemini_connection):
    from airflow_provider_gemini.batch.errors import GeminiApiError
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    hook = GeminiHook()
    with pytest.raises(GeminiApiError, match="too small"):
        hook.create_cached_content("gemini-2.5-flash", contents="a short note")
    name = hook.create_cached_content("gemini-2.5-flash", contents="word " * 1200, display_name="doc")
    assert gemini_emulator.stats()["live_caches"] == [name]
    assert hook.get_conn().caches.get(name=name).usage_metadata.total_token_count == 1500

    def request(cache: str) -> dict:
        return {"contents": [{"role": "user", "parts": [{"text": "What is it?"}]}], "cachedContent": cache}

    job = hook.create_batch(
        model="gemini-2.5-flash",
        inline_requests=[
            {"request": request(name), "metadata": {"key": "ok"}},
            {"request": request("cachedContents/nope"), "metadata": {"key": "bad"}},
        ],
        display_name="cache-test",
    )
    job = hook.get_batch(job.name)
    by_key = {item["metadata"]["key"]: item for item in job.inlined_responses or []}
    assert by_key["ok"]["response"]["usageMetadata"]["cachedContentTokenCount"] == 1500
    assert "CachedContent not found" in by_key["bad"]["error"]["message"]

    assert hook.delete_cached_content(name) is True
    assert hook.delete_cached_content(name) is False  # already gone: fine
    assert gemini_emulator.stats()["live_caches"] == []
