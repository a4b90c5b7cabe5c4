"""OpenLineage for the provider's operators: the datasets a task read and wrote, named by the
OpenLineage naming spec, and a ``geminiBatch`` run facet with the model, the job and its spend.

The OpenLineage provider is optional (the ``openlineage`` extra): it is imported only inside these
functions, and lineage never fails a task: any error here is logged and an empty lineage returned.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)
FACET_NAME = "geminiBatch"
FACET_SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-provider-gemini/airflow-provider-gemini/main/"
    "airflow_provider_gemini/lineage/GeminiBatchRunFacet.json"
)


def never_fails(build: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``get_openlineage_facets_on_*`` method: any error is logged, and no lineage returned."""

    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return build(*args, **kwargs)
        except ImportError:  # the OpenLineage provider is not installed: no lineage, quietly
            log.debug("No OpenLineage provider: Gemini batch lineage not built", exc_info=True)
            return None
        except Exception:
            log.warning("Gemini batch lineage could not be built; the task is not affected", exc_info=True)
            try:
                from airflow.providers.openlineage.extractors import OperatorLineage

                return OperatorLineage()
            except ImportError:
                return None

    return wrapper


@functools.cache
def _run_facet_class() -> type:
    from attr import define
    from openlineage.client.facet_v2 import RunFacet

    @define
    class GeminiBatchRunFacet(RunFacet):
        """What a Gemini batch run was and cost; its schema ships in this package."""

        model: str | None = None
        batchName: str | None = None
        state: str | None = None
        requestCount: int | None = None
        succeeded: int | None = None
        failed: int | None = None
        reattached: bool | None = None
        tokens: dict[str, int] | None = None
        cost: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return GeminiBatchRunFacet


def run_facet(**fields: Any) -> Any:
    """The ``geminiBatch`` run facet, with the fields that are known."""
    return _run_facet_class()(**{k: v for k, v in fields.items() if v is not None})


def path_dataset(path: Any, conn_id: str | None = None) -> Any:
    """An object-storage path as an OpenLineage dataset: ``file`` and the absolute path for a local
    file; ``<scheme>://<bucket>`` and the key for object storage (``s3://``, ``gs://`` ...)."""
    from airflow_provider_gemini.storage import storage_path

    where = storage_path(path, conn_id)
    protocol = (where.protocol if isinstance(where.protocol, str) else where.protocol[0]) or "file"
    if protocol in ("file", "local"):
        return _dataset("file", str(where.path if where.path.startswith("/") else f"/{where.path}"))
    bucket, _, key = str(where.path).partition("/")
    return _dataset(f"{protocol}://{bucket}", key)


def sql_datasets(conn_id: str, sql: str) -> list[Any]:
    """The tables a query reads. Databases whose hook tells OpenLineage about itself (PostgreSQL,
    MySQL, Snowflake ...) are named by the OpenLineage provider's SQL parser, with their schema facets;
    for the others (SQLite) the query is parsed here and the tables named after the connection."""
    from airflow.providers.openlineage.sqlparser import SQLParser, get_openlineage_facets_with_sql

    hook, connection = _sql_hook(conn_id)
    lineage = get_openlineage_facets_with_sql(hook=hook, sql=sql, conn_id=conn_id, database=None)
    if lineage is not None:
        return list(lineage.inputs)
    dialect = "sqlite" if connection.conn_type == "sqlite" else "generic"
    parsed = SQLParser(dialect=dialect, default_schema=_default_schema(connection)).parse(sql)
    if parsed is None:
        return []
    namespace = _namespace(connection)
    return [_dataset(namespace, table.qualified_name) for table in parsed.in_tables]


def table_dataset(conn_id: str, table: str) -> Any:
    """A table of a connection's database, named as the OpenLineage provider names the tables its
    parser finds (``<scheme>://<host>:<port>`` and ``database.schema.table``)."""
    from airflow.providers.openlineage.sqlparser import SQLParser

    hook, connection = _sql_hook(conn_id)
    try:
        info = hook.get_openlineage_database_info(connection)
    except AttributeError:
        info = None
    parts = table.split(".")
    if info is None:
        schema = _default_schema(connection)
        return _dataset(_namespace(connection), ".".join([schema, *parts] if len(parts) == 1 else parts))
    if len(parts) == 1:
        parts = [hook.get_openlineage_default_schema() or "public", *parts]
    if len(parts) == 2 and info.database:
        parts = [info.database, *parts]
    return _dataset(SQLParser.create_namespace(info), ".".join(parts))


def _sql_hook(conn_id: str) -> tuple[Any, Any]:
    from airflow_provider_gemini._compat import BaseHook

    hook = BaseHook.get_hook(conn_id)
    return hook, hook.get_connection(conn_id)


def _default_schema(connection: Any) -> str:
    """SQLite's schema of a database's own tables is ``main``; others name theirs."""
    return "main" if connection.conn_type == "sqlite" else (connection.schema or "public")


def _namespace(connection: Any) -> str:
    """A database without OpenLineage support of its own: its type and where it is (for SQLite, the
    database file: ``sqlite:///path/to/file.db``)."""
    port = f":{connection.port}" if connection.port else ""
    return f"{connection.conn_type}://{connection.host or ''}{port}"


def _dataset(namespace: str, name: str) -> Any:
    from openlineage.client.event_v2 import Dataset

    return Dataset(namespace=namespace, name=name)


def with_schema(dataset: Any, columns: Mapping[str, str]) -> Any:
    """``dataset`` with a schema facet of the columns written (name -> type)."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import schema_dataset

    fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t or None) for n, t in columns.items()]
    facets = {**(dataset.facets or {}), "schema": schema_dataset.SchemaDatasetFacet(fields=fields)}
    return Dataset(namespace=dataset.namespace, name=dataset.name, facets=facets)


def lineage(inputs: list[Any], outputs: list[Any], facet: Any) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={FACET_NAME: facet})
