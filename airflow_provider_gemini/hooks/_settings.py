"""What a ``gemini`` connection says, read once into plain settings (no SDK import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1"  # the SDK's default for the Developer API


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _number(value: Any, default: float | None) -> float | None:
    if value in (None, ""):
        return default
    return float(value)


@dataclass(frozen=True)
class GeminiSettings:
    """The connection's settings. ``repr`` leaves the secrets out."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    api_version: str | None = None
    timeout: float | None = None
    retry_attempts: int = 5
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 30.0
    # Vertex AI mode is read only to be refused at first use (not supported yet; see GeminiHook).
    vertexai: bool = False

    @classmethod
    def from_connection(cls, password: str | None, extra: dict[str, Any]) -> GeminiSettings:
        """Read extras by their plain name or the ``extra__gemini__`` form older UIs store."""

        def get(name: str) -> Any:
            value = extra.get(name)
            return value if value not in (None, "") else extra.get(f"extra__gemini__{name}")

        return cls(
            api_key=password or None,
            base_url=(get("base_url") or None) and str(get("base_url")).rstrip("/"),
            api_version=get("api_version") or None,
            timeout=_number(get("timeout"), None),
            retry_attempts=int(_number(get("retry_attempts"), 5) or 1),
            retry_initial_delay=float(_number(get("retry_initial_delay"), 1.0) or 0.0),
            retry_max_delay=float(_number(get("retry_max_delay"), 30.0) or 0.0),
            vertexai=_truthy(get("vertexai")),
        )

    @property
    def longest_call(self) -> float:
        """Seconds one API call may take with all its retries (60 s an attempt when the connection sets
        no timeout): how long a create sent by a try that died may still take to land."""
        attempts = max(1, self.retry_attempts)
        return (self.timeout or 60.0) * attempts + self.retry_max_delay * (attempts - 1)

    @property
    def download_base(self) -> str:
        """``<base>/download/<version>``: where result files stream from."""
        return f"{self.base_url or DEFAULT_BASE_URL}/download/{self.api_version or DEFAULT_API_VERSION}"

    def http_options(self) -> dict[str, Any]:
        """``HttpOptions`` in dict form: endpoint, timeout (the SDK wants milliseconds) and retries."""
        options: dict[str, Any] = {
            "retry_options": {
                "attempts": max(1, self.retry_attempts),
                "initial_delay": self.retry_initial_delay,
                "max_delay": self.retry_max_delay,
                # The SDK adds up to `jitter` seconds per wait; keep it in scale with the delays.
                "jitter": min(1.0, self.retry_max_delay),
            }
        }
        if self.base_url:
            options["base_url"] = self.base_url
        if self.api_version:
            options["api_version"] = self.api_version
        if self.timeout:
            options["timeout"] = int(self.timeout * 1000)
        return options

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``google.genai.Client`` (the Developer API)."""
        return {"http_options": self.http_options(), "api_key": self.api_key}
