"""The boot data API, the ``/boot/<uuid>`` script and the DHCP pool mutations over real HTTP
on loopback: an app served by uvicorn in a thread (PostgreSQL and SQLite), and a real
`contractor serve` process for the change-to-agent latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import PXE, AddressBlock, Site, StructureBluePrint, utcnow
from contractor.services import auth, jobs
from contractor.services import blueprint as bp_service
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.conftest import test_settings as settings_for
from tests.factories import (
    CHEAP,
    make_block,
    make_reserved_machine,
    make_site,
    new_mac,
    unique,
)
from tests.serving import clean_env, contractor_serve, serving_in_thread

T = TypeVar("T")
BOOT = "/api/v1/subcontractor/boot"


@dataclass
class World:
    site: str
    site_id: int
    block_id: int
    token: str  # a subcontractor token for the site and the boot module
    other_site_token: str  # the same, for another site
    ipmi_token: str  # the site, but only the ipmi module
    operator: str  # a user's API token
    reader: str
    built_uuid: str  # built, PXE target set, no job
    installing_uuid: str  # not built, PXE target set
    bare_uuid: str  # not built, no PXE target
    macs: list[str]  # the three machines' MACs


async def _machine(
    session: AsyncSession,
    site: Site,
    block: AddressBlock,
    mac: str,
    *,
    pxe: PXE | None = None,
    built: bool = False,
) -> str:
    foundation, structure, _ = await make_reserved_machine(session, site, block, mac, pxe=pxe)
    if built:
        foundation.located_at = foundation.built_at = structure.built_at = utcnow()
        await session.flush()
    return structure.config_uuid


async def _populate(session: AsyncSession) -> World:
    site = await make_site(session, config_values={"dns_servers": ["10.20.0.53"]})
    other = await make_site(session)
    block = await make_block(session, site, "10.20.0.0/24", gateway_offset=1)
    pxe = await bp_service.create_pxe(
        session,
        name=unique("installer"),
        boot_script="kernel {{ __pxe_location }}vmlinuz host={{ _hostname }}",
        template="",
    )
    macs = [new_mac() for _ in range(3)]
    built = await _machine(session, site, block, macs[0], pxe=pxe, built=True)
    installing = await _machine(session, site, block, macs[1], pxe=pxe)
    bare = await _machine(session, site, block, macs[2])

    async def token(sites: list[str], modules: list[str]) -> str:
        made = await task_service.create_subcontractor_token(
            session, name=unique("sub"), sites=sites, modules=modules
        )
        return made.text

    async def user(role: str) -> str:
        row = await auth.create_user(session, username=unique(role), role=role)
        return (await auth.create_token(session, user=row, hasher=CHEAP)).text

    return World(
        site=site.name,
        site_id=site.id,
        block_id=block.id,
        token=await token([site.name], ["boot"]),
        other_site_token=await token([other.name], ["boot"]),
        ipmi_token=await token([site.name], ["ipmi"]),
        operator=await user("operator"),
        reader=await user("reader"),
        built_uuid=built,
        installing_uuid=installing,
        bare_uuid=bare,
        macs=macs,
    )


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgresql":
        url = make_pg_database("contractor_boot_http")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('boot') / 'contractor.sqlite3'}"
    migrate.upgrade(Settings(database_url=url))
    return Settings(database_url=url).database_url


@dataclass
class Served:
    base: str
    world: World
    writer: async_sessionmaker[AsyncSession]  # this test's own sessions: another client
    base_is_postgresql: bool

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with transaction(self.writer) as session:
            return await work(session)


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    # PostgreSQL: no look of its own for 30 s, so only the NOTIFY can wake a poll in time
    look = 30.0 if database_url.startswith("postgresql") else 1.0
    settings = settings_for(database_url, pxe_location="http://pxe/", boot_look_seconds=look)
    engine = create_engine(settings)
    writer = create_session_factory(engine, writes=True)
    try:
        world = await _in(writer, _populate)
        with serving_in_thread(create_app(settings)) as base:
            yield Served(base, world, writer, database_url.startswith("postgresql"))
    finally:
        await engine.dispose()


async def _in(sessions: async_sessionmaker[AsyncSession], work: Callable[..., Awaitable[T]]) -> T:
    async with transaction(sessions) as session:
        return await work(session)


@pytest.fixture
async def agent(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {served.world.token}"}
    async with httpx.AsyncClient(base_url=served.base, headers=headers, timeout=30) as client:
        yield client


async def _new_reservation(session: AsyncSession, world: World, mac: str) -> str:
    """A machine with MAC ``mac`` gets an address: a new reservation; its hostname."""
    site = await session.get_one(Site, world.site_id)
    block = await session.get_one(AddressBlock, world.block_id)
    _, structure, _ = await make_reserved_machine(session, site, block, mac)
    return structure.hostname


# -- the boot data API ----------------------------------------------------------------------


async def test_a_snapshot_then_a_long_poll_woken_by_a_new_reservation(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    snapshot = await agent.post(BOOT, json={"site": world.site})
    assert snapshot.status_code == 200, snapshot.text
    body = snapshot.json()
    assert body["snapshot"] is True
    assert body["cursor"] is None
    assert sorted(r["mac"] for r in body["reservations"]) == sorted(world.macs)
    assert {r["dns_servers"][0] for r in body["reservations"]} == {"10.20.0.53"}
    version = body["version"]
    # nothing new: a poll with no wait answers at once, empty, at the same version
    idle = (await agent.post(BOOT, json={"site": world.site, "since": version})).json()
    assert (idle["reservations"], idle["removed"], idle["version"]) == ([], [], version)

    poll = asyncio.create_task(
        agent.post(BOOT, json={"site": world.site, "since": version, "wait": 20})
    )
    await asyncio.sleep(0.2)
    assert not poll.done(), "the poll waits for a change"
    mac = new_mac()
    hostname = await served.write(lambda s: _new_reservation(s, world, mac))
    committed = time.monotonic()
    answer = await poll
    latency = time.monotonic() - committed
    assert answer.status_code == 200, answer.text
    changes = answer.json()
    assert [r["hostname"] for r in changes["reservations"]] == [hostname]
    assert changes["reservations"][0]["mac"] == mac
    assert changes["version"] == version + 1
    assert changes["snapshot"] is False
    # PostgreSQL: woken by the commit's NOTIFY; SQLite has none across engines (this test's
    # writer is another client), so the poll's own look, every second, finds it
    bound = 1.0 if served.base_is_postgresql else 2.0
    assert latency < bound, f"the new reservation reached the agent after {latency:.2f} s"


async def test_a_long_poll_answers_empty_when_its_wait_ends(
    served: Served, agent: httpx.AsyncClient
) -> None:
    version = (await agent.post(BOOT, json={"site": served.world.site})).json()["version"]
    started = time.monotonic()
    answer = await agent.post(BOOT, json={"site": served.world.site, "since": version, "wait": 1})
    assert 0.9 < time.monotonic() - started < 5
    assert answer.json()["reservations"] == []


async def test_a_snapshot_in_pages_and_changes_by_cursor(
    served: Served, agent: httpx.AsyncClient
) -> None:
    site = served.world.site
    first = (await agent.post(BOOT, json={"site": site, "limit": 2})).json()
    assert len(first["reservations"]) == 2
    assert first["cursor"] is not None
    rest = (await agent.post(BOOT, json={"site": site, "cursor": first["cursor"]})).json()
    assert len(rest["reservations"]) == 1
    assert rest["cursor"] is None
    assert rest["version"] == first["version"]
    ids = {r["id"] for r in first["reservations"] + rest["reservations"]}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"since": 1, "cursor": "s.1.pool:1"}, "cursor", "give since or cursor, not both"),
        ({"cursor": "nonsense"}, "cursor", "String should match pattern"),
        ({"cursor": "c.1.two.pool:1"}, "cursor", "String should match pattern"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 5000}, "limit", "less than or equal to 2000"),
        ({"since": -1}, "since", "greater than or equal to 0"),
        ({"colour": "red"}, "colour", "unknown key colour"),
        ({"site": None}, "site", "Input should be a valid string"),
    ],
)
async def test_bad_bodies_are_refused_naming_the_field(
    served: Served, agent: httpx.AsyncClient, body: dict[str, Any], field: str, words: str
) -> None:
    answer = await agent.post(BOOT, json={"site": served.world.site, **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert words in error["message"]


async def test_wrong_tokens_and_sites_outside_them_are_refused(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    site = {"site": world.site}
    assert (await agent.post(BOOT, json=site, headers={"Authorization": ""})).status_code == 401
    forged = {"Authorization": "Bearer sct_0123456789abcdef.notthesecretatallnotatall"}
    assert (await agent.post(BOOT, json=site, headers=forged)).status_code == 401
    other = {"Authorization": f"Bearer {world.other_site_token}"}
    refused = await agent.post(BOOT, json=site, headers=other)
    assert refused.status_code == 403
    assert (
        f"may not read the boot data of site {world.site!r}" in refused.json()["error"]["message"]
    )
    ipmi = {"Authorization": f"Bearer {world.ipmi_token}"}
    refused = await agent.post(BOOT, json=site, headers=ipmi)
    assert refused.status_code == 403
    assert "does not serve the 'boot' module" in refused.json()["error"]["message"]
    # a user's API token is no subcontractor token
    user = {"Authorization": f"Bearer {world.operator}"}
    assert (await agent.post(BOOT, json=site, headers=user)).status_code == 401


async def test_a_version_not_kept_is_gone(served: Served, agent: httpx.AsyncClient) -> None:
    version = (await agent.post(BOOT, json={"site": served.world.site})).json()["version"]
    gone = await agent.post(BOOT, json={"site": served.world.site, "since": version + 100})
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "PRUNED"
    assert "take a snapshot" in gone.json()["error"]["message"]


async def test_the_task_api_document_describes_boot(agent: httpx.AsyncClient) -> None:
    document = (await agent.get("/api/v1/subcontractor/openapi.json")).json()
    assert "410" in document["paths"]["/boot"]["post"]["responses"]
    assert "since" in document["components"]["schemas"]["BootRequest"]["properties"]


# -- /boot/<config uuid> ----------------------------------------------------------------------


async def test_a_built_machine_with_no_job_boots_its_disk(
    served: Served, agent: httpx.AsyncClient
) -> None:
    answer = await agent.get(f"/boot/{served.world.built_uuid}")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    script = answer.text
    assert script.startswith("#!ipxe\n")
    assert "is built and no job of it runs (its PXE target" in script
    assert "sanboot --no-describe --drive 0x80 || exit 1" in script
    assert "iseq ${platform} efi && exit 1 ||" in script
    assert "kernel" not in script


async def test_a_machine_not_built_boots_its_pxe_target_and_one_with_none_its_disk(
    served: Served, agent: httpx.AsyncClient
) -> None:
    installing = (await agent.get(f"/boot/{served.world.installing_uuid}")).text
    assert installing.startswith("#!ipxe\n")
    assert "is not built yet: it boots" in installing
    assert "\nkernel http://pxe/vmlinuz host=" in installing
    bare = (await agent.get(f"/boot/{served.world.bare_uuid}")).text
    assert "has no PXE target set: booting the local disk" in bare
    assert "sanboot" in bare


async def test_a_job_on_a_built_machine_boots_its_pxe_target(
    served: Served, agent: httpx.AsyncClient
) -> None:
    uuid = served.world.built_uuid

    async def start_job(session: AsyncSession) -> int:
        from contractor.services.config import structure_by_config_uuid

        structure = await structure_by_config_uuid(session, uuid)
        script = await bp_service.create_script(session, name=unique("wipe"), source="pass\n")
        blueprint = await session.get_one(StructureBluePrint, structure.blueprint_id)
        await bp_service.link_script(session, blueprint=blueprint, role="wipe", script=script)
        job = await jobs.create_job(session, target=structure, script_name="wipe", creator="al")
        return job.id

    job_id = await served.write(start_job)
    script = (await agent.get(f"/boot/{uuid}")).text
    assert f"job {job_id} (wipe) of structure" in script
    assert "\nkernel http://pxe/vmlinuz" in script


@pytest.mark.parametrize("uuid", ["0" * 36, "not-a-uuid", "00000000-0000-4000-8000-000000000000"])
async def test_an_unknown_config_uuid_is_404(agent: httpx.AsyncClient, uuid: str) -> None:
    answer = await agent.get(f"/boot/{uuid}")
    assert answer.status_code == 404
    assert answer.json()["error"]["field"] == "config_uuid"
    assert answer.headers["cache-control"] == "no-store"


# -- DHCP pools through GraphQL -------------------------------------------------------------

CREATE = """mutation ($block: Int!, $first: BigInt!, $last: BigInt!) {
  createDhcpPool(addressBlock: $block, firstOffset: $first, lastOffset: $last,
                 description: "discovery") {
    __typename
    ... on DhcpPool { id start end addressBlock { name } }
    ... on Error { message field }
  }
}"""


async def _graphql(
    agent: httpx.AsyncClient, token: str, document: str, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    answer = await agent.post(
        "/graphql", json={"query": document, "variables": variables}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_operators_create_and_delete_pools_that_reach_the_agent(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    version = (await agent.post(BOOT, json={"site": world.site})).json()["version"]
    created = await _graphql(
        agent, world.operator, CREATE, block=world.block_id, first=100, last=149
    )
    pool = created["data"]["createDhcpPool"]
    assert pool["__typename"] == "DhcpPool"
    assert (pool["start"], pool["end"]) == ("10.20.0.100", "10.20.0.149")
    changes = (await agent.post(BOOT, json={"site": world.site, "since": version})).json()
    (served_pool,) = changes["pools"]
    assert served_pool["id"] == f"pool:{pool['id']}"
    assert (served_pool["start"], served_pool["end"]) == ("10.20.0.100", "10.20.0.149")
    listed = await _graphql(
        agent,
        world.reader,
        "query ($s: String) { dhcpPools(site: $s) { nodes { id } } }",
        s=world.site,
    )
    assert listed["data"]["dhcpPools"]["nodes"] == [{"id": pool["id"]}]
    deleted = await _graphql(
        agent,
        world.operator,
        "mutation ($id: Int!) { deleteDhcpPool(id: $id) { __typename } }",
        id=pool["id"],
    )
    assert deleted["data"]["deleteDhcpPool"]["__typename"] == "Deleted"
    gone = (await agent.post(BOOT, json={"site": world.site, "since": changes["version"]})).json()
    assert gone["removed"] == [f"pool:{pool['id']}"]


async def test_pool_refusals_over_graphql_name_both_sides_and_change_nothing(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    version = (await agent.post(BOOT, json={"site": world.site})).json()["version"]
    # the three machines hold offsets 2, 3 and 4 (1 is the gateway)
    refused = await _graphql(agent, world.operator, CREATE, block=world.block_id, first=3, last=9)
    error = refused["data"]["createDhcpPool"]
    assert error["__typename"] == "ConflictError"
    assert "the DHCP pool 10.20.0.3-10.20.0.9" in error["message"]
    assert "10.20.0.3 (structure " in error["message"]
    denied = await _graphql(agent, world.reader, CREATE, block=world.block_id, first=50, last=60)
    assert denied["data"]["createDhcpPool"]["__typename"] == "ForbiddenError"
    missing = await _graphql(agent, world.operator, CREATE, block=999999, first=50, last=60)
    assert missing["data"]["createDhcpPool"]["__typename"] == "NotFoundError"
    unchanged = (await agent.post(BOOT, json={"site": world.site, "since": version})).json()
    assert unchanged["pools"] == []
    assert unchanged["version"] == version


# -- a real `contractor serve`: the change-to-agent latency across processes ----------------


def test_a_new_reservation_reaches_an_agent_of_contractor_serve_within_a_second(
    tmp_path: Path,
) -> None:
    url = Settings(database_url=make_pg_database("contractor_boot_serve")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)

    async def run() -> list[float]:
        engine = create_engine(settings)
        try:
            writer = create_session_factory(engine, writes=True)
            world = await _in(writer, _populate)
            # the poll's own look only after 30 s: what wakes it is the commit's NOTIFY
            env = clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_BOOT_LOOK_SECONDS="30")
            latencies: list[float] = []
            with contractor_serve(env, tmp_path) as base:
                headers = {"Authorization": f"Bearer {world.token}"}
                async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                    answer = await http.post(BOOT, json={"site": world.site})
                    version = answer.json()["version"]
                    for number in range(3):
                        poll = asyncio.create_task(
                            http.post(BOOT, json={"site": world.site, "since": version, "wait": 20})
                        )
                        await asyncio.sleep(0.2)
                        mac = f"52:54:00:ff:00:{number:02x}"
                        await _in(writer, lambda s, mac=mac: _new_reservation(s, world, mac))
                        committed = time.monotonic()
                        changes = (await poll).json()
                        latencies.append(time.monotonic() - committed)
                        assert [r["mac"] for r in changes["reservations"]] == [mac]
                        version = changes["version"]
            return latencies
        finally:
            await engine.dispose()

    latencies = asyncio.run(run())
    print(f"change-to-agent latency through contractor serve: {latencies}")  # noqa: T201
    assert max(latencies) < 1.0, f"latencies {latencies}"
