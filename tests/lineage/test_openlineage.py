"""OpenLineage events of real task runs (``dag.test()`` with the OpenLineage provider's listener and a
file transport): the datasets named by the spec, and the ``geminiBatch`` run facet."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.example_dags.test_examples import DAY_1, EXAMPLES, catalog, run_example  # noqa: F401 (a fixture)
from tests.lifecycle.dag_sources import create_and_wait

pytest.importorskip("airflow.providers.openlineage")
pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

GOOD = b'{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'


@pytest.fixture
def lineage_events(tmp_path, monkeypatch):
    """Where the listener writes its events; reads them back as dicts."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager

    events = tmp_path / "events.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "gemini-tests")
    # (The provider's settings are read afresh on each call under pytest.)
    listener = get_openlineage_listener()
    listener.adapter._client = None  # a client for this transport
    # Plugins were loaded before this test set a transport, so the listener is registered here.
    manager = get_listener_manager()
    added = not manager.pm.is_registered(listener)
    manager.add_listener(listener)

    def read() -> list[dict]:
        return [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []

    yield read
    if added:
        manager.pm.unregister(listener)
    listener.adapter._client = None


def completed(events: list[dict], task_id: str) -> dict:
    [event] = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{task_id}")]
    return event


def test_the_create_reports_its_input_file_and_the_job_it_paid_for(gemini_emulator, tmp_path, lineage_events):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(GOOD)
    dag_run = run_dag("ol_create", create_and_wait("ol_create", create_kwargs={"input_path": str(path)}))
    assert task_states(dag_run) == {"create": "success"}
    event = completed(lineage_events(), "create")
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", str(path))]
    facet = event["run"]["facets"]["geminiBatch"]
    assert facet["model"] == "models/gemini-2.5-flash"
    assert facet["batchName"].startswith("batches/")
    assert (facet["requestCount"], facet["reattached"]) == (1, False)
    assert facet["_schemaURL"].endswith("airflow_provider_gemini/lineage/GeminiBatchRunFacet.json")


def test_lineage_never_fails_the_task_and_says_why(caplog):
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

    create = GeminiBatchCreateOperator(task_id="create", model="gemini-2.5-flash", input_path="nowhere://x/y")
    assert create.get_openlineage_facets_on_complete(None) == OperatorLineage()
    assert "Gemini batch lineage could not be built; the task is not affected" in caplog.text


def test_the_enrichment_example_names_its_source_table_destinations_and_the_manifest_s_spend(
    gemini_emulator,
    lineage_events,
    catalog,  # noqa: F811 (the fixture imported above)
):
    dag_run = run_example("gemini_batch_enrichment", DAY_1)
    assert set(task_states(dag_run).values()) == {"success"}
    manifest = xcom_values("gemini_batch_enrichment", dag_run.run_id)[("store", "return_value")]
    events = lineage_events()
    # The source: the table the create task's query read (SQLite: named after the database file).
    table = (f"sqlite://{catalog}", "main.products")
    create_event = completed(events, "create")
    assert [(d["namespace"], d["name"]) for d in create_event["inputs"]] == [table]
    # The destinations: the Parquet file with its columns, and the table the answers went back to.
    event = completed(events, "store")
    [output] = event["outputs"]
    assert (output["namespace"], output["name"]) == ("file", manifest["destination"].removeprefix("file://"))
    columns = {f["name"]: f.get("type") for f in output["facets"]["schema"]["fields"]}
    assert {"key": "string", "text": "string", "output_tokens": "integer"}.items() <= columns.items()
    assert {"headline", "tone"} <= set(columns)  # the parsed answer's columns
    [loaded] = completed(events, "load")["outputs"]
    assert (loaded["namespace"], loaded["name"]) == table
    assert [f["name"] for f in loaded["facets"]["schema"]["fields"]] == ["headline", "tone", "id"]
    facet = event["run"]["facets"]["geminiBatch"]
    cost = {k: v for k, v in manifest["cost"].items() if v is not None}  # OpenLineage leaves out nulls
    assert (facet["tokens"], facet["cost"]) == (manifest["tokens"], cost)
    assert facet["batchName"] == manifest["batch_name"]
    create = create_event["run"]["facets"]["geminiBatch"]
    assert (create["batchName"], create["reattached"]) == (manifest["batch_name"], False)


def test_without_the_openlineage_provider_the_operators_import_and_build_nothing_of_it(tmp_path):
    code = (
        "import sys\n"
        # As if it were not installed: the client and the provider's lineage modules cannot be imported
        # (its provider info stays: Airflow's provider discovery reads the installed distribution).
        "for name in ('openlineage', 'airflow.providers.openlineage.extractors',\n"
        "             'airflow.providers.openlineage.sqlparser'):\n"
        "    sys.modules[name] = None\n"
        "from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator\n"
        "import airflow_provider_gemini.transfers.results_to_storage\n"
        "op = GeminiBatchCreateOperator(task_id='c', model='gemini-2.5-flash', requests=[{'contents': []}])\n"
        "print(op.get_openlineage_facets_on_complete(None))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "None"  # no lineage, no error: the task is not affected


WITHOUT_OPENLINEAGE = """
import sys
# As if the OpenLineage client and the provider's lineage modules were not installed (the provider's
# info stays: Airflow's provider discovery reads the installed distribution).
for name in ("extractors", "sqlparser"):
    sys.modules["airflow.providers.openlineage." + name] = None
sys.modules["openlineage"] = None
from airflow.__main__ import main
sys.argv = ["airflow", "dags", "test", "gemini_batch_enrichment", "2026-11-24"]
main()
"""


def test_without_the_openlineage_provider_the_enrichment_example_runs_and_imports_none_of_it(
    gemini_emulator,
    catalog,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",  # lineage wanted, but not installed
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENLINEAGE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "lineage could not be built" not in done.stdout + done.stderr  # no lineage, and no warning
    with sqlite3.connect(catalog) as db:
        assert db.execute("SELECT count(*) FROM products WHERE headline IS NOT NULL").fetchone() == (3,)
