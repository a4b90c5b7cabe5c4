"""Run a DAG through real Airflow (``dag.test()``) from source written into the session's dags folder."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

from airflow_provider_gemini._compat import AIRFLOW_VERSION
from tests.conftest import DAGS_FOLDER


def write_dag(dag_id: str, source: str) -> None:
    (DAGS_FOLDER / f"{dag_id}.py").write_text(textwrap.dedent(source))


def dag_bag(path: str) -> Any:
    """A DagBag of ``path``; the class moved to ``airflow.dag_processing`` in Airflow 3.2."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(path)


def load_dag(dag_id: str) -> Any:
    bag = dag_bag(str(DAGS_FOLDER / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found"
    return dag


def run_dag(
    dag_id: str, source: str | None = None, *, logical_date: datetime | None = None, **kwargs: Any
) -> Any:
    """Write (if given) and run a DAG with ``dag.test()``; returns the DagRun."""
    if source is not None:
        write_dag(dag_id, source)
    dag = load_dag(dag_id)
    if AIRFLOW_VERSION.release < (3, 1):
        _activate_assets(dag)
    if logical_date is not None:
        # Both dates fixed: the run id is then the same, and dag.test() clears and reruns that run.
        kwargs["logical_date"] = logical_date
        kwargs.setdefault("run_after", logical_date)
    return dag.test(**kwargs)


def _activate_assets(dag: Any) -> None:
    """Airflow 3.0's ``dag.test()`` neither records a DAG's assets nor activates them (its scheduler
    does), so a task with outlets fails on "inactive assets". Record and activate them, as a
    deployment's DAG processor and scheduler would.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.models.dag import DAG as SchedulerDAG
    from airflow.serialization.serialized_objects import SerializedDAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        scheduler_dag = SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))
        SchedulerDAG.bulk_write_to_db("dags-folder", None, [scheduler_dag], session=session)
        session.flush()
        active = {(row.name, row.uri) for row in session.execute(select(AssetActive.name, AssetActive.uri))}
        for model in session.scalars(select(AssetModel)):
            if (model.name, model.uri) not in active:
                session.add(AssetActive.for_asset(model))


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom_values(dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        return {(row.task_id, row.key): row.value for row in rows}


def rendered_fields(dag_id: str, run_id: str) -> list[Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_id, run_id=run_id).all()
        return [row.rendered_fields for row in rows]


def as_killed_by_user(trigger: Any, monkeypatch: Any, state: str | None) -> Any:
    """``trigger`` as the triggerer hands it over (its task instance set), for a task a user left in
    ``state`` (None: cleared). The state is what the triggerer's link to the API server would answer."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1)
    monkeypatch.setattr(
        RuntimeTaskInstance, "get_task_states", staticmethod(lambda **query: {"r": {"t": state}})
    )
    return trigger
