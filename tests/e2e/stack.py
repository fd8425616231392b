"""The whole boot stack around a rig's namespace, for the end-to-end boot tests.

``contractor serve`` (PostgreSQL) on loopback, and a ``subcontractor run`` with the ``ipmi``
module and its ``[boot]`` component on the veth's host end: dnsmasq on ``host_if`` serves
the machines on the namespace's bridge, and the boot endpoint listens on ``host_address``
(what booting machines know as ``__contractor_host``; they never reach Contractor).

::

    QEMU (tap on br0) ──DHCP/TFTP/HTTP── host_if: dnsmasq, boot endpoint ── 127.0.0.1: contractor
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Job
from contractor.services import jobs
from contractor.settings import Settings
from tests.rigs.netns import Netns
from tests.serving import free_port
from tests.subcontractor.processes import Agent, contractor_on, subcontractor, write_config

T = TypeVar("T")
IPMI: dict[str, object] = {"concurrency": 4, "confirm_interval": 0.2, "soft_off_wait": 1}


def free_port_on(address: str) -> int:
    """A port the kernel hands out on ``address`` (free when this returns)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


class Database:
    """The test's PostgreSQL, written and read as the services do."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(Settings(database_url=url))

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with transaction(create_session_factory(self.engine, writes=True)) as session:
            return await work(session)

    async def job(self, job_id: int) -> Job:
        return await self.run(lambda session: jobs.get_job(session, job_id))

    async def finished(self, job_id: int, seconds: float) -> Job:
        deadline = time.monotonic() + seconds
        while True:
            job = await self.job(job_id)
            if job.state in ("done", "error", "aborted"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} is {job.state} ({job.message!r}) after {seconds} s"
                )
            await asyncio.sleep(0.25)

    async def dispose(self) -> None:
        await self.engine.dispose()


@pytest.fixture
async def database(own_pg_url: str) -> AsyncIterator[Database]:
    """The module's own PostgreSQL database (``own_pg_url``), as a ``Database``."""
    db = Database(own_pg_url)
    try:
        yield db
    finally:
        await db.dispose()


@dataclass
class Stack:
    """The running processes: Contractor's URL (loopback), the boot endpoint's (on the
    namespace's network), the agent, and where its boot services keep their state."""

    contractor: str
    endpoint: str
    agent: Agent
    state_dir: Path
    log: Path

    def contractor_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def requests(self, method: str, prefix: str) -> list[float]:
        """When Contractor received each ``method`` request whose path starts with ``prefix``
        (time.time(), from its JSON access log: the logged end less the duration)."""
        arrivals: list[float] = []
        for line in self.contractor_log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("logger") != "access":
                continue
            words = str(record.get("message", "")).split()
            if len(words) == 5 and words[1] == method and words[2].startswith(prefix):
                ended = dt.datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
                arrivals.append(ended.timestamp() - float(words[4].removesuffix("ms")) / 1000)
        return arrivals

    def diagnostics(self) -> str:
        parts = [f"----- subcontractor log -----\n{self.agent.output()[-20000:]}"]
        for path in sorted(self.state_dir.rglob("*")):
            if (
                path.is_file()
                and path.suffix in (".log", ".conf", ".leases", "")
                and (path.stat().st_size < 200_000)
            ):
                text = path.read_text(errors="replace")[-6000:]
                parts.append(f"----- {path} -----\n{text}")
        parts.append(f"----- contractor serve log -----\n{self.contractor_log()[-12000:]}")
        return "\n".join(parts)


def boot_section(netns: Netns, port: int, state_dir: Path, files_dir: Path) -> dict[str, Any]:
    """The agent's ``[boot]`` section (docs/boot.md, "Running the boot services")."""
    return {
        "enabled": True,
        "backend": "dnsmasq",
        "interfaces": [netns.host_if],
        "server_address": str(netns.host_address),
        "http_listen": f"{netns.host_address}:{port}",
        "state_dir": str(state_dir),
        "files_dir": str(files_dir),
        "lease_seconds": 600,
        "lease_report_seconds": 1,
    }


def append_boot_section(config: Path, section: dict[str, Any]) -> None:
    """Add ``[boot]`` with ``section``'s keys to the agent's config file."""
    with config.open("a") as handle:
        handle.write("\n[boot]\n")
        for key, value in section.items():
            text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
            handle.write(f"{key} = {text}\n")


@contextmanager
def boot_stack(
    *,
    database_url: str,
    netns: Netns,
    token: str,
    site: str,
    directory: Path,
    files_dir: Path,
    settings: dict[str, str] | None = None,
    modules: dict[str, dict[str, object]] | None = None,
) -> Iterator[Stack]:
    """``contractor serve`` and the subcontractor (its ``modules``, by default ``ipmi``)
    until the block ends; both stopped then, and their logs (and the boot services' files)
    printed when the block failed."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port_on(str(netns.host_address))
    endpoint = f"http://{netns.host_address}:{port}"
    state_dir = directory / "boot-state"
    contractor_port = free_port()
    environment = {
        # what booting machines use to reach Contractor: the boot endpoint
        "CONTRACTOR_CONTRACTOR_URL": f"{endpoint}/",
        "CONTRACTOR_PXE_LOCATION": f"{endpoint}/files/",
        "CONTRACTOR_LOG_FORMAT": "json",  # access times to the millisecond (Stack.requests)
        # the discovery image's console and where it posts its report (docs/boot.md)
        "CONTRACTOR_BOOT_DISCOVERY_KERNEL_ARGS": (
            f"console=ttyS0 contractor.endpoint={netns.host_address}:{port}"
        ),
        **(settings or {}),
    }
    with contractor_on(contractor_port, database_url, directory, **environment) as url:
        log = max(directory.glob(f"contractor-{contractor_port}-*.log"))
        config = write_config(
            directory,
            url=url,
            token=token,
            site=site,
            modules={"ipmi": IPMI} if modules is None else modules,
            journal=directory / "journal",
            wait=2,
            grace=5,
        )
        append_boot_section(config, boot_section(netns, port, state_dir, files_dir))
        with subcontractor(config, directory) as agent:
            stack = Stack(url, endpoint, agent, state_dir, log)
            try:
                wait_for_endpoint(stack, timeout=30)
                yield stack
            except BaseException:
                sys.stdout.write(stack.diagnostics() + "\n")
                raise


def wait_for_endpoint(stack: Stack, timeout: float) -> None:
    """Until the boot endpoint answers HTTP (any status) and dnsmasq runs."""
    deadline = time.monotonic() + timeout
    while True:
        if stack.agent.process.poll() is not None:
            raise AssertionError(f"the subcontractor exited:\n{stack.agent.output()[-8000:]}")
        try:
            httpx.get(f"{stack.endpoint}/ipxe", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the boot endpoint {stack.endpoint} did not come up in {timeout} s"
                ) from None
            time.sleep(0.2)


async def graphql(base: str, token: str, document: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    assert "errors" not in result, result
    data: dict[str, Any] = result["data"]
    return data
