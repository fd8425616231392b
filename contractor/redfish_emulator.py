"""A Redfish BMC emulated by ``sushy-emulator --fake`` (sushy-tools, the ``redfish`` extra),
for ``contractor demo --with redfish``, the tests and the bench.

It serves one system on a loopback port over HTTPS, with a throwaway CA and certificate made
here with ``cryptography``, HTTP Basic authentication from an htpasswd file, and its state in
the caller's directory. The emulator runs unchanged; a WSGI wrapper in front of it writes
every request that changes something (method, path, JSON body) to ``calls.jsonl``, and
accepts the ResetTypes listed in a ``deaf`` file and does nothing (an OS that ignores the
ACPI power button; a BMC whose changes never show). Its fake driver applies a power change 1
to 11 s after accepting it, as real servers take their time.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contractor.child_process import ChildDidNotStart, free_port, stop_child, wait_until_up

__all__ = ["EmulatorError", "RedfishBmc", "Tls", "installed", "make_tls", "sushy_emulator"]


class EmulatorError(Exception):
    """The emulator is not installed or did not start; the message says why."""


def installed() -> bool:
    """Whether sushy-tools (the ``redfish`` extra) is installed."""
    return importlib.util.find_spec("sushy_tools") is not None


RUNNER = """\
import io, json, os, sys
from sushy_tools.emulator import main as emulator

calls, deaf = os.environ["REDFISH_CALLS"], os.environ["REDFISH_DEAF"]
inner = emulator.app.wsgi_app


def recording(environ, start_response):
    if environ["REQUEST_METHOD"] != "GET":
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        body = json.loads(raw) if raw.strip() else None
        with open(calls, "a") as log:
            log.write(json.dumps({"method": environ["REQUEST_METHOD"],
                                  "path": environ["PATH_INFO"], "body": body}) + "\\n")
        ignored = open(deaf).read().split() if os.path.exists(deaf) else []
        if isinstance(body, dict) and body.get("ResetType") in ignored:
            start_response("204 No Content", [])
            return [b""]
    return inner(environ, start_response)


emulator.app.wsgi_app = recording  # main() puts the authentication in front of it
sys.argv[0] = "sushy-emulator"
sys.exit(emulator.main())
"""

NICS = ("52:54:00:6e:00:01", "52:54:00:6e:00:02")


@dataclass(frozen=True)
class Tls:
    ca: str  # PEM: the bundle a client trusts
    certificate: Path
    key: Path


def make_tls(directory: Path, host: str = "127.0.0.1") -> Tls:
    """A throwaway CA and a server certificate for ``host`` signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(
        subject: str, key: Any, issuer: str, signer: Any, *, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("contractor test CA", ca_key, "contractor test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(host, key, "contractor test CA", ca_key, ca=False)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bmc.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "bmc.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return Tls(
        ca=ca.public_bytes(serialization.Encoding.PEM).decode(),
        certificate=directory / "bmc.crt",
        key=directory / "bmc.key",
    )


@dataclass
class RedfishBmc:
    port: int
    directory: Path
    username: str
    password: str
    system_id: str
    tls: Tls
    nics: tuple[str, ...]
    pid: int = 0  # the emulator's process (a bench counts its CPU time)

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def system(self) -> str:
        return f"/redfish/v1/Systems/{self.system_id}"

    def get(self, path: str) -> dict[str, Any]:
        """Read a resource the way an operator's client would."""
        answer = httpx.get(
            f"https://127.0.0.1:{self.port}{path}",
            auth=(self.username, self.password),
            verify=ssl.create_default_context(cadata=self.tls.ca),
            trust_env=False,
            timeout=10,
        )
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def post(self, path: str, body: dict[str, Any]) -> None:
        httpx.post(
            f"https://127.0.0.1:{self.port}{path}",
            json=body,
            auth=(self.username, self.password),
            verify=ssl.create_default_context(cadata=self.tls.ca),
            trust_env=False,
            timeout=10,
        ).raise_for_status()

    def power(self) -> str:
        return str(self.get(self.system)["PowerState"])

    def boot(self) -> dict[str, Any]:
        boot: dict[str, Any] = self.get(self.system)["Boot"]
        return boot

    def media(self) -> dict[str, Any]:
        return self.get(f"{self.system}/VirtualMedia/Cd")

    def calls(self) -> list[dict[str, Any]]:
        log = self.directory / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def resets(self) -> list[str]:
        return [
            call["body"]["ResetType"] for call in self.calls() if call["path"].endswith(".Reset")
        ]

    def deaf(self, *resets: str) -> None:
        """Accept these ResetTypes (default GracefulShutdown) from now on and do nothing."""
        (self.directory / "deaf").write_text(" ".join(resets or ("GracefulShutdown",)))


def _answers(bmc: RedfishBmc) -> bool:
    try:
        bmc.get("/redfish/v1/")
    except httpx.TransportError:
        return False
    return True


@contextmanager
def sushy_emulator(
    directory: Path,
    *,
    power: str = "Off",
    username: str = "admin",
    password: str = "redfish-secret-pw",
    nics: tuple[str, ...] = NICS,
    port: int | None = None,
    tls: Tls | None = None,
) -> Iterator[RedfishBmc]:
    """``sushy-emulator --fake`` serving one system, for the block; always stopped.
    ``EmulatorError`` (with its output) when it does not come up."""
    import bcrypt

    directory.mkdir(parents=True, exist_ok=True)
    tls = tls or make_tls(directory / "tls")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (directory / "htpasswd").write_text(f"{username}:{hashed}\n")
    system_id = str(uuid.uuid4())
    systems = [
        {
            "uuid": system_id,
            "name": f"node-{system_id[:8]}",
            "power_state": power,
            "nics": [{"mac": mac} for mac in nics],
        }
    ]
    (directory / "emulator.conf").write_text(
        f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'state')!r}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(directory / 'htpasswd')!r}\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
    )
    (directory / "runner.py").write_text(RUNNER)
    port = port or free_port()
    bmc = RedfishBmc(port, directory, username, password, system_id, tls, nics)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env.update(
        REDFISH_CALLS=str(directory / "calls.jsonl"),
        REDFISH_DEAF=str(directory / "deaf"),
        NO_PROXY="127.0.0.1,localhost",
    )
    log = (directory / "emulator.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(directory / "runner.py"),
            "--fake",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "--ssl-certificate",
            str(tls.certificate),
            "--ssl-key",
            str(tls.key),
            "--config",
            str(directory / "emulator.conf"),
        ],
        cwd=directory,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bmc.pid = process.pid
    try:
        try:
            wait_until_up(process, lambda: _answers(bmc), seconds=30)
        except ChildDidNotStart:
            raise EmulatorError(
                "sushy-emulator did not come up:\n"
                + (directory / "emulator.log").read_text(errors="replace")
            ) from None
        yield bmc
    finally:
        stop_child(process, wait=10)
        log.close()
