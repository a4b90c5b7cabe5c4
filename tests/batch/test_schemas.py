"""Response schemas checked before anything is paid for: Gemini's own, and JSON Schema."""

from __future__ import annotations

import re

import pytest

from airflow_provider_gemini.batch.errors import BatchInputError
from airflow_provider_gemini.batch.inputs import RequestOptions
from airflow_provider_gemini.batch.schemas import response_schema_problem

TICKET = {
    "type": "OBJECT",
    "properties": {
        "priority": {"type": "STRING", "enum": ["low", "medium", "high"]},
        "tags": {"type": "ARRAY", "items": {"type": "string"}},
        "summary": {"type": "STRING", "nullable": True},
    },
    "required": ["priority", "summary"],
    "propertyOrdering": ["priority", "tags", "summary"],
}


def with_(path: list[str], value) -> dict:
    """TICKET with one value replaced (path into nested dicts)."""
    import copy

    schema = copy.deepcopy(TICKET)
    node = schema
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return schema


def test_a_valid_gemini_schema_passes():
    assert response_schema_problem({"responseSchema": TICKET}) is None
    assert response_schema_problem({"responseMimeType": "application/json"}) is None


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            with_(["properties", "priority", "type"], "STRNG"),
            "response_schema.properties.priority.type 'STRNG' is not a type",
        ),
        (
            with_(["properties", "priority", "enum"], "low,medium,high"),
            "response_schema.properties.priority.enum must be a list of strings, not 'low,medium,high'",
        ),
        (
            with_(["required"], ["priority", "urgency"]),
            "response_schema.required names 'urgency', which is not among its properties",
        ),
        (
            with_(["properties", "tags"], {"type": "ARRAY"}),
            "response_schema.properties.tags.items is missing",
        ),
        ({"type": "OBJECT"}, "response_schema.properties must not be empty for an OBJECT"),
        ("a string", "response_schema must be an object, not str"),
        (
            with_(["properties", "tags", "items"], {"type": "TEXT"}),
            "response_schema.properties.tags.items.type 'TEXT' is not a type",
        ),
    ],
)
def test_an_invalid_gemini_schema_is_named_with_its_path(schema, problem):
    assert (response_schema_problem({"responseSchema": schema}) or "").startswith(problem)


def test_a_json_schema_is_checked_against_its_meta_schema_and_its_required_names():
    good = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert response_schema_problem({"responseJsonSchema": good}) is None
    wrong_type = {"type": "object", "properties": {"a": {"type": "strng"}}}
    assert "response_json_schema is not a valid JSON Schema" in response_schema_problem(
        {"responseJsonSchema": wrong_type}
    )
    unknown = {**good, "required": ["a", "b"]}
    assert response_schema_problem({"responseJsonSchema": unknown}) == (
        "response_json_schema.required names 'b', which is not among its properties"
    )


def test_request_options_refuse_an_invalid_schema_before_any_request_is_built():
    config = {"response_mime_type": "application/json", "response_schema": with_(["required"], ["nope"])}
    with pytest.raises(
        BatchInputError, match=re.escape("generation_config: response_schema.required names 'nope'")
    ):
        RequestOptions(generation_config=config)
    assert RequestOptions(generation_config={"response_schema": TICKET}).active
