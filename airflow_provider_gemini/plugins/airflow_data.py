"""What the batches page reads from Airflow's metadata database: the create task instances whose
identities name jobs, the results operator's manifests, and the Gemini connections' ids.

Imported only by the page's app, inside the api-server, so Airflow's models are fair game here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_gemini.plugins.rows import Manifest, TaskInstanceRef

# The create operator and its subclasses (the embeddings operator, a user's own Gemini* subclass) name
# their jobs the same way; hashing a few other Gemini tasks too costs microseconds and matches nothing.
CREATE_OPERATOR_PATTERN = "Gemini%"
RESULTS_OPERATORS = ("GeminiBatchResultsToStorageOperator", "GeminiBatchResultsToSqlOperator")
# Jobs are kept by the API for weeks, not forever: older create tasks cannot name a listed job.
LOOKBACK = timedelta(days=60)


def create_task_instances(lookback: timedelta = LOOKBACK) -> list[TaskInstanceRef]:
    """Task instances of our operators started in the lookback (or not started yet)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import or_, select

    since = datetime.now(timezone.utc) - lookback
    query = select(TI.dag_id, TI.task_id, TI.run_id, TI.map_index).where(
        TI.operator.like(CREATE_OPERATOR_PATTERN), or_(TI.start_date >= since, TI.start_date.is_(None))
    )
    with create_session() as session:
        return [TaskInstanceRef(*row) for row in session.execute(query)]


def manifests(lookback: timedelta = LOOKBACK) -> list[Manifest]:
    """The return values of the results operator's task instances written in the lookback."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import and_, select

    since = datetime.now(timezone.utc) - lookback
    query = (
        select(XComModel.dag_id, XComModel.task_id, XComModel.run_id, XComModel.map_index)
        .add_columns(XComModel.timestamp, XComModel.value)
        .join(
            TI,
            and_(
                TI.dag_id == XComModel.dag_id,
                TI.task_id == XComModel.task_id,
                TI.run_id == XComModel.run_id,
                TI.map_index == XComModel.map_index,
            ),
        )
        .where(
            XComModel.key == "return_value",
            XComModel.timestamp >= since,
            TI.operator.in_(RESULTS_OPERATORS),
        )
    )
    found = []
    with create_session() as session:
        for dag_id, task_id, run_id, map_index, written, raw in session.execute(query):
            value = _decoded(raw)
            if isinstance(value, dict):
                ref = TaskInstanceRef(dag_id, task_id, run_id, map_index)
                found.append(Manifest(ref, written.timestamp(), value))
    return found


def _decoded(raw: Any) -> Any:
    """XCom values are JSON text inside a JSON column: one or two decodes, depending on the backend."""
    for _ in range(2):
        if not isinstance(raw, (str, bytes)):
            return raw
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw


def gemini_connection_ids() -> list[str]:
    """Ids of the Gemini connections in the database and in ``AIRFLOW_CONN_*`` variables (other
    secrets backends cannot be listed; their ids can be typed in)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ids = set(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "gemini")))
    ids.update(_env_gemini_ids(os.environ.items()))
    return sorted(ids)


def _env_gemini_ids(environ: Iterable[tuple[str, str]]) -> set[str]:
    ids = set()
    for name, value in environ:
        if not name.startswith("AIRFLOW_CONN_"):
            continue
        if value.lstrip().startswith("{"):
            try:
                kind = str(json.loads(value).get("conn_type", ""))
            except (ValueError, AttributeError):
                continue
        else:
            kind = value.split("://", 1)[0] if "://" in value else ""
        if kind == "gemini":
            ids.add(name.removeprefix("AIRFLOW_CONN_").lower())
    return ids
