"""Loads a batch job's results into a SQL table through any common.sql connection, in one transaction.

A separate operator rather than a ``destination_table`` on the storage one: a table takes different
parameters (a key column, a load mode, a column mapping) and different guarantees (a transaction
instead of an atomic rename); the reading, counting and judging are the same code (``_results``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_gemini.batch.results import FLAT_COLUMNS, ResultRow
from airflow_provider_gemini.lineage import never_fails
from airflow_provider_gemini.transfers._results import ResultsTransfer

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

LoadMode = Literal["upsert", "update"]
MODES = ("upsert", "update")


class GeminiBatchResultsToSqlOperator(ResultsTransfer):
    """Loads a succeeded batch job's flat rows (base columns, parsed answer, joined input) into a table.

    The rows stream from the result file in blocks and are written ``chunk_rows`` at a time, in one
    transaction committed at the end: a failed or killed load leaves the table as it was, and loading
    the same job again gives the same table (idempotent), so a retry or a re-run is safe.

    Which columns are loaded: ``columns`` maps a row column to a table column; by default every row
    column that the table has, by name. The table must exist; its columns are read (``SELECT * ...
    WHERE 1 = 0``) before any result is read, so a missing table or column fails first, naming it.

    :param batch_name: the job, ``batches/...`` (templated; usually the create task's XCom).
    :param table: the table to load (templated), as the database names it (``schema.table`` works).
    :param sql_conn_id: the connection of the database (any ``DbApiHook``: PostgreSQL, SQLite, ...).
    :param key_column: the table column that identifies a row. Its value is the row column of the same
        name when there is one (a joined input field keeps its type: an integer ``id`` stays an integer),
        else the request key (text).
    :param mode: ``upsert`` (default): the rows with these keys are deleted, then inserted; ``update``:
        existing rows are updated by key (rows with no match are counted as ``not_matched``), e.g. to
        write the answers back into the table the input came from.
    :param columns: row column -> table column (a list: the same names); None: every row column the
        table has.
    :param load_failed: also load the rows of failed requests (their ``error`` column set); by default
        only answers are loaded, and failures go to the manifest and ``errors_destination``.
    :param chunk_rows: rows per ``executemany``.
    :param parse_json, response_schema, join_input, join_key, join_conn_id, errors_destination,
        errors_conn_id, max_failed_request_ratio, allow_missing, prices, gemini_conn_id: as for
        ``GeminiBatchResultsToStorageOperator``.
    """

    template_fields: Sequence[str] = ("batch_name", "table", "errors_destination", "join_input")

    def __init__(
        self,
        *,
        table: str,
        sql_conn_id: str,
        key_column: str = "key",
        mode: LoadMode = "upsert",
        columns: Mapping[str, str] | Sequence[str] | None = None,
        load_failed: bool = False,
        chunk_rows: int = 1_000,
        **kwargs: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        super().__init__(**kwargs)
        self.table = table
        self.sql_conn_id = sql_conn_id
        self.key_column = key_column
        self.mode = mode
        self.columns = dict(columns) if isinstance(columns, Mapping) else columns
        self.load_failed = load_failed
        self.chunk_rows = chunk_rows
        self._loaded_columns: list[str] = []

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_gemini._compat import BaseHook

        hook = BaseHook.get_hook(self.sql_conn_id)
        connection = hook.get_conn()
        try:
            table_columns = _table_columns(connection, self.table)  # before any result is read
            job = self._succeeded_job()
            records = self._join_records()
            loader = _Loader(
                connection,
                self.table,
                placeholder=hook.placeholder,
                mode=self.mode,
                key_column=self.key_column,
                mapping=self._mapping(table_columns, records),
            )
            pending: list[dict[str, Any]] = []

            def load(block: bytes, rows: Sequence[ResultRow], extras: Any) -> None:
                for row, fields in zip(rows, extras or [None] * len(rows), strict=True):
                    if row.error is None or self.load_failed:
                        pending.append({**row.to_record(), **(fields or {})})
                if len(pending) >= self.chunk_rows:
                    loader.load(pending)
                    pending.clear()

            builder = self._transfer(job, records, text=True, sink=load)
            loader.load(pending)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()
        self._loaded_columns = list(loader.mapping.values())
        manifest = self._finish(context, job, builder, destination=self.table)
        manifest.update(
            sql_conn_id=self.sql_conn_id, mode=self.mode, loaded=loader.loaded, not_matched=loader.not_matched
        )
        self.log.info(
            "Loaded %d rows into %s (%s by %s); %d keys matched no row",
            loader.loaded,
            self.table,
            self.mode,
            self.key_column,
            loader.not_matched,
        )
        self._judge(job, builder)
        return manifest

    def _mapping(self, table_columns: list[str], records: Any) -> dict[str, str]:
        """Row column -> table column, checked against the table's columns before anything is read."""
        known = {c.lower(): c for c in table_columns}
        if self.columns is None:
            candidates = [*FLAT_COLUMNS, *(self._known_columns(records) or [])]
            mapping = {name: known[name.lower()] for name in candidates if name.lower() in known}
        elif isinstance(self.columns, dict):
            mapping = dict(self.columns)
        else:
            mapping = {name: name for name in self.columns}
        wanted = [*mapping.values(), self.key_column]
        if missing := [name for name in wanted if name.lower() not in known]:
            raise ValueError(
                f"table {self.table} has no column {', '.join(map(repr, missing))} "
                f"(it has: {', '.join(table_columns)})"
            )
        if self.key_column.lower() not in {name.lower() for name in mapping.values()}:
            mapping[self.key_column] = self.key_column  # the key row column of that name, or the request key
        return mapping

    @never_fails
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the table, with the columns loaded (``ResultsTransfer._lineage``)."""
        from airflow_provider_gemini import lineage

        table = lineage.table_dataset(self.sql_conn_id, self.table)
        return self._lineage(table, dict.fromkeys(self._loaded_columns, ""))


class _Loader:
    """Writes chunks of row records into the table, by key, on one connection (the caller commits)."""

    def __init__(
        self,
        connection: Any,
        table: str,
        *,
        placeholder: str,
        mode: LoadMode,
        key_column: str,
        mapping: dict[str, str],
    ) -> None:
        self.connection = connection
        self.mode = mode
        self.key_source = next((row for row, col in mapping.items() if col == key_column), "key")
        self.mapping = mapping
        self.sources = [row for row, col in mapping.items() if col != key_column]
        targets = [mapping[row] for row in self.sources]
        key_match = f"{key_column} = {placeholder}"
        if mode == "update":
            assignments = ", ".join(f"{col} = {placeholder}" for col in targets)
            self.statements = [f"UPDATE {table} SET {assignments} WHERE {key_match}"]
        else:
            names = ", ".join([key_column, *targets])
            marks = ", ".join([placeholder] * (len(targets) + 1))
            self.statements = [
                f"DELETE FROM {table} WHERE {key_match}",
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
            ]
        self.loaded = self.not_matched = 0

    def load(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        keys = [record.get(self.key_source, record["key"]) for record in records]
        values = [[_sql_value(record.get(name)) for name in self.sources] for record in records]
        cursor = self.connection.cursor()
        try:
            if self.mode == "update":
                for key, row in zip(keys, values, strict=True):
                    cursor.execute(self.statements[0], [*row, key])
                    self.not_matched += cursor.rowcount == 0
                    self.loaded += cursor.rowcount > 0
            else:
                cursor.executemany(self.statements[0], [[key] for key in keys])
                cursor.executemany(
                    self.statements[1], [[key, *row] for key, row in zip(keys, values, strict=True)]
                )
                self.loaded += len(records)
        finally:
            cursor.close()


def _table_columns(connection: Any, table: str) -> list[str]:
    """The table's column names, asked of the database itself (a missing table fails here, named)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return [column[0] for column in cursor.description]
    except Exception as err:
        connection.rollback()
        raise ValueError(f"cannot read the columns of table {table}: {type(err).__name__}: {err}") from err
    finally:
        cursor.close()


def _sql_value(value: Any) -> Any:
    """A value a DB-API driver takes: nested answers (objects, lists) as JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value
