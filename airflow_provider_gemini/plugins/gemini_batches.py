"""The Airflow plugin that adds the "Gemini batches" page to the UI.

Airflow imports plugins in every process it starts (scheduler, workers, triggerer), so this module
imports only the plugin base class: the FastAPI app, Airflow's security helpers and the Gemini SDK
are imported when the api-server first serves the page.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/gemini-batches"
URL_ROUTE = "gemini-batches"


class LazyApp:
    """An ASGI app that builds the page's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "airflow_provider_gemini.plugins.app:create_app"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from airflow_provider_gemini.plugins.app import create_app

                    self._app = create_app()
        await self._app(scope, receive, send)


class GeminiBatchesPlugin(AirflowPlugin):
    """Serves the page from the api-server and links it from the UI's navigation (an external view
    with a ``url_route``: the UI shows it inside its own frame, signed-in cookie included)."""

    name = "gemini_batches"
    fastapi_apps = [{"name": "Gemini batches", "app": LazyApp(), "url_prefix": URL_PREFIX}]
    external_views = [
        {
            "name": "Gemini batches",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": URL_ROUTE,
            "nav_top_level": True,
        }
    ]
