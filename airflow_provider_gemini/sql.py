"""Rows of a SQL query as records, read in chunks through any common.sql connection.

The create operator reads its input straight from the database, so rows never travel through XCom
(a table of 100 000 rows would not fit there). PostgreSQL rows come through a server-side cursor, so
memory stays flat whatever the table's size; other databases are read with ``fetchmany`` (SQLite
streams on its own; a driver that buffers a whole result, like MySQL's default cursor, holds it once
in the driver, never in XCom).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

CHUNK_ROWS = 5_000


def sql_records(
    conn_id: str,
    sql: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[dict[str, Any]]:
    """Each row of ``sql`` as a dict of its columns, in the query's order, ``chunk_rows`` at a time."""
    from airflow_provider_gemini._compat import BaseHook

    hook = BaseHook.get_hook(conn_id)
    connection = hook.get_conn()
    try:
        cursor = _streaming_cursor(connection)
        try:
            if parameters is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, parameters)
            columns: list[str] | None = None
            while rows := cursor.fetchmany(chunk_rows):
                if columns is None:  # a server-side cursor describes its rows once it has fetched some
                    columns = [column[0] for column in cursor.description]
                for row in rows:
                    yield dict(zip(columns, row, strict=True))
        finally:
            cursor.close()
    finally:
        connection.close()


def _streaming_cursor(connection: Any) -> Any:
    """A server-side (named) cursor where the driver has one (psycopg 2 and 3), else a plain one."""
    if type(connection).__module__.split(".")[0] in ("psycopg2", "psycopg"):
        cursor = connection.cursor(name="gemini_batch_rows")
        cursor.itersize = CHUNK_ROWS
        return cursor
    return connection.cursor()
