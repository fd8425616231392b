"""Real BIND for the DNS tests: ``named-checkzone`` on zone text, and a ``named`` serving a
directory of zones on a kernel-chosen loopback port, queried with dnspython.

Without BIND installed the tests that need it skip, except under CI (``CI=true``), where
they fail: there, a missing peer is a broken machine, not an optional extra.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver
import pytest

from contractor.child_process import stop_child


def program(name: str) -> str:
    """The path of a BIND program, or skip (fail under CI) when it is not installed."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if found is None:
        message = f"{name} is not installed (apt-get install bind9 bind9-utils)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def checkzone(origin: str, text: str) -> str:
    """Run named-checkzone on ``text`` as named would load it; fail the test if invalid."""
    with tempfile.NamedTemporaryFile("w", suffix=".zone") as handle:
        handle.write(text)
        handle.flush()
        result = subprocess.run(
            [program("named-checkzone"), "-k", "fail", "-i", "local", origin, handle.name],
            capture_output=True,
            text=True,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"named-checkzone {origin}:\n{output}\n{text}"
    return output


def free_port() -> int:
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port: int = tcp.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))  # the same port must be free for UDP too
    return port


@dataclass
class Named:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    def resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 5
        return resolver

    def query(self, name: str, rdtype: str) -> list[str]:
        """The answer's RDATA texts (empty: NXDOMAIN or no data). A CNAME into another zone
        is followed as a recursive resolver would: an authoritative named answers only the
        CNAME (RFC 2317 classless reverse zones rely on this)."""
        resolver = self.resolver()
        for _hop in range(8):
            try:
                answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return []
            if answer.rrset is not None:
                return sorted(rdata.to_text() for rdata in answer.rrset)
            if answer.canonical_name == answer.qname:
                return []
            name = answer.canonical_name.to_text()
        raise AssertionError(f"CNAME chain from {name} is too long")

    def serial(self, zone: str, timeout: float = 5) -> int:
        request = dns.message.make_query(zone, dns.rdatatype.SOA)
        response = dns.query.udp(request, "127.0.0.1", port=self.port, timeout=timeout)
        return int(response.answer[0][0].serial)  # type: ignore[attr-defined]

    def reload(self) -> None:
        self.process.send_signal(1)  # SIGHUP: reload every zone whose file changed


def _options(work: Path, port: int, *, notify: bool = False) -> str:
    notifies = "notify yes; notify-delay 0;" if notify else "notify no;"
    return f"""options {{
  directory "{work}"; pid-file "{work}/named.pid"; session-keyfile "{work}/session.key";
  managed-keys-directory "{work}";
  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; {notifies}
}};
controls {{ }};
logging {{ channel f {{ file "{work}/named.log"; severity info; }}; category default {{ f; }}; }};
"""


def _launch(work: Path) -> subprocess.Popen[bytes]:
    with (work / "named.out").open("ab") as output:
        return subprocess.Popen(
            [program("named"), "-g", "-c", str(work / "named.conf")],
            stdout=subprocess.DEVNULL,
            stderr=output,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_child(process, wait=10)


@contextmanager
def named(
    include: Path, first_zone: str, *, before: str = "", notify: bool = False
) -> Iterator[Named]:
    """``named`` loading the ``named.conf`` fragment ``include``; ready when it answers for
    ``first_zone``. ``before``: statements ahead of the include (keys it names); ``notify``:
    send NOTIFY (at once). Stopped (by its own process id) on exit."""
    program("named")
    for _attempt in range(3):
        work = Path(tempfile.mkdtemp(prefix="named-"))
        port = free_port()
        conf = _options(work, port, notify=notify) + before + f'include "{include}";\n'
        (work / "named.conf").write_text(conf)
        process = _launch(work)
        server = Named(port, process, work)
        ready = False
        try:
            ready = _wait_ready(server, first_zone)
            if ready:
                yield server
                return
        finally:
            _stop(server.process)
            if ready:
                shutil.rmtree(work, ignore_errors=True)
        log = (work / "named.out").read_text(errors="replace")[-2000:]
        shutil.rmtree(work, ignore_errors=True)
        if "address in use" not in log:
            pytest.fail(f"named did not start:\n{log}")
    pytest.fail("named could not get a free port in 3 attempts")


@dataclass
class DynamicNamed(Named):
    """A ``named`` whose zones take RFC 2136 updates signed with ``key`` (and transfers to
    that key); its zone files and journals live in ``directory``, so ``stop`` and ``start``
    again keep every acknowledged update."""

    key_name: str = "contractor-test"
    secret: str = ""
    zones: tuple[str, ...] = ()

    def stop(self) -> None:
        _stop(self.process)

    def start(self) -> None:
        assert self.process.poll() is not None, "named is still running"
        for _attempt in range(50):  # the port is ours again once the old process is gone
            self.process = _launch(self.directory)
            if _wait_ready(self, self.zones[0]):
                return
            _stop(self.process)
            time.sleep(0.1)
        pytest.fail("named did not start again:\n" + self.log()[-2000:])

    def log(self) -> str:
        return (self.directory / "named.out").read_text(errors="replace")


SOA_LINE = "@ 300 IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 300"


@contextmanager
def dynamic_named(directory: Path, zones: dict[str, str]) -> Iterator[DynamicNamed]:
    """``named`` serving ``zones`` (name -> initial zone file text) as dynamic primary zones
    in ``directory``, with a fresh TSIG key (hmac-sha256) of the test's own. Stopped on
    exit."""
    program("named")
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        conf = _options(directory, port)
        conf += f'key "contractor-test" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
        for zone, text in zones.items():
            (directory / f"{zone}.db").write_text(text)
            conf += (
                f'zone "{zone}" {{ type primary; file "{directory}/{zone}.db"; '
                "update-policy { grant contractor-test zonesub ANY; }; "
                "allow-transfer { key contractor-test; }; };\n"
            )
        (directory / "named.conf").write_text(conf)
        server = DynamicNamed(
            port, _launch(directory), directory, secret=secret, zones=tuple(zones)
        )
        try:
            if _wait_ready(server, server.zones[0]):
                yield server
                return
        finally:
            server.stop()
        if "address in use" not in server.log():
            pytest.fail(f"named did not start:\n{server.log()[-2000:]}")
    pytest.fail("named could not get a free port in 3 attempts")


def _wait_ready(server: Named, zone: str) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.serial(zone, timeout=0.2)
            return True
        except (dns.exception.DNSException, OSError, IndexError):
            time.sleep(0.05)
    return False
