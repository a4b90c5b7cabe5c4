"""Validation before money: every bad input is named by source, line and reason."""

from __future__ import annotations

import io
import json

import pytest

from airflow_provider_gemini.batch import inputs
from airflow_provider_gemini.batch.errors import BatchInputError
from airflow_provider_gemini.batch.inputs import (
    RequestOptions,
    prepare_from_file,
    prepare_from_records,
    prepare_from_requests,
)


def line(key, text="hello", **request):
    return json.dumps(
        {"key": key, "request": {"contents": [{"parts": [{"text": text}]}], **request}}
    ).encode()


def prepare(lines, tmp_path, **kwargs):
    """The lines as a file (no newline after the last) read in blocks."""
    return prepare_from_file(io.BytesIO(b"\n".join(lines)), source="in.jsonl", workdir=tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([line("a"), b'{"key": "b", "request": {'], "in.jsonl, line 2: invalid JSON"),
        ([line("a"), b"[1, 2]"], "in.jsonl, line 2: a line must be a JSON object, not list"),
        ([b'{"request": {"contents": [{"parts": [{"text": "x"}]}]}}'], 'in.jsonl, line 1: missing "key"'),
        ([line("")], 'line 1: "key" must be a non-empty string or an integer'),
        ([line("a"), line("b"), line("a")], 'line 3: duplicate key "a" (first seen on line 1)'),
        ([b'{"key": "a"}'], 'line 1: missing "request"'),
        ([b'{"key": "a", "request": {}}'], 'line 1: request has no "contents"'),
        ([b'{"key": "a", "request": {"contents": []}}'], 'line 1: "contents" is empty'),
        ([b'{"key": "a", "request": {"contents": [{}]}}'], 'line 1: contents[1] has no "parts"'),
        ([b'{"key": "a", "request": "hi"}'], 'line 1: "request" must be an object, not str'),
        (
            [line("a"), b'{"key": "b", "request": {"contents": [{"parts": [{"text": "caf\xe9"}]}]}}'],
            "line 2: not valid UTF-8 (byte 0xe9",
        ),
        ([], "in.jsonl: no requests: the input is empty"),
        ([b"\n", b"  \r\n"], "no requests"),
    ],
    ids=[
        "bad_json",
        "not_object",
        "missing_key",
        "empty_key",
        "duplicate_key",
        "missing_request",
        "missing_contents",
        "empty_contents",
        "no_parts",
        "request_not_object",
        "not_utf8",
        "empty",
        "blank_lines",
    ],
)
@pytest.mark.parametrize("block_bytes", [inputs.BLOCK_BYTES, 16], ids=["one_block", "tiny_blocks"])
def test_bad_lines_are_named(tmp_path, lines, expected, block_bytes):
    with pytest.raises(BatchInputError) as info:
        prepare(lines, tmp_path, block_bytes=block_bytes)
    assert expected in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the partial file is removed


def test_a_bad_line_deep_in_a_block_of_good_ones_is_named(tmp_path):
    lines = [line(f"k{i}") for i in range(3000)]
    lines[2499] = line("k7")
    with pytest.raises(BatchInputError, match=r'line 2500: duplicate key "k7" \(first seen on line 8\)'):
        prepare(lines, tmp_path)
    lines[2499] = b'{"key": "k2499", "request": {"contents": [{"parts": []}]}}'
    with pytest.raises(BatchInputError, match=r'line 2500: contents\[1\] has no "parts"'):
        prepare(lines, tmp_path, block_bytes=50_000)


def test_a_repeat_after_blank_lines_is_named_by_its_line_in_the_input(tmp_path):
    lines = [b"", line("a"), b"  ", line("b"), b"", line("c"), line("b")]
    with pytest.raises(BatchInputError, match=r'line 7: duplicate key "b" \(first seen on line 4\)'):
        prepare(lines, tmp_path)


def test_keys_are_checked_in_a_few_bytes_each_and_only_real_repeats_count():
    index = inputs._KeyIndex()
    index.add(f"row-{i}" for i in range(100_000))
    assert index.repeated_hashes() == set()
    assert sum(len(bucket) * bucket.itemsize for bucket in index._buckets) == 800_000
    index.add(["row-17", "row-99999"])
    assert index.repeated_hashes() == {hash("row-17"), hash("row-99999")}


def test_a_suspect_hash_without_a_repeated_key_passes(tmp_path):
    prepared = prepare([line("a"), line("b")], tmp_path)
    writer = inputs._Writer(tmp_path, "in.jsonl")
    try:
        writer.path = prepared.path
        writer._raise_first_repeat({hash("a"), hash("b")})  # each key once: no error
    finally:
        writer.discard()


def test_final_lines_are_kept_byte_for_byte_however_the_file_is_cut(tmp_path):
    lines = [line(f"k{i}", text=f"caf\u00e9 {i}") for i in range(500)]
    data = b"\n".join(lines) + b"\n"
    whole = prepare(lines, tmp_path)
    cut = prepare(lines, tmp_path, block_bytes=333)
    with_crlf = prepare([lines[0] + b"\r", *lines[1:]], tmp_path)  # a block read line by line
    with open(whole.path, "rb") as written:
        assert written.read() == data
    assert whole.fingerprint == cut.fingerprint == with_crlf.fingerprint
    assert whole.request_count == cut.request_count == 500


def test_a_block_of_final_lines_is_checked_in_one_decode(tmp_path, monkeypatch):
    def one_by_one(*args):
        raise AssertionError("a line was taken on its own")

    monkeypatch.setattr(inputs, "_add_line", one_by_one)
    assert prepare([line(f"k{i}") for i in range(100)], tmp_path).request_count == 100
    with pytest.raises(AssertionError, match="on its own"):
        prepare([line("k1"), b'{"key": 1, "request": {"contents": [{"parts": [{"text": "x"}]}]}}'], tmp_path)


@pytest.mark.parametrize("slice_bytes", [1, 2, 3, 5, 16 * 1024])
def test_utf8_is_checked_across_slice_boundaries(slice_bytes):
    text = "caf\u00e9 \u6771\u4eac \U0001f69a ok".encode()
    assert inputs._is_utf8(text, slice_bytes)
    assert not inputs._is_utf8(text[:-4], slice_bytes)  # a character cut at the end
    assert not inputs._is_utf8(text.replace(b"\xc3", b"\xff"), slice_bytes)
    assert not inputs._is_utf8("\ud800".encode("utf-8", "surrogatepass"), slice_bytes)


def test_oversize_is_refused_as_soon_as_the_limit_is_crossed(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_FILE_BYTES", 500)
    handle = io.BytesIO(b"\n".join(line(f"k{i}") for i in range(1000)))

    with pytest.raises(BatchInputError, match=r"line 7: input is over the 0 GB batch file limit"):
        prepare_from_file(handle, source="in.jsonl", workdir=tmp_path, block_bytes=1024)
    assert handle.tell() <= 1024  # one block read, not the file


def test_normalised_output_crlf_and_integer_keys(tmp_path):
    prepared = prepare(
        [line("a") + b"\r\n", b"\n", b'{"key": 7, "request": {"contents": [{"parts": [{"text": "x"}]}]}}'],
        tmp_path,
    )
    assert prepared.request_count == 2
    assert [entry["key"] for entry in prepared.iter_lines()] == ["a", "7"]
    assert prepared.inline_requests()[1] == {
        "request": {"contents": [{"parts": [{"text": "x"}]}]},
        "metadata": {"key": "7"},
    }
    assert prepared.keys_sample == ("a", "7")
    assert prepared.fits_inline


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    first = prepare([line("a"), line("b")], tmp_path)
    second = prepare([line("a"), line("b")], tmp_path)
    changed = prepare([line("a"), line("b", text="hellO")], tmp_path)
    assert first.path != second.path
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != changed.fingerprint


def test_options_fill_in_what_requests_leave_out(tmp_path):
    options = RequestOptions(
        system_instruction="Be brief.",
        generation_config={
            "temperature": 0.2,
            "response_mime_type": "application/json",
            "response_schema": {"type": "OBJECT", "properties": {"snake_case_name": {"type": "STRING"}}},
        },
        tools=[{"google_search": {}}],
        cached_content="cachedContents/abc",
    )
    own = line("b", systemInstruction={"parts": [{"text": "mine"}]}, generation_config={"temperature": 0.9})
    entries = list(prepare([line("a"), own], tmp_path, options=options).iter_lines())
    first, second = entries[0]["request"], entries[1]["request"]
    assert first["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert first["generationConfig"]["responseMimeType"] == "application/json"
    assert (
        "snake_case_name" in first["generationConfig"]["responseSchema"]["properties"]
    )  # user data untouched
    assert first["tools"] == [{"google_search": {}}]
    assert first["cachedContent"] == "cachedContents/abc"
    assert second["systemInstruction"] == {"parts": [{"text": "mine"}]}
    assert "system_instruction" not in second
    assert second["generation_config"]["temperature"] == 0.9  # the request's own value wins
    assert second["generation_config"]["responseMimeType"] == "application/json"


def test_sdk_types_are_accepted(tmp_path):
    from google.genai import types

    options = RequestOptions(
        system_instruction=types.Content(parts=[types.Part(text="sys")]),
        generation_config=types.GenerateContentConfig(temperature=0.1, response_mime_type="application/json"),
        tools=[types.Tool(google_search=types.GoogleSearch())],
    )
    request = next(prepare([line("a")], tmp_path, options=options).iter_lines())["request"]
    assert request["systemInstruction"]["parts"][0]["text"] == "sys"
    assert request["generationConfig"] == {"temperature": 0.1, "responseMimeType": "application/json"}
    assert "googleSearch" in request["tools"][0]


def test_records_become_requests(tmp_path):
    records = [{"id": 1, "name": "kettle"}, {"id": 2, "name": "lamp"}]
    prepared = prepare_from_records(
        records, prompt_template="Describe {name}.", key_field="id", workdir=tmp_path
    )
    entries = list(prepared.iter_lines())
    assert [e["key"] for e in entries] == ["1", "2"]
    assert entries[1]["request"]["contents"][0]["parts"][0]["text"] == "Describe lamp."
    called = prepare_from_records(
        records, prompt_template=lambda r: r["name"].upper(), key_field="id", workdir=tmp_path
    )
    assert next(called.iter_lines())["request"]["contents"][0]["parts"][0]["text"] == "KETTLE"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([{"id": 1, "name": "a"}, {"id": 2}], "record 2 has no field 'name' used by the prompt template"),
        ([{"name": "a"}], 'record 1 has no key field "id"'),
        (
            [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}],
            'record 2: duplicate key "1" (first seen on record 1)',
        ),
        (["not a dict"], "record 1 is not a dict"),
    ],
)
def test_bad_records_are_named(tmp_path, records, expected):
    with pytest.raises(BatchInputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        prepare_from_records(records, prompt_template="Describe {name}", key_field="id", workdir=tmp_path)


def test_requests_keyed_or_not(tmp_path):
    bare = {"contents": [{"parts": [{"text": "x"}]}]}
    prepared = prepare_from_requests([bare, bare], workdir=tmp_path)
    assert [e["key"] for e in prepared.iter_lines()] == ["request-000001", "request-000002"]
    keyed = prepare_from_requests([{"key": "q", "request": bare}], workdir=tmp_path)
    assert next(keyed.iter_lines())["key"] == "q"
    with pytest.raises(BatchInputError, match='request 2: request has no "contents"'):
        prepare_from_requests([bare, {"generationConfig": {}}], workdir=tmp_path)


TICKETS = [
    {"id": 1, "subject": "Refund", "body": "It broke"},
    {"id": 2, "subject": None, "body": "No subject here", "unused": None},
]
TICKET_TEMPLATE = "Subject: {subject}\n{body}"


def prompts(prepared):
    return {e["key"]: e["request"]["contents"][0]["parts"][0]["text"] for e in prepared.iter_lines()}


def test_a_null_prompt_field_fails_by_default_naming_the_record_and_field(tmp_path):
    with pytest.raises(
        BatchInputError, match='record 2: field "subject" is null; the prompt would say "None"'
    ):
        prepare_from_records(TICKETS, prompt_template=TICKET_TEMPLATE, key_field="id", workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_null_policies_leave_the_record_out_or_fill_the_field(tmp_path):
    skipped = prepare_from_records(
        TICKETS, prompt_template=TICKET_TEMPLATE, key_field="id", workdir=tmp_path, null_policy="skip_row"
    )
    assert (prompts(skipped), skipped.null_records) == ({"1": "Subject: Refund\nIt broke"}, 1)
    filled = prepare_from_records(
        TICKETS, prompt_template=TICKET_TEMPLATE, key_field="id", workdir=tmp_path, null_policy="empty"
    )
    assert prompts(filled)["2"] == "Subject: \nNo subject here"
    assert filled.null_records == 1
    # A null in a field the template does not read is no one's business.
    unused = [{"id": 1, "subject": "s", "body": "b", "unused": None}]
    assert prepare_from_records(unused, prompt_template=TICKET_TEMPLATE, key_field="id", workdir=tmp_path)


def test_every_record_left_out_is_an_empty_input(tmp_path):
    with pytest.raises(inputs.EmptyInputError, match="no requests"):
        prepare_from_records(
            TICKETS[1:],
            prompt_template=TICKET_TEMPLATE,
            key_field="id",
            workdir=tmp_path,
            null_policy="skip_row",
        )


@pytest.mark.parametrize(
    ("template", "fields"),
    [("{a} and {b.c} and {d[0]} and {a}", ("a", "b", "d")), ("{{literal}} {x!r:>10}", ("x",)), ("none", ())],
)
def test_template_fields_are_the_record_fields_it_reads(template, fields):
    assert inputs.template_fields(template) == fields
