"""The result-file reader against a small real HTTP server that misbehaves in ways the emulator does not."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_gemini.batch.errors import GeminiApiError, ResultsDownloadError
from airflow_provider_gemini.hooks._streaming import download_opener, stream_blocks

BODY = b"".join(b'{"key": "k%05d", "text": "%s"}\n' % (n, b"x" * (n % 300)) for n in range(6000))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, plan: list[str], body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.plan = plan  # each request's answer: "cut" (half, then close), "full", "missing", a URL
        self.body = body
        self.ranges: list[str | None] = []
        self.keys: list[str | None] = []


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.ranges.append(self.headers.get("Range"))
        self.server.keys.append(self.headers.get("x-goog-api-key"))
        what = self.server.plan.pop(0) if self.server.plan else "full"
        if what.startswith("http"):
            self.send_response(302)
            self.send_header("Location", what)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if what == "missing":
            body = b'{"error": {"code": 404, "status": "NOT_FOUND", "message": "no such file"}}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)  # a Range header is ignored: the whole file every time
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        if what == "cut":
            self.wfile.write(self.server.body[: len(self.server.body) // 2 + 7])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(self.server.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[Server] = []

    def start(plan: list[str], body: bytes = BODY) -> tuple[Server, str]:
        server = Server(plan, body)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/files/r:download"

    yield start
    for server in servers:
        server.shutdown()  # (up to its 0.5 s poll)
        server.server_close()


def read(url: str, **kwargs: object) -> bytes:
    blocks = stream_blocks(
        download_opener(ssl.create_default_context()),
        url,
        headers={"x-goog-api-key": "k"},
        name="files/r",
        timeout=10,
        initial_delay=0.01,
        **kwargs,  # type: ignore[arg-type]
    )
    out = []
    for block in blocks:
        assert block.endswith(b"\n")
        out.append(block)
    return b"".join(out)


def test_a_resume_the_server_answers_with_the_whole_file_skips_what_was_read(serve):
    server, url = serve(["cut", "full"])
    assert read(url) == BODY  # every line once, none cut
    assert server.ranges[0] is None
    assert (server.ranges[1] or "").startswith("bytes=")


def test_a_short_body_is_never_complete(serve):
    server, url = serve(["cut"] * 3)
    with pytest.raises(ResultsDownloadError, match=r"files/r failed after 3 attempts.*of \d+ bytes"):
        read(url, attempts=3)
    assert len(server.ranges) == 3


def test_a_last_line_without_newline_gets_one(serve):
    _, url = serve([], body=BODY + b'{"key": "last"}')
    assert read(url) == BODY + b'{"key": "last"}\n'


def test_a_missing_file_fails_at_once_with_the_api_message(serve):
    server, url = serve(["missing"])
    with pytest.raises(GeminiApiError, match="404 NOT_FOUND on download files/r: no such file"):
        read(url)
    assert len(server.ranges) == 1


def test_a_redirect_to_another_host_does_not_carry_the_api_key(serve):
    elsewhere, elsewhere_url = serve([])
    here, url = serve([])
    here.plan = [url.replace("/files/r", "/moved/r"), elsewhere_url]  # the same host first, then away
    assert read(url) == BODY
    assert here.keys == ["k", "k"]  # the same host keeps the key
    assert elsewhere.keys == [None]  # another host (here: another port) gets none
