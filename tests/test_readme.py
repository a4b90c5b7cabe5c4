"""What the README promises a user who copies from it."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.airflow_helpers import dag_bag

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


def test_the_a_dag_snippet_pasted_into_a_dags_folder_registers_its_dag(tmp_path):
    section = README.read_text().split("## A DAG", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet, "the README's 'A DAG' section has no Python block"
    (tmp_path / "pasted.py").write_text(snippet.group(1))
    bag = dag_bag(str(tmp_path))
    assert bag.import_errors == {}
    assert list(bag.dag_ids) == ["describe_products"]


@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [(datetime(2026, 11, 24, tzinfo=timezone.utc), "2026-11-24"), (None, "2026-11-27")],
    ids=["scheduled", "manual without a logical date"],
)
def test_the_examples_dated_paths_render_for_scheduled_and_manual_runs(logical_date, expected):
    from airflow.sdk.definitions._internal.templater import SandboxedEnvironment

    templates = re.findall(
        r'"[^"\n]*\{\{[^"\n]*\}\}[^"\n]*"', "".join(p.read_text() for p in EXAMPLES.glob("*.py"))
    )
    dated = [t.strip('"') for t in templates if "| ds" in t]
    assert len(dated) >= 3
    dag_run = SimpleNamespace(run_after=datetime(2026, 11, 27, 6, tzinfo=timezone.utc))
    for template in dated:
        rendered = (
            SandboxedEnvironment().from_string(template).render(logical_date=logical_date, dag_run=dag_run)
        )
        assert expected in rendered, template
    assert "{{ ds }}" not in README.read_text()


@pytest.mark.parametrize(
    "operator",
    [
        "airflow_provider_gemini.operators.batch.GeminiBatchCreateOperator",
        "airflow_provider_gemini.operators.embed.GeminiBatchEmbedOperator",
        "airflow_provider_gemini.sensors.batch.GeminiBatchSensor",
        "airflow_provider_gemini.transfers.results_to_storage.GeminiBatchResultsToStorageOperator",
        "airflow_provider_gemini.transfers.results_to_sql.GeminiBatchResultsToSqlOperator",
    ],
)
def test_every_parameter_of_every_operator_is_in_its_reference_section(operator):
    import importlib

    module, name = operator.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    section = README.read_text().split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    # The class's own parameters and its bases' down to a base with a section of its own (whose
    # parameters that section documents: the embeddings operator refers to the create operator's).
    text = README.read_text()
    names: set[str] = set()
    for base in cls.__mro__:
        documented_elsewhere = base is not cls and f"### `{base.__name__}`" in text
        if documented_elsewhere or not base.__module__.startswith("airflow_provider_gemini"):
            break
        names.update(_params(base))
    missing = sorted(names - documented)
    assert not missing, f"{name}: not in the README's reference section: {missing}"


def _params(cls: type) -> list[str]:
    import inspect

    if "__init__" not in vars(cls):
        return []
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
