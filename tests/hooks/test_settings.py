"""Connection extras to client options: pure logic, no network."""

from __future__ import annotations

from airflow_provider_gemini.hooks._settings import GeminiSettings


def test_developer_api_settings_and_client_options():
    settings = GeminiSettings.from_connection(
        "secret-key",
        {
            "base_url": "http://127.0.0.1:8765/",
            "api_version": "v1beta",
            "timeout": "12.5",
            "retry_attempts": "3",
        },
    )
    kwargs = settings.client_kwargs()
    assert kwargs["api_key"] == "secret-key"
    assert kwargs["http_options"]["base_url"] == "http://127.0.0.1:8765"
    assert kwargs["http_options"]["api_version"] == "v1beta"
    assert kwargs["http_options"]["timeout"] == 12500  # the SDK wants milliseconds
    assert kwargs["http_options"]["retry_options"]["attempts"] == 3
    assert settings.download_base == "http://127.0.0.1:8765/download/v1beta"
    assert "secret-key" not in repr(settings)


def test_defaults_point_at_google():
    settings = GeminiSettings.from_connection("k", {})
    assert settings.download_base == "https://generativelanguage.googleapis.com/download/v1"
    assert "base_url" not in settings.http_options()
    assert settings.http_options()["retry_options"]["attempts"] == 5


def test_prefixed_extras_from_older_forms_are_read():
    settings = GeminiSettings.from_connection(
        "k", {"extra__gemini__base_url": "http://h", "extra__gemini__timeout": 3}
    )
    assert settings.base_url == "http://h"
    assert settings.timeout == 3.0


def test_vertex_mode_is_read_from_either_spelling():
    assert GeminiSettings.from_connection(None, {"vertexai": "true"}).vertexai
    assert GeminiSettings.from_connection(None, {"extra__gemini__vertexai": True}).vertexai
    assert not GeminiSettings.from_connection("k", {"vertexai": "false"}).vertexai
