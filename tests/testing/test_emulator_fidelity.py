"""Where the emulator answers as Google's Gemini API does, pinned against the unmodified SDK.

Each test stands for one difference found between the emulator and the API reference (issue 12):
list page sizes, where embeddings arrive (inline and in a result file) and their dimensionality, the
error of a cancelled job, the required display name, what delete does, the embedding job's ``@type``
and inline responses' metadata. The SDK is the client throughout, over real HTTP; a raw GET reads
what the SDK drops or renames (the job's ``error``, the wire names of the output).
"""

from __future__ import annotations

import io
import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

NAMED = {"display_name": "fidelity"}
pytestmark = pytest.mark.filterwarnings(r"ignore:batches.create_embeddings\(\) is experimental")
TEXTS = ["alpha", "beta", "gamma"]


@pytest.fixture
def client(gemini_emulator) -> genai.Client:
    return genai.Client(
        api_key=gemini_emulator.api_key, http_options=types.HttpOptions(base_url=gemini_emulator.url)
    )


def wire(emulator, path: str, **params) -> httpx.Response:
    """The API's own answer to a GET, before the SDK reads it."""
    return httpx.get(
        f"{emulator.url}/v1beta/{path}", params=params, headers={"x-goog-api-key": emulator.api_key}
    )


def inline_embeddings(texts, dimensionality: int | None = None) -> dict:
    config = {"output_dimensionality": dimensionality} if dimensionality else None
    contents = [{"parts": [{"text": text}]} for text in texts]
    return {"inlined_requests": {"contents": contents, **({"config": config} if config else {})}}


# -- list page sizes ---------------------------------------------------------------------------


def test_the_file_list_pages_10_by_default_and_100_at_most(gemini_emulator, client):
    # The reference: files.list pageSize "If unspecified, defaults to 10. Maximum pageSize is 100."
    for number in range(101):
        client.files.upload(
            file=io.BytesIO(b"{}\n"), config={"mime_type": "jsonl", "display_name": f"f{number}"}
        )
    assert len(client.files.list().page) == 10
    largest = client.files.list(config={"page_size": 1000})
    assert len(largest.page) == 100
    assert len(list(largest)) == 101  # the rest follows the next-page token


def test_the_batch_list_pages_10_by_default_and_100_at_most(gemini_emulator, client):
    # The reference leaves batches.list's page size unstated; the emulator takes the file list's.
    assert gemini_emulator.add_history(101) == 101
    assert len(client.batches.list().page) == 10
    largest = client.batches.list(config={"page_size": 1000})
    assert len(largest.page) == 100
    assert len(list(largest)) == 101


# -- embeddings --------------------------------------------------------------------------------


def test_inline_embeddings_arrive_under_inlined_responses_as_an_embed_content_batch(gemini_emulator, client):
    job = client.batches.create_embeddings(
        model="gemini-embedding-001", src=inline_embeddings(TEXTS), config=NAMED
    )
    assert gemini_emulator.stats()["calls"]["embed_creates"] == 1  # asyncBatchEmbedContent
    raw = wire(gemini_emulator, job.name).json()
    # On the wire the API uses the generate-content name; the SDK renames it when it sees embeddings.
    assert list(raw["metadata"]["output"]) == ["inlinedResponses"]
    assert raw["response"]["inlinedResponses"] == raw["metadata"]["output"]["inlinedResponses"]
    answers = raw["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert [list(answer) for answer in answers] == [["response"]] * 3  # no invented metadata.key
    assert raw["metadata"]["@type"].endswith(".EmbedContentBatch")
    assert raw["response"]["@type"].endswith(".EmbedContentBatchOutput")

    got = client.batches.get(name=job.name)
    assert got.dest.inlined_responses is None
    assert [len(r.response.embedding.values) for r in got.dest.inlined_embed_content_responses] == [8] * 3


def test_a_generate_content_batch_keeps_its_own_type_and_the_metadata_it_was_given(gemini_emulator, client):
    src = [
        {"contents": [{"parts": [{"text": "keyed"}]}], "metadata": {"key": "k1", "team": "search"}},
        {"contents": [{"parts": [{"text": "bare"}]}]},
    ]
    job = client.batches.create(model="gemini-2.5-flash", src=src, config=NAMED)
    raw = wire(gemini_emulator, job.name).json()
    assert raw["metadata"]["@type"].endswith(".GenerateContentBatch")
    first, second = raw["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert first["metadata"] == {"key": "k1", "team": "search"}
    assert "metadata" not in second


@pytest.mark.parametrize("dimensionality", [3, 40, 768])
def test_inline_embeddings_have_the_requested_dimensionality(client, dimensionality):
    job = client.batches.create_embeddings(
        model="gemini-embedding-001", src=inline_embeddings(TEXTS[:1], dimensionality), config=NAMED
    )
    got = client.batches.get(name=job.name)
    [vector] = [r.response.embedding.values for r in got.dest.inlined_embed_content_responses]
    assert len(vector) == dimensionality
    assert all(-1 <= value < 1 for value in vector)


def test_file_embeddings_are_lines_of_key_and_embedding_in_the_responses_file(gemini_emulator, client):
    lines = [
        {"key": text, "request": {"content": {"parts": [{"text": text}]}, "outputDimensionality": 16}}
        for text in TEXTS
    ]
    uploaded = client.files.upload(
        file=io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode()),
        config={"mime_type": "jsonl"},
    )
    job = client.batches.create_embeddings(
        model="gemini-embedding-001", src={"file_name": uploaded.name}, config=NAMED
    )
    raw = wire(gemini_emulator, job.name).json()
    assert list(raw["metadata"]["output"]) == ["responsesFile"]
    assert raw["metadata"]["@type"].endswith(".EmbedContentBatch")

    got = client.batches.get(name=job.name)
    results = [json.loads(line) for line in client.files.download(file=got.dest.file_name).splitlines()]
    assert [result["key"] for result in results] == TEXTS
    assert [list(result) for result in results] == [["key", "response"]] * 3
    assert [len(result["response"]["embedding"]["values"]) for result in results] == [16] * 3


# -- cancel, display name, delete --------------------------------------------------------------


def test_a_cancelled_job_carries_error_code_1_cancelled(gemini_emulator, client):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    job = client.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}], config=NAMED
    )
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    raw = wire(gemini_emulator, job.name).json()  # the SDK drops a Developer API job's error
    assert raw["done"] is True
    assert (raw["error"]["code"], raw["error"]["status"]) == (1, "CANCELLED")


@pytest.mark.parametrize("config", [None, {"display_name": ""}], ids=["absent", "empty"])
def test_a_batch_without_a_display_name_is_refused_as_invalid(gemini_emulator, client, config):
    src = [{"contents": [{"parts": [{"text": "x"}]}]}]
    with pytest.raises(errors.ClientError) as generate:
        client.batches.create(model="gemini-2.5-flash", src=src, config=config)
    with pytest.raises(errors.ClientError) as embed:
        client.batches.create_embeddings(
            model="gemini-embedding-001", src=inline_embeddings(TEXTS), config=config
        )
    for refused, request in [
        (generate, "BatchGenerateContentRequest"),
        (embed, "AsyncBatchEmbedContentRequest"),
    ]:
        assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
        assert refused.value.message == f"* {request}.batch.display_name: display_name is required"
        assert refused.value.details == {
            "error": {"code": 400, "message": refused.value.message, "status": "INVALID_ARGUMENT"}
        }
    assert gemini_emulator.stats()["jobs_created"] == 0


def test_deleting_a_running_job_forgets_it_without_cancelling_it(gemini_emulator, client):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    kept = client.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "k"}]}]}], config=NAMED
    )
    job = client.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}], config=NAMED
    )
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    client.batches.delete(name=job.name)

    # The operation resource is gone for every call that names it...
    for call in (client.batches.get, client.batches.cancel, client.batches.delete):
        with pytest.raises(errors.ClientError) as gone:
            call(name=job.name)
        assert (gone.value.code, gone.value.status) == (404, "NOT_FOUND")
    assert [listed.name for listed in client.batches.list()] == [kept.name]
    assert wire(gemini_emulator, job.name).json()["error"]["status"] == "NOT_FOUND"
    # ...but its work was not cancelled: it stays among the account's live jobs until its time is up.
    assert gemini_emulator.stats()["live_jobs"] == 2
    gemini_emulator.advance(60)
    assert gemini_emulator.stats()["live_jobs"] == 0
    with pytest.raises(errors.ClientError):
        client.batches.get(name=job.name)
    assert client.batches.get(name=kept.name).state == types.JobState.JOB_STATE_SUCCEEDED
