"""Result lines to rows, prices and the manifest: pure logic on small literal inputs."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest

from airflow_provider_gemini.batch.errors import BatchJobError, ResultsFormatError
from airflow_provider_gemini.batch.manifest import ManifestBuilder
from airflow_provider_gemini.batch.pricing import estimate_cost, price_for
from airflow_provider_gemini.batch.results import (
    FLAT_COLUMNS,
    iter_rows,
    parse_inline_responses,
    parse_result_line,
    parse_structured,
    schema_columns,
    summarize_block,
)


def ok_line(key, text, **usage):
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15, **usage}
    return json.dumps(
        {
            "key": key,
            "response": {
                "candidates": [
                    {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
                ],
                "usageMetadata": usage,
            },
        }
    )


def test_success_line():
    row = parse_result_line(ok_line("k1", "hello"))
    assert (row.key, row.text, row.finish_reason) == ("k1", "hello", "STOP")
    assert (row.prompt_tokens, row.output_tokens, row.total_tokens, row.cached_tokens) == (10, 5, 15, 0)
    assert row.succeeded


@pytest.mark.parametrize("field", ["error", "status"])
def test_failed_line_in_both_spellings(field):
    line = json.dumps(
        {"key": "k2", field: {"code": 400, "message": "bad request", "status": "INVALID_ARGUMENT"}}
    )
    row = parse_result_line(line)
    assert not row.succeeded
    assert row.error == "400 INVALID_ARGUMENT: bad request"
    assert row.text is None


def test_thoughts_are_output_and_thought_parts_skipped():
    line = json.dumps(
        {
            "key": "k",
            "response": {
                "candidates": [
                    {
                        "content": {
                            "parts": [{"text": "thinking...", "thought": True}, {"text": "a"}, {"text": "b"}]
                        }
                    }
                ],
                "usage_metadata": {
                    "prompt_token_count": 3,
                    "candidates_token_count": 2,
                    "thoughts_token_count": 7,
                },
            },
        }
    )
    row = parse_result_line(line)
    assert row.text == "ab"
    assert row.output_tokens == 9
    assert row.total_tokens == 12


def test_blocked_prompt_is_a_failure():
    line = json.dumps({"key": "k", "response": {"promptFeedback": {"blockReason": "SAFETY"}}})
    assert parse_result_line(line).error == "blocked: SAFETY"


def test_unreadable_lines_are_named():
    with pytest.raises(ResultsFormatError, match="result line 2: not JSON"):
        list(iter_rows([ok_line("a", "x"), "{oops"]))
    with pytest.raises(ResultsFormatError, match="result line 1: no key"):
        list(iter_rows([json.dumps({"response": {}})]))


def test_inline_responses_take_keys_from_metadata():
    items = [
        {"response": json.loads(ok_line("x", "one"))["response"], "metadata": {"key": "a"}},
        {"error": {"code": 500, "message": "boom"}},
    ]
    rows = list(parse_inline_responses(items))
    assert [r.key for r in rows] == ["a", "request-000002"]
    assert rows[1].error == "500: boom"


def test_structured_output_becomes_columns_with_collisions_prefixed():
    row = parse_result_line(ok_line("k", '```json\n{"title": "Kettle", "key": "dup"}\n```'), parse_json=True)
    record = row.to_record(parse_json=True, extra={"title": "from input", "sku": 7})
    assert list(record)[: len(FLAT_COLUMNS)] == list(FLAT_COLUMNS)
    assert record["title"] == "Kettle"
    assert record["parsed_key"] == "dup"
    assert record["input_title"] == "from input"
    assert record["sku"] == 7


def test_parse_structured_edge_cases():
    assert parse_structured("[1, 2]") == {"items": [1, 2]}
    assert parse_structured("not json") is None
    assert parse_structured(None) is None
    assert parse_structured("3") is None


def test_schema_columns_for_both_styles():
    assert schema_columns({"type": "OBJECT", "properties": {"a": {}, "b": {}}}) == ["a", "b"]
    assert schema_columns({"type": "object", "properties": {"c": {}}}) == ["c"]
    assert schema_columns({"type": "array"}) is None
    assert schema_columns(None) is None


def test_prices_match_versioned_names_and_change_on_their_date():
    assert price_for("models/gemini-2.5-flash-001").input_per_million == 0.30
    assert price_for("gemini-2.5-flash-lite-preview").input_per_million == 0.10  # longest prefix wins
    assert price_for("gemini-3.8-flash", on=date(2026, 12, 1)).input_per_million == 0.75
    assert price_for("gemini-3.8-flash", on=date(2027, 1, 2)).input_per_million == 1.50
    assert price_for("gemini-3.1-pro-preview").output_per_million == 12.00


def test_cost_arithmetic_with_cached_tokens():
    # 1M prompt tokens of which 400k cached, 200k output, gemini-2.5-flash:
    # standard = 0.6 * 0.30 + 0.4 * 0.075 + 0.2 * 2.50 = 0.18 + 0.03 + 0.5 = 0.71; batch = 0.355
    cost = estimate_cost(
        "gemini-2.5-flash", prompt_tokens=1_000_000, output_tokens=200_000, cached_tokens=400_000
    )
    assert cost.standard_cost == pytest.approx(0.71)
    assert cost.batch_cost == pytest.approx(0.355)
    assert cost.savings == pytest.approx(0.355)
    assert cost.note is None


def test_unknown_model_has_no_cost_and_says_why():
    cost = estimate_cost("my-tuned-model", prompt_tokens=10, output_tokens=10)
    assert cost.batch_cost is None
    assert "my-tuned-model" in cost.note
    overridden = estimate_cost(
        "my-tuned-model",
        prompt_tokens=1_000_000,
        output_tokens=0,
        prices={"my-tuned": {"input_per_million": 2.0, "output_per_million": 4.0}},
    )
    assert overridden.standard_cost == pytest.approx(2.0)


def test_manifest_accounts_for_every_key():
    builder = ManifestBuilder(model="gemini-2.5-flash", expected_keys=["a", "b", "c", "d"])
    for line in [
        ok_line("a", "x"),
        ok_line("b", "y"),
        ok_line("b", "y"),
        json.dumps({"key": "z", "error": {"code": 400}}),
    ]:
        builder.add(parse_result_line(line))
    manifest = builder.build(destination="s3://b/out.parquet", batch_name="batches/1", bytes_written=123)
    assert manifest["rows"] == 3
    assert manifest["succeeded"] == 2
    assert manifest["failed"] == 1
    assert manifest["missing"] == 2
    assert manifest["missing_keys_sample"] == ["c", "d"]
    assert manifest["unexpected"] == 1
    assert manifest["duplicates"] == 1
    assert manifest["tokens"] == {"prompt": 20, "output": 10, "cached": 0, "total": 30}
    assert manifest["cost"]["batch"] == pytest.approx(manifest["cost"]["standard"] / 2, abs=1e-6)
    with pytest.raises(BatchJobError, match="2 of 4 requests have no result \\(first: c, d\\)"):
        builder.check(1.0)


def test_manifest_threshold_message_has_the_counts():
    builder = ManifestBuilder(model=None)
    builder.add(parse_result_line(ok_line("a", "x")))
    builder.add(parse_result_line(json.dumps({"key": "b", "error": {"code": 400}})))
    with pytest.raises(BatchJobError, match=r"1 of 2 requests failed \(50.0%\)"):
        builder.check(0.0)
    builder.check(0.5)


def test_rows_stream_lazily():
    produced = []

    def lines():
        for i in range(100_000):
            produced.append(i)
            yield ok_line(f"k{i}", "t")

    rows = iter_rows(lines())
    next(rows)
    assert len(produced) == 1


def test_block_summary_matches_a_full_parse(scanner):
    lines = [
        ok_line("a", "x"),
        json.dumps({"key": "b", "error": {"code": 400, "message": "no"}}),
        ok_line("c", "y"),
    ]
    block = ("\n".join(lines) + "\n").encode()
    summary = summarize_block(block)
    full = [parse_result_line(line) for line in lines]
    assert summary.succeeded == sum(r.succeeded for r in full)
    assert [parse_result_line(f).key for f in summary.failed_lines] == ["b"]
    assert summary.prompt_tokens == sum(r.prompt_tokens for r in full)
    assert summary.total_tokens == sum(r.total_tokens for r in full)
    blocked = json.dumps({"key": "d", "response": {"promptFeedback": {"blockReason": "SAFETY"}}})
    summary = summarize_block((blocked + "\n").encode())
    assert (summary.succeeded, summary.failed_lines) == (0, [blocked.encode()])  # parsed in full instead


def _varied_lines(count: int) -> list[str]:
    """Result lines as the API writes them: nested token details, thoughts, cached tokens, quoted key
    names inside the generated text, compact and spaced JSON, a failed request."""
    rng = random.Random(7)
    lines = []
    for n in range(count):
        prompt, output = rng.randint(1, 9_999_999), rng.randint(0, 50_000)
        usage: dict = {"promptTokenCount": prompt, "candidatesTokenCount": output}
        if n % 3 == 0:
            usage["thoughtsTokenCount"] = rng.randint(1, 900)
        if n % 4 == 0:
            usage["cachedContentTokenCount"] = rng.randint(1, prompt)
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        usage["totalTokenCount"] = prompt + output + usage.get("thoughtsTokenCount", 0)
        text = 'He said "totalTokenCount": 999999 and Tokens\\ TokenCount" T' if n % 5 == 0 else "ok"
        if n % 7 == 0:  # the bytes the scan looks for first, in text, some several to a word
            text += ' TTTT[[[[ T[T[ candidates": [TokenCount": 5 ' * rng.randint(1, 3)
        response = {"candidates": [{"content": {"parts": [{"text": text}]}}], "usageMetadata": usage}
        line = {"key": f"k{n}", "response": response}
        if n % 17 == 0:
            line = {"key": f"k{n}", "error": {"code": 400, "message": "bad"}}
        lines.append(json.dumps(line, separators=(",", ":") if n % 2 else (", ", ": ")))
    return lines


@pytest.fixture(params=["numpy", "no numpy"])
def scanner(request, monkeypatch) -> str:
    """Each way of counting: the NumPy scan, and byte searches where NumPy is not installed."""
    from airflow_provider_gemini.batch import _block_scan

    _block_scan.preload_numpy()
    assert _block_scan._numpy_loaded.wait(30)
    if request.param == "no numpy":
        monkeypatch.setattr(_block_scan, "_numpy", None)
    return str(request.param)


def test_block_token_sums_match_a_full_parse_of_varied_lines(scanner):
    from airflow_provider_gemini.batch._block_scan import scan_block

    lines = _varied_lines(500)
    assert (scan_block(("\n".join(lines) + "\n").encode()) is None) == (scanner == "no numpy")
    summary = summarize_block(("\n".join(lines) + "\n").encode())
    full = [parse_result_line(line) for line in lines]
    assert summary is not None
    assert summary.succeeded == sum(r.succeeded for r in full) == 470
    assert summary.prompt_tokens == sum(r.prompt_tokens for r in full if r.succeeded)
    assert summary.output_tokens == sum(r.output_tokens for r in full if r.succeeded)
    assert summary.cached_tokens == sum(r.cached_tokens for r in full if r.succeeded)
    assert summary.total_tokens == sum(r.total_tokens for r in full if r.succeeded)


def test_rare_byte_positions_are_all_found_however_crowded():
    from airflow_provider_gemini.batch import _block_scan

    _block_scan.preload_numpy()
    assert _block_scan._numpy_loaded.wait(30)
    np = _block_scan._numpy
    rng = random.Random(3)
    text = bytes(rng.choice(b"xT[ ") for _ in range(4096))  # dense: most words hold several
    data = np.frombuffer(text, dtype=np.uint8)
    for byte in b"T[":
        found = _block_scan._positions(np, data, np.empty(len(data), dtype=bool), byte)
        expected = np.flatnonzero(data == byte)
        assert sorted(found.tolist()) == expected[expected >= _block_scan._BEFORE].tolist()


def test_an_odd_token_count_falls_back_to_the_exact_count():
    from airflow_provider_gemini.batch import _block_scan
    from airflow_provider_gemini.batch._block_scan import scan_block

    _block_scan.preload_numpy()
    assert _block_scan._numpy_loaded.wait(30)

    quoted = b'{"key": "a", "response": {"candidates": [{"content": {"parts": [{"text": "x"}]}}], '
    quoted += b'"usageMetadata": {"totalTokenCount": "12"}}}\n'
    assert scan_block(quoted) is None  # a quoted number: not what the fast scan reads
    assert scan_block(quoted.replace(b'"12"', b"null")) is None
    assert scan_block(quoted.replace(b' "12"', b"7")).tokens["totalTokenCount"] == 7  # compact is fine
    assert summarize_block(quoted).total_tokens == 12  # counted the exact way instead


def test_blocked_and_empty_answers_are_parsed_and_their_tokens_counted_once(scanner):
    lines = _varied_lines(40)
    usage = {"promptTokenCount": 11, "totalTokenCount": 11}
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
    lines[3] = json.dumps({"key": "blocked", "response": blocked})
    lines[5] = json.dumps({"key": "empty", "response": {"candidates": [], "usageMetadata": usage}})
    summary = summarize_block(("\n".join(lines) + "\n").encode())
    rows = [parse_result_line(line) for line in summary.failed_lines]
    assert {"blocked", "empty"} <= {row.key for row in rows}
    full = [parse_result_line(line) for line in lines]
    assert summary.succeeded == sum(r.succeeded for r in full)
    assert summary.prompt_tokens + sum(r.prompt_tokens for r in rows) == sum(r.prompt_tokens for r in full)
    assert summary.total_tokens + sum(r.total_tokens for r in rows) == sum(r.total_tokens for r in full)
