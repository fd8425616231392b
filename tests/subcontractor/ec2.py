"""A real EC2 for the aws tests: ``moto_server`` on a loopback port, and ``Ec2Proxy``, a
real HTTP proxy in front of it that answers chosen actions with throttling errors or
nonsense, drops their answers after moto has acted on them, or holds them until told (a
subcontractor can then be killed between RunInstances and its answer)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import clean_env, free_port

REGION = "us-east-1"
KEY_ID = "AKIAEXAMPLEKEYID0001"
SECRET = "moto-secret-access-key-do-not-leak"
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
    """``moto_server`` on a loopback port; yields its URL; stopped afterwards."""
    require_moto()
    port = free_port()
    log = (directory / f"moto-{port}.log").open("wb")
    command = shutil.which("moto_server")
    argv = [command] if command else [sys.executable, "-m", "moto.server"]
    process = subprocess.Popen(
        [*argv, "-H", "127.0.0.1", "-p", str(port)],
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not come up:\n{Path(log.name).read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def ec2_client(url: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name=REGION
    ).client("ec2", endpoint_url=url)


@dataclass
class Network:
    vpc_id: str
    subnet_id: str
    group_id: str
    cidr: str


def make_network(url: str, cidr: str = "10.77.1.0/24") -> Network:
    """A VPC, a subnet and a security group in moto (addresses that exist only there)."""
    ec2 = ec2_client(url)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return Network(vpc, subnet, group, cidr)


def instances(url: str) -> list[dict[str, Any]]:
    """Every instance moto holds, in any state."""
    answer = ec2_client(url).describe_instances()
    return [i for r in answer["Reservations"] for i in r["Instances"]]


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
