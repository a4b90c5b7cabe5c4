"""Images in the answers (``inlineData`` parts) written as objects next to the results.

Each image goes to a hidden folder beside the destination while the results stream; only when every
row is written are they moved to ``<destination stem>/images/<key>-<n>.<ext>``, just before the rows
file itself is moved into place. A killed transfer leaves the hidden folder (its retry writes over
it), never images without their rows.
"""

from __future__ import annotations

import base64
import re
from contextlib import suppress
from typing import TYPE_CHECKING

from airflow_provider_gemini.storage import uri

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ImageFiles:
    """Where a transfer's images go: staged, then published beside the destination."""

    def __init__(self, destination: ObjectStoragePath) -> None:
        stem = destination.name.rsplit(".", 1)[0]
        self.folder = destination.parent / stem / "images"
        self.staging = destination.parent / f".{stem}.images.partial"
        self.names: list[str] = []

    def write(self, key: str, images: list[tuple[str, str]]) -> list[str]:
        """Stage one answer's images; the paths they will have once published."""
        paths = []
        for number, (mime_type, data) in enumerate(images, start=1):
            name = f"{_UNSAFE.sub('_', key)}-{number}.{_EXTENSIONS.get(mime_type, 'bin')}"
            if not self.names and self.staging.protocol in ("", "file", "local"):
                self.staging.mkdir(parents=True, exist_ok=True)
            (self.staging / name).write_bytes(base64.b64decode(data))
            self.names.append(name)
            paths.append(uri(self.folder / name))
        return paths

    def publish(self) -> None:
        """Move every staged image to its place (before the rows that name them appear)."""
        if not self.names:
            return
        if self.folder.protocol in ("", "file", "local"):
            self.folder.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            (self.staging / name).rename(self.folder / name)
        self.discard()

    def discard(self) -> None:
        with suppress(Exception):  # cleaning up must not hide a real error
            for child in list(self.staging.iterdir()):
                child.unlink()
            self.staging.rmdir()  # (an object store has no folder left once it is empty)
