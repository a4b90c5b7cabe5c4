"""What differs between the Airflow 3.x releases we support (3.0 through 3.3), resolved in one place.

Every other module imports these names from here, so each version branch is written once. Only
light modules are imported: DAG files import our operators on every parse.

- 3.0: no ``airflow.sdk.BaseHook`` (``airflow.hooks.base.BaseHook``) and no ``aget_connection``
  (``get_connection`` in a thread); an XCom cannot hold None (``push_fields``); a file opened
  through ``ObjectStoragePath`` cannot be iterated (``iter_lines``).
- 3.0, 3.1: ``AirflowFailException`` and friends live in ``airflow.exceptions`` only; the connection
  form comes from the hook's ``get_connection_form_widgets``, not from ``conn-fields``.
- 3.0 to 3.2: no ``BaseTrigger.on_kill`` (a job is not cancelled when its deferred task is killed)
  and no ``task_state_store`` (an earlier try's job is found by its display name alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from airflow.triggers.base import BaseTrigger
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
else:
    try:  # Airflow 3.1+
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 3.0
        from airflow.hooks.base import BaseHook as _CoreBaseHook

        class BaseHook(_CoreBaseHook):
            """Airflow 3.0's hook base, with the async connection read that 3.1 added."""

            @classmethod
            async def aget_connection(cls, conn_id: str) -> Any:
                return await asyncio.to_thread(cls.get_connection, conn_id)

    try:  # Airflow 3.2+
        from airflow.sdk.exceptions import (
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
        )
    except ImportError:  # Airflow 3.0 and 3.1: the task runner catches these very classes
        from airflow.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)

__all__ = [
    "AIRFLOW_VERSION",
    "HAS_TASK_STATE_STORE",
    "HAS_TRIGGER_ON_KILL",
    "XCOM_ACCEPTS_NONE",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "connection_form_widgets",
    "iter_lines",
    "push_fields",
    "task_state_store",
    "ui_field_behaviour",
]

# Airflow 3.3+: the triggerer calls a trigger's on_kill when a user kills its deferred task. Before, a
# killed task's trigger is only cancelled, exactly as when the triggerer moves or stops it, so nothing
# tells a kill apart and the job is left running.
HAS_TRIGGER_ON_KILL = "on_kill" in vars(BaseTrigger)

# Airflow 3.3+: the task context carries ``task_state_store``, a key-value store that survives retries.
HAS_TASK_STATE_STORE = Version("3.3.0") <= AIRFLOW_VERSION

# Airflow 3.1+: an XCom may hold None. Airflow 3.0's task API client sends None as no body at all, which
# its API server refuses, failing the task.
XCOM_ACCEPTS_NONE = Version("3.1.0") <= AIRFLOW_VERSION


def push_fields(context: Any, result: dict[str, Any]) -> None:
    """Push each field of ``result`` as its own XCom, as ``multiple_outputs`` does, leaving out the Nones.

    Used on Airflow 3.0 only (see ``XCOM_ACCEPTS_NONE``); the whole result still goes to ``return_value``.
    """
    ti = context["ti"]
    for key, value in result.items():
        if value is not None:
            ti.xcom_push(key=key, value=value)


def task_state_store(context: Any) -> Any | None:
    """The task's state store (Airflow 3.3+), or None where there is none (3.0-3.2)."""
    return context.get("task_state_store")


def iter_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file opened through ``ObjectStoragePath.open``, read as they are needed.

    Airflow 3.0 wraps that file in an object that cannot be iterated (3.1+ can); ``readline`` works
    everywhere.
    """
    return iter(handle.readline, b"")


def _connection_type(conn_type: str) -> dict[str, Any]:
    from airflow_provider_gemini.get_provider_info import get_provider_info

    return next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type)


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """The form fields of ``conn-fields`` as the WTForms fields Airflow 3.0 and 3.1 read from a hook.

    Airflow 3.2+ reads ``conn-fields`` from the provider info and never calls the hook for them. The
    fields need ``wtforms``, which comes with the FAB provider; without it Airflow shows no extra fields.
    """
    from wtforms import BooleanField, IntegerField, PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, field in _connection_type(conn_type).get("conn-fields", {}).items():
        schema = field.get("schema", {})
        kinds = schema.get("type", "string")
        kinds = set(kinds if isinstance(kinds, list) else [kinds])
        if schema.get("format") == "password":
            field_class: Any = PasswordField
        elif "boolean" in kinds:
            field_class = BooleanField
        elif "integer" in kinds:
            field_class = IntegerField
        else:  # strings, and numbers (the settings parse them; WTForms' FloatField is not accepted)
            field_class = StringField
        widgets[f"extra__{conn_type}__{name}"] = field_class(
            field.get("label", name), description=field.get("description", ""), default=schema.get("default")
        )
    return widgets


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """``ui-field-behaviour`` of the provider info in the form a hook's ``get_ui_field_behaviour`` returns."""
    behaviour = _connection_type(conn_type).get("ui-field-behaviour", {})
    return {key.replace("-", "_"): value for key, value in behaviour.items()}
