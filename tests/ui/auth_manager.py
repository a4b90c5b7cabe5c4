"""An auth manager for the page's e2e test: Airflow's SimpleAuthManager, except that the user
``analyst`` may not read one DAG (``DENIED_DAG``), as a per-DAG permission of a real one would say."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DENIED_USER = "analyst"
DENIED_DAG = "gemini_batch_basic"


class OneDagDeniedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if user.get_name() == DENIED_USER and details is not None and details.id == DENIED_DAG:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
