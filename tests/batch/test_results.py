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
    decode_block,
    iter_rows,
    parse_inline_responses,
    parse_result_line,
    parse_structured,
    schema_columns,
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


def _varied_lines(count: int) -> list[str]:
    """Result lines as the API writes them: nested token details, thoughts, cached tokens, quoted key
    names inside the generated text, compact and spaced JSON, failed, empty and blocked answers."""
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
        text = 'He said "totalTokenCount": 999999 and "candidates": [] T' if n % 5 == 0 else "ok"
        response: dict = {"candidates": [{"content": {"parts": [{"text": text}]}}], "usageMetadata": usage}
        if n % 11 == 0:
            response["candidates"] = []
        if n % 13 == 0:
            response = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
        line = {"key": f"k{n}", "response": response}
        if n % 17 == 0:
            line = {"key": f"k{n}", "error": {"code": 400, "message": "bad"}}
        lines.append(json.dumps(line, separators=(",", ":") if n % 2 else (", ", ": ")))
    return lines


@pytest.mark.parametrize("text", [True, False])
def test_a_block_counts_exactly_as_line_by_line(text):
    lines = _varied_lines(500)
    block = ("\n".join(lines[:250]) + "\n\n" + "\n".join(lines[250:]) + "\n").encode()  # a blank line too
    rows = decode_block(block, text=text)
    full = [parse_result_line(line) for line in lines]
    assert [r.key for r in rows] == [r.key for r in full]
    assert [r.error for r in rows] == [r.error for r in full]
    assert [r.total_tokens for r in rows] == [r.total_tokens for r in full]
    assert [r.output_tokens for r in rows] == [r.output_tokens for r in full]
    assert [r.cached_tokens for r in rows] == [r.cached_tokens for r in full]
    assert [r.text for r in rows] == ([r.text for r in full] if text else [None] * 500)
    failed = [r for r in full if not r.succeeded]
    assert {r.error for r in failed} == {"blocked: no candidates", "blocked: SAFETY", "400: bad"}
    assert sum(r.succeeded for r in rows) == 500 - len(failed)


def test_blocked_and_empty_answers_keep_their_tokens_once():
    usage = {"promptTokenCount": 11, "totalTokenCount": 11}
    blocked = json.dumps(
        {"key": "b", "response": {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}}
    )
    empty = '{"key": "e", "response": {"candidates": [ ], "usageMetadata": {"promptTokenCount": 11}}}'
    rows = decode_block(f"{blocked}\n{empty}\n".encode(), text=False)
    assert [(r.error, r.prompt_tokens, r.total_tokens) for r in rows] == [
        ("blocked: SAFETY", 11, 11),
        ("blocked: no candidates", 11, 11),
    ]


def test_token_counts_written_as_strings_are_read():
    line = '{"key": "a", "response": {"candidates": [{}], "usageMetadata": {"totalTokenCount": "12"}}}'
    assert parse_result_line(line).total_tokens == 12
    assert decode_block(line.encode() + b"\n")[0].total_tokens == 12


def test_an_unreadable_line_in_a_block_is_named_by_its_number_in_the_file():
    block = (ok_line("a", "x") + "\n\n" + ok_line("b", "y") + "\n<html>busy</html>\n").encode()
    with pytest.raises(ResultsFormatError, match="result line 14: not JSON"):
        decode_block(block, first_line=11)
    with pytest.raises(ResultsFormatError, match="result line 12: no key"):
        decode_block(b'{"key": "a"}\n{"response": {}}\n', first_line=11)
    with pytest.raises(ResultsFormatError, match="result line 1: not a result line"):
        decode_block(b'{"key": "a", "response": {"candidates": 3}}\n')
