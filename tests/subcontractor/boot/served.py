"""A real Contractor app (SQLite, served by uvicorn in a thread on loopback) with a site
whose machines have reservations, for the boot services' tests; and what those tests do
on a test's network namespace: the boot services running against it (``running_boot``),
a DHCP client's NIC (``client_link``) and busybox's DHCP client (``udhcpc``)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import AddressBlock, Site
from contractor.services import auth
from contractor.services import tasks as task_service
from contractor.services.network import ip_at
from contractor.settings import Settings
from subcontractor.boot.backend import DhcpBackend
from subcontractor.boot.service import BootService
from subcontractor.boot.supervisor import tail
from subcontractor.client import Client
from subcontractor.config import AgentConfig, BootConfig, Config, ContractorConfig
from tests import factories
from tests.conftest import test_settings as settings_for
from tests.factories import CHEAP, make_block, make_reserved_machine, make_site, unique
from tests.rigs.netns import Netns
from tests.serving import serving_in_thread

T = TypeVar("T")


def new_mac() -> str:
    return factories.new_mac("52:54:00:b0")


@dataclass
class Machine:
    mac: str
    locator: str
    hostname: str
    config_uuid: str
    address: str


@dataclass
class Served:
    """Contractor on loopback, its site and tokens; ``add_machine`` commits a new one."""

    base: str
    site: str
    site_id: int
    block_id: int
    token: str  # a subcontractor token: the site, the boot module
    reader: str  # a user's API token
    writer: async_sessionmaker[AsyncSession]
    machines: list[Machine] = field(default_factory=list)

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with transaction(self.writer) as session:
            return await work(session)

    async def add_machine(self, mac: str | None = None, offset: int | None = None) -> Machine:
        async def work(session: AsyncSession) -> Machine:
            site = await session.get_one(Site, self.site_id)
            chosen = mac or new_mac()
            block = await session.get_one(AddressBlock, self.block_id)
            foundation, structure, address = await make_reserved_machine(
                session, site, block, chosen, offset=offset
            )
            return Machine(
                mac=chosen,
                locator=foundation.locator,
                hostname=structure.hostname,
                config_uuid=structure.config_uuid,
                address=str(ip_at(block, address.offset or 0)),
            )

        machine = await self.write(work)
        self.machines.append(machine)
        return machine

    def contractor(self, **more: Any) -> ContractorConfig:
        values: dict[str, Any] = {"url": self.base, "token": self.token, "site": self.site}
        return ContractorConfig(**{**values, **more})

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as http:
            answer = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.reader}"},
            )
        body: dict[str, Any] = answer.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


async def serve_contractor(
    tmp_path: Path,
    subnet: str,
    *,
    gateway_offset: int = 1,
    database_url: str | None = None,
    **more: Any,
) -> AsyncIterator[Served]:
    """Contractor on ``database_url`` (default: a new SQLite file) with a site whose block
    is ``subnet``."""
    if database_url is None:
        url = f"sqlite:///{tmp_path / 'contractor.sqlite3'}"
        migrate.upgrade(Settings(database_url=url))
        database_url = Settings(database_url=url).database_url
    url = database_url
    # SQLite: another client's commit wakes no poll, so look again often; PostgreSQL: only
    # the commit's NOTIFY wakes a poll in time
    look = 0.1 if url.startswith("sqlite") else 30.0
    settings = settings_for(url, boot_look_seconds=look, **more)
    engine = create_engine(settings)
    writer = create_session_factory(engine, writes=True)
    try:

        async def populate(session: AsyncSession) -> tuple[str, int, int, str, str]:
            site = await make_site(session, config_values={"dns_servers": ["198.18.0.53"]})
            block = await make_block(session, site, subnet, gateway_offset=gateway_offset)
            token = await task_service.create_subcontractor_token(
                session, name=unique("sub"), sites=[site.name], modules=["boot"]
            )
            user = await auth.create_user(session, username=unique("reader"), role="reader")
            reader = (await auth.create_token(session, user=user, hasher=CHEAP)).text
            return site.name, site.id, block.id, token.text, reader

        async with transaction(writer) as session:
            site, site_id, block_id, token, reader = await populate(session)
        with serving_in_thread(create_app(settings)) as base:
            yield Served(base, site, site_id, block_id, token, reader, writer)
    finally:
        await engine.dispose()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_contractor(tmp_path, "198.18.250.0/24"):
        yield served


@pytest.fixture
async def contractor(tmp_path: Path, netns: Netns) -> AsyncIterator[Served]:
    """Contractor whose site's block is the test's network (its module's ``netns``)."""
    async for served in serve_contractor(tmp_path, str(netns.network), gateway_offset=1):
        yield served


def boot_config(served: Served, netns: Netns, tmp_path: Path, **boot: Any) -> Config:
    """A subcontractor's configuration: the boot services on the host end of ``netns``
    (unless ``boot`` names other ``interfaces``), its journal in ``tmp_path``."""
    return Config(
        contractor=served.contractor(),
        agent=AgentConfig(journal_dir=tmp_path / "journal"),
        modules={},
        module_options={},
        boot=BootConfig(
            **{
                "enabled": True,
                "interfaces": [netns.host_if],
                "server_address": str(netns.host_address),
                **boot,
            }
        ),
    )


@contextlib.asynccontextmanager
async def running_boot(
    config: Config, *, backend: Callable[[BootService], DhcpBackend] | None = None
) -> AsyncIterator[BootService]:
    """The boot services of ``config`` running on this loop (with the DHCP backend
    ``backend`` makes, when given), stopped at the end."""
    client = Client(config.contractor)
    service = BootService(config, client)
    if backend is not None:
        service.backend = backend(service)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await client.aclose()


def client_link(netns: Netns, mac: str) -> str:
    """A veth inside the namespace, a port of its bridge, with ``mac``: a DHCP client's NIC."""
    name = f"c{secrets.token_hex(3)}"
    netns.run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    netns.run("ip", "link", "set", f"{name}p", "master", netns.bridge, "up")
    netns.run("ip", "link", "set", name, "address", mac, "up")
    return name


async def udhcpc(netns: Netns, link: str, log: Path | None = None) -> str:
    """busybox udhcpc's output for one lease on ``link`` (it must get one; the end of the
    server's ``log`` is shown when it does not)."""
    process = await asyncio.create_subprocess_exec(
        *netns.command("busybox", "udhcpc", "-i", link, "-n", "-q", "-f", "-t", "8",
                       "-T", "1", "-s", "/bin/true"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode(errors="replace")
    if process.returncode != 0 and log is not None:
        text += f"\n{log.name}:\n{tail(log, 4000)}"
    assert process.returncode == 0, text
    return text


async def until(what: str, check: Callable[[], object], seconds: float = 20) -> None:
    """Until ``check()`` (or the coroutine it returns) is true; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds}s")
