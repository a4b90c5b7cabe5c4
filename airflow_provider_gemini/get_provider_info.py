"""Provider metadata read by Airflow's providers manager (without importing the hook)."""

from __future__ import annotations

from typing import Any

from airflow_provider_gemini import __version__

HOOK_CLASS = "airflow_provider_gemini.hooks.gemini.GeminiHook"
INTEGRATION = "Gemini Batch"
VERTEX_NOT_YET = "Vertex AI batch is not supported yet: a connection using it fails at first use."


def get_provider_info() -> dict[str, Any]:
    """Return the provider description behind the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-gemini",
        "name": "Gemini Batch",
        "description": "Gemini API Batch Mode: submit once, wait deferred, stream results to storage.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://ai.google.dev/gemini-api/docs/batch-mode",
                "tags": ["gcp"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_gemini.operators.batch",
                    "airflow_provider_gemini.operators.embed",
                ],
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_gemini.sensors.batch"]}
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_gemini.hooks.gemini"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_gemini.triggers.batch"]}
        ],
        "transfers": [
            {
                "source-integration-name": INTEGRATION,
                "target-integration-name": "Object Storage",
                "python-module": "airflow_provider_gemini.transfers.results_to_storage",
            },
            {
                "source-integration-name": INTEGRATION,
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_gemini.transfers.results_to_sql",
            },
        ],
        "extra-links": ["airflow_provider_gemini.links.batch.GeminiBatchJobLink"],
        # Airflow 3.3 reads this list only with [core] lazy_discover_providers = False (then it warns
        # that the plugin is registered already, as for its own providers); the airflow.plugins entry
        # point in pyproject.toml is what loads the plugin by default.
        "plugins": [
            {
                "name": "gemini_batches",
                "plugin-class": "airflow_provider_gemini.plugins.gemini_batches.GeminiBatchesPlugin",
            }
        ],
        "connection-types": [
            {
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Gemini",
                "connection-type": "gemini",
                "conn-fields": {
                    "base_url": {
                        "label": "Base URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "Override the API endpoint (a proxy, or the local emulator).",
                    },
                    "api_version": {
                        "label": "API version",
                        "schema": {"type": ["string", "null"]},
                        "description": "v1beta or v1; empty uses the SDK default.",
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "schema": {"type": ["number", "null"]},
                    },
                    "retry_attempts": {
                        "label": "Attempts per call (transient errors)",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    # Vertex AI mode is not supported yet: the hook refuses it at first use. The fields
                    # stay so that connections made for it keep their settings for when it is.
                    "vertexai": {
                        "label": "Use Vertex AI",
                        "schema": {"type": ["boolean", "null"], "default": False},
                        "description": VERTEX_NOT_YET,
                    },
                    "project": {
                        "label": "Vertex AI project",
                        "schema": {"type": ["string", "null"]},
                        "description": VERTEX_NOT_YET,
                    },
                    "location": {
                        "label": "Vertex AI location",
                        "schema": {"type": ["string", "null"]},
                        "description": VERTEX_NOT_YET,
                    },
                    "key_path": {
                        "label": "Service account key path",
                        "schema": {"type": ["string", "null"]},
                        "description": VERTEX_NOT_YET,
                    },
                    "keyfile_dict": {
                        "label": "Service account key JSON",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": VERTEX_NOT_YET,
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "host"],
                    "relabeling": {"password": "API key"},
                    "placeholders": {
                        "password": "Gemini API key (Developer API)",
                        "base_url": "https://generativelanguage.googleapis.com",
                        "location": "us-central1",
                    },
                },
            }
        ],
    }
