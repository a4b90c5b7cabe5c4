"""The page's FastAPI app: the HTML page and the JSON it refreshes from, for signed-in users only.

Every route depends on Airflow's own ``get_user`` (the ``_token`` cookie the UI sets at sign-in, or a
bearer token), so an anonymous request gets Airflow's 401 (403 for a bad token). What a user sees is
decided by the auth manager: jobs of a DAG need read access to that DAG, jobs no known DAG made need
read access to the connection. The API key stays in the api-server: answers carry job fields only.
Only the plugin's ``LazyApp`` imports this module, on the api-server's first request to the page.
"""

from __future__ import annotations

import html
import json
import time
from importlib import resources
from typing import Annotated
from urllib.parse import urlparse

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from airflow_provider_gemini.batch.jobs import BatchJobInfo
from airflow_provider_gemini.plugins import airflow_data
from airflow_provider_gemini.plugins.cache import TtlCache
from airflow_provider_gemini.plugins.rows import (
    WINDOWS,
    Manifest,
    TaskInstanceRef,
    first_manifest_per_batch,
    index_task_instances,
    job_row,
    owner_of,
    spend_by_dag,
    task_url,
    visible,
)

PAGE_SIZE = 50
# The page refreshes every REFRESH_SECONDS while a job on it is live; answers are shared for a little
# less, so each refresh costs the API at most one list call per connection and page, however many
# people watch.
REFRESH_SECONDS = 5
IDLE_REFRESH_SECONDS = 30
CACHE_SECONDS = 4.0

_pages: TtlCache[tuple[list[BatchJobInfo], str | None, float]] = TtlCache(CACHE_SECONDS)
_instances: TtlCache[dict[str, TaskInstanceRef]] = TtlCache(CACHE_SECONDS)
_manifests: TtlCache[dict[str, Manifest]] = TtlCache(CACHE_SECONDS)


class ListError(Exception):
    """The job list could not be read; the message is safe to show (no secret in it)."""


def list_page(
    conn_id: str, page_token: str | None, page_size: int
) -> tuple[list[BatchJobInfo], str | None, float]:
    """One page of the connection's jobs through ``GeminiHook`` (one API call), with when it was read."""
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    hook = GeminiHook(gemini_conn_id=conn_id)
    secret = None
    try:
        secret = hook.settings.api_key
        jobs, token = hook.list_batches_page(page_size=page_size, page_token=page_token)
    except Exception as err:
        message = f"Cannot list the batches of {conn_id!r}: {err}"
        raise ListError(message.replace(secret, "***") if secret else message) from None
    finally:
        hook.close()
    return jobs, token, time.time()


def _base_path() -> str:
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def _known_instances() -> dict[str, TaskInstanceRef]:
    return _instances.get("all", lambda: index_task_instances(airflow_data.create_task_instances()))


def _known_manifests() -> dict[str, Manifest]:
    return _manifests.get("all", lambda: first_manifest_per_batch(airflow_data.manifests()))


User = Annotated[BaseUser, Depends(get_user)]


def create_app() -> FastAPI:
    app = FastAPI(title="Gemini batches", docs_url=None, redoc_url=None, openapi_url=None)
    no_store = {"Cache-Control": "no-store"}

    def readable_dags(user: BaseUser) -> set[str]:
        return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))

    @app.get("/", response_class=HTMLResponse)
    def page(user: User) -> HTMLResponse:
        settings = {
            "refreshSeconds": REFRESH_SECONDS,
            "idleRefreshSeconds": IDLE_REFRESH_SECONDS,
            "pageSize": PAGE_SIZE,
            "windows": list(WINDOWS),
        }
        text = resources.files("airflow_provider_gemini.plugins").joinpath("page.html").read_text("utf-8")
        text = text.replace("{{SETTINGS}}", html.escape(json.dumps(settings)))
        return HTMLResponse(text, headers=no_store)

    def may_read_connection(user: BaseUser, conn_id: str) -> bool:
        return get_auth_manager().is_authorized_connection(
            method="GET", user=user, details=ConnectionDetails(conn_id=conn_id)
        )

    @app.get("/api/connections")
    def connections(user: User) -> JSONResponse:
        """The Gemini connections this user may read (any other id can still be typed in)."""
        ids = [
            conn_id for conn_id in airflow_data.gemini_connection_ids() if may_read_connection(user, conn_id)
        ]
        return JSONResponse({"connections": ids}, headers=no_store)

    @app.get("/api/jobs")
    def jobs(
        user: User,
        conn_id: str = Query("gemini_default", min_length=1, max_length=250),
        page_token: str | None = Query(None, max_length=2000),
        page_size: int = Query(PAGE_SIZE, ge=1, le=100),
    ) -> JSONResponse:
        key = (conn_id, page_token or "", page_size)
        try:
            listed, next_token, listed_at = _pages.get(key, lambda: list_page(conn_id, page_token, page_size))
        except ListError as err:
            raise HTTPException(status_code=502, detail=str(err)) from None
        instances, manifests = _known_instances(), _known_manifests()
        readable = readable_dags(user)
        sees_unlinked = may_read_connection(user, conn_id)
        base = _base_path()
        rows = []
        for job in listed:
            owner = owner_of(job, instances)
            if not visible(owner, readable, sees_unlinked):
                continue
            row = job_row(job, owner, manifests.get(job.name))
            if owner is not None:
                row["task"]["url"] = task_url(base, owner)
            rows.append(row)
        body = {"conn_id": conn_id, "jobs": rows, "next_page_token": next_token, "listed_at": listed_at}
        return JSONResponse(body, headers=no_store)

    @app.get("/api/spend")
    def spend(user: User) -> JSONResponse:
        readable = readable_dags(user)
        mine = {name: m for name, m in _known_manifests().items() if m.task.dag_id in readable}
        body = {"windows": list(WINDOWS), "dags": spend_by_dag(mine, time.time())}
        return JSONResponse(body, headers=no_store)

    return app
