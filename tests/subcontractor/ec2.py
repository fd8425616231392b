"""A real EC2 for the aws tests: ``moto_server`` on a loopback port, and ``Ec2Proxy``, a
real HTTP proxy in front of it that answers chosen actions with throttling errors or
nonsense, drops their answers after moto has acted on them, or holds them until told (a
subcontractor can then be killed between RunInstances and its answer)."""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from contractor import aws_emulator
from contractor.aws_emulator import (
    KEY_ID,
    REGION,
    SECRET,
    Network,
    ec2_client,
    instances,
    make_network,
)
from tests.serving import clean_env

__all__ = [
    "KEY_ID",
    "REGION",
    "SECRET",
    "Ec2Proxy",
    "Network",
    "ec2_client",
    "ec2_proxy",
    "instances",
    "make_network",
    "moto_server",
    "require_moto",
]

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>throttled</RequestID></Response>"
)


def require_moto() -> None:
    pytest.importorskip("boto3", reason="the aws extra is not installed (pip install -e .[aws])")
    pytest.importorskip("moto.server", reason="moto[server] is not installed (the aws extra)")


@contextmanager
def moto_server(directory: Path) -> Iterator[str]:
    """``contractor.aws_emulator.moto_server`` (a skip where moto is missing, a failure where
    it does not come up)."""
    require_moto()
    try:
        with aws_emulator.moto_server(directory, env=clean_env()) as url:
            yield url
    except aws_emulator.EmulatorError as error:
        pytest.fail(str(error))


@dataclass
class Ec2Proxy:
    """What the proxy does to each action (its rules), and what it saw."""

    upstream: str
    throttle: Counter[str] = field(default_factory=Counter)
    drop: Counter[str] = field(default_factory=Counter)
    nonsense: Counter[str] = field(default_factory=Counter)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    held: threading.Event = field(default_factory=threading.Event)
    seen: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, rules: Counter[str], action: str) -> bool:
        with self.lock:
            if rules[action] > 0:
                rules[action] -= 1
                return True
            return False


@contextmanager
def ec2_proxy(upstream: str) -> Iterator[Ec2Proxy]:
    proxy = Ec2Proxy(upstream)
    client = httpx.Client(base_url=upstream, timeout=30)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read ``seen``."""

        def reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            action = urllib.parse.parse_qs(body.decode()).get("Action", ["?"])[0]
            with proxy.lock:
                proxy.seen[action] += 1
            if proxy.take(proxy.throttle, action):
                self.reply(503, THROTTLED)
                return
            if proxy.take(proxy.nonsense, action):
                self.reply(200, b"<html><body>an EC2 that is not</body></html>")
                return
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            answer = client.post(self.path, content=body, headers=headers)
            if proxy.take(proxy.drop, action):
                self.close_connection = True  # moto acted; its answer is lost on the way
                return
            release = proxy.hold.get(action)
            if release is not None:
                proxy.held.set()
                release.wait(60)
                self.close_connection = True
                return
            with proxy.lock:
                proxy.answered[action] += 1
            self.send_response(answer.status_code)
            for name in ("Content-Type", "x-amzn-requestid"):
                if name in answer.headers:
                    self.send_header(name, answer.headers[name])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="ec2-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        for release in proxy.hold.values():
            release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
        client.close()
