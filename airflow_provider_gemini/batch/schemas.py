"""Checking a response schema before it is paid for.

An invalid schema (``"type": "STRNG"``, ``"enum": "low,medium,high"``, ``required`` naming a property
that does not exist) would otherwise be found by the API after the upload, or give free text and
missing columns in a run that looks green. Gemini's own schema (``response_schema``) is checked
against its rules; a JSON Schema (``response_json_schema``) against its meta-schema.
"""

from __future__ import annotations

from typing import Any

TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")


def response_schema_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with the schema in a generation config (camelCase keys), or None."""
    schema = _get(config, "responseSchema", "response_schema")
    if schema is not None:
        return _gemini_problem(schema, "response_schema")
    json_schema = _get(config, "responseJsonSchema", "response_json_schema")
    if json_schema is not None:
        return _json_schema_problem(json_schema)
    return None


def _get(schema: dict[str, Any], *names: str) -> Any:
    return next((schema[name] for name in names if name in schema), None)


def _gemini_problem(schema: Any, path: str) -> str | None:
    if not isinstance(schema, dict):
        return f"{path} must be an object, not {type(schema).__name__}"
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in TYPES):
        return f"{path}.type {kind!r} is not a type; use one of {', '.join(TYPES)}"
    enum = schema.get("enum")
    if enum is not None and not (isinstance(enum, list) and all(isinstance(v, str) for v in enum)):
        return f"{path}.enum must be a list of strings, not {enum!r}"
    properties = schema.get("properties")
    if properties is not None and not isinstance(properties, dict):
        return f"{path}.properties must be an object mapping names to schemas"
    properties = properties or {}
    if str(kind).upper() == "OBJECT" and not properties:
        return f"{path}.properties must not be empty for an OBJECT"
    if str(kind).upper() == "ARRAY" and "items" not in schema:
        return f"{path}.items is missing: an ARRAY says what its items are"
    for key in ("required", "propertyOrdering", "property_ordering"):
        names = schema.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            return f"{path}.{key} must be a list of property names, not {names!r}"
        if problem := _unknown_name(f"{path}.{key}", names, properties):
            return problem
    children = [(f"{path}.properties.{name}", sub) for name, sub in properties.items()]
    if "items" in schema:
        children.append((f"{path}.items", schema["items"]))
    any_of = _get(schema, "anyOf", "any_of")
    if any_of is not None:
        if not isinstance(any_of, list):
            return f"{path}.anyOf must be a list of schemas"
        children += [(f"{path}.anyOf[{i}]", sub) for i, sub in enumerate(any_of)]
    return next((p for child, sub in children if (p := _gemini_problem(sub, child))), None)


def _json_schema_problem(schema: Any) -> str | None:
    from jsonschema import exceptions, validators  # Airflow's own dependency

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as err:
        where = "/".join(str(p) for p in err.path)
        return f"response_json_schema is not a valid JSON Schema: {err.message}" + (
            f" (at {where})" if where else ""
        )
    return _required_problem(schema, "response_json_schema")


def _required_problem(schema: Any, path: str) -> str | None:
    """A JSON Schema whose ``required`` names a property it does not define (valid, but a mistake)."""
    if not isinstance(schema, dict):
        return None
    children: list[tuple[str, Any]] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        if problem := _unknown_name(f"{path}.required", schema.get("required"), properties):
            return problem
        children = [(f"{path}.properties.{n}", s) for n, s in properties.items()]
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            children.append((f"{path}.{key}", schema[key]))
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            children += [(f"{path}.{key}[{i}]", s) for i, s in enumerate(schema[key])]
    return next((p for child, sub in children if (p := _required_problem(sub, child))), None)


def _unknown_name(where: str, names: Any, properties: dict[str, Any]) -> str | None:
    """The first of ``names`` (``required``, ``propertyOrdering``) that is not a property, as a problem."""
    missing = [n for n in names if n not in properties] if isinstance(names, list) else []
    return f"{where} names {missing[0]!r}, which is not among its properties" if missing else None
