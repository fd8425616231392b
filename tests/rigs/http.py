"""A small HTTP server a boot test runs on the host side of a namespace: it answers what a
booting machine asks for (iPXE scripts, kernels, initrds) and keeps every request, with its
time and body, so the test can check the chain and time it.

It stands in for the subcontractor's boot endpoint in the rig's own test; the end-to-end
tests use the real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Request:
    at: float  # time.time() when it arrived
    client: str
    method: str
    path: str  # with the query string
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# a route's answer: (status, content type, body)
Answer = tuple[int, str, bytes]
Route = Callable[[Request], Answer]


@dataclass
class BootHttp:
    """The running server: ``url`` (``http://host:port``), the ``requests`` so far, and
    ``routes`` (exact path without the query → handler), changeable while it runs."""

    url: str
    files: Path
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, request: Request) -> Answer:
        path = urlsplit(request.path).path
        if path in self.routes:
            return self.routes[path](request)
        if path.startswith("/files/") and request.method == "GET":
            relative = Path(path.removeprefix("/files/"))
            target = self.files / relative
            if ".." not in relative.parts and not relative.is_absolute() and target.is_file():
                return 200, "application/octet-stream", target.read_bytes()
        return 404, "text/plain", b"not found\n"

    def record(self, request: Request) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def wait_for(self, method: str, path: str, timeout: float) -> Request:
        """The first request to ``path`` (query string ignored), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for request in self.requests:
                    if request.method == method and urlsplit(request.path).path == path:
                        return request
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f"{r.method} {r.path}" for r in self.requests]
                    raise AssertionError(f"no {method} {path} in {timeout} s; requests: {seen}")
                self._arrived.wait(left)


def text(body: str, content_type: str = "text/plain") -> Route:
    """A route answering ``body``."""
    return lambda request: (200, content_type, body.encode())


@contextmanager
def boot_http(host: str, files: Path) -> Iterator[BootHttp]:
    """The server on ``host`` and a kernel-chosen port until the block ends; ``/files/...``
    serves ``files``."""
    server_state: list[BootHttp] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send((413, "text/plain", b"too large\n"))
                return
            body = self.rfile.read(length) if length else b""
            request = Request(time.time(), self.client_address[0], self.command, self.path, body)
            state = server_state[0]
            state.record(request)
            self._send(state.answer(request))

        def _send(self, answer: Answer) -> None:
            status, content_type, body = answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    state = BootHttp(url=f"http://{host}:{server.server_address[1]}", files=files)
    server_state.append(state)
    thread = threading.Thread(target=server.serve_forever, name="boot-http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
