"""Discovery over real HTTP on loopback against real PostgreSQL: the discovery boot script,
reports recorded, matched (by MAC, by serial), located or refused by the fingerprint,
ambiguity, the flood bounds and the token's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.metrics import exposition
from contractor.models import (
    DiscoveredHardware,
    Event,
    Foundation,
    FoundationBluePrint,
    RealNetworkInterface,
    Site,
)
from contractor.services import interfaces
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests import factories
from tests.conftest import make_pg_database
from tests.conftest import test_settings as settings_for
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
    unique,
)
from tests.metrics_scrape import parse, value
from tests.serving import serving_in_thread

REPORT = "/api/v1/subcontractor/discovery"


def new_mac() -> str:
    return factories.new_mac("52:54:01")


def report(mac: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mac": mac,
        "macs": [mac],
        "manufacturer": "QEMU",
        "product": "Standard PC (i440FX + PIIX, 1996)",
        "serial": None,
        "uuid": None,
        "cpu_count": 2,
        "memory_mib": 2048,
        "disks": [{"name": "vda", "size_bytes": 20 * 10**9}],
        "pci": [{"vendor": "8086", "device": "100e", "class": "0200"}],
    }
    return {**body, **fields}


@dataclass
class World:
    site: str
    site_id: int
    token: str
    other_site_token: str
    ipmi_token: str
    fbp: int  # a blueprint without requirements


@pytest.fixture(scope="module")
def database_url() -> str:
    url = make_pg_database("contractor_discovery_http")
    migrate.upgrade(Settings(database_url=url))
    return Settings(database_url=url).database_url


@dataclass
class Served:
    base: str
    world: World
    writer: async_sessionmaker[AsyncSession]

    async def foundation(
        self, *, macs: list[str | None] | None = None, locator: str | None = None, **bp: Any
    ) -> str:
        """A planned Foundation with interfaces of these MACs (the first provisioning)."""
        async with transaction(self.writer) as session:
            site = await session.get_one(Site, self.world.site_id)
            blueprint = await make_foundation_blueprint(session, **bp)
            foundation = await make_foundation(session, site, blueprint, locator=locator)
            for index, mac in enumerate(macs or [None]):
                await interfaces.add_interface(
                    session,
                    foundation=foundation,
                    physical_location=f"eth{index}",
                    mac=mac,
                    is_provisioning=index == 0,
                )
            return foundation.locator

    async def state(self, locator: str) -> tuple[str, dict[str, Any] | None, list[str | None]]:
        async with transaction(self.writer) as session:
            foundation = (
                await session.execute(select(Foundation).where(Foundation.locator == locator))
            ).scalar_one()
            macs = (
                await session.execute(
                    select(RealNetworkInterface.mac)
                    .where(RealNetworkInterface.foundation_id == foundation.id)
                    .order_by(RealNetworkInterface.physical_location)
                )
            ).scalars()
            return foundation.state, foundation.id_map, list(macs)


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    settings = settings_for(database_url, discovery_reports_per_minute=1000)
    engine = create_engine(settings)
    writer = create_session_factory(engine, writes=True)
    try:
        async with transaction(writer) as session:
            site = await make_site(session)
            other = await make_site(session)

            async def token(sites: list[str], modules: list[str]) -> str:
                made = await task_service.create_subcontractor_token(
                    session, name=unique("sub"), sites=sites, modules=modules
                )
                return made.text

            fbp = await make_foundation_blueprint(session)
            world = World(
                site=site.name,
                site_id=site.id,
                token=await token([site.name], ["boot"]),
                other_site_token=await token([other.name], ["boot"]),
                ipmi_token=await token([site.name], ["ipmi"]),
                fbp=fbp.id,
            )
        with serving_in_thread(create_app(settings)) as base:
            yield Served(base, world, writer)
    finally:
        await engine.dispose()


@pytest.fixture
async def agent(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {served.world.token}"}
    async with httpx.AsyncClient(base_url=served.base, headers=headers, timeout=30) as client:
        yield client


async def post(agent: httpx.AsyncClient, served: Served, body: dict[str, Any]) -> httpx.Response:
    return await agent.post(REPORT, json={"site": served.world.site, "report": body})


# -- the discovery script ---------------------------------------------------------------------


async def test_an_unknown_mac_gets_the_discovery_script(
    served: Served, agent: httpx.AsyncClient
) -> None:
    mac = new_mac()
    answer = await agent.get(
        "/boot/discovery", params={"mac": mac.upper().replace(":", "-"), "site": served.world.site}
    )
    assert answer.status_code == 200, answer.text
    text = answer.text
    assert text.startswith("#!ipxe\n")
    assert f"is not known in site {served.world.site!r}" in text
    assert (
        f"kernel /files/discovery/vmlinuz initrd=initrd contractor.discovery=1 contractor.mac={mac}"
        in text
    )
    assert "initrd --name initrd /files/discovery/initrd" in text
    assert answer.headers["cache-control"] == "no-store"


async def test_a_known_mac_gets_its_own_boot_answer(
    served: Served, agent: httpx.AsyncClient
) -> None:
    mac = new_mac()
    locator = await served.foundation(macs=[mac])
    async with transaction(served.writer) as session:
        foundation = (
            await session.execute(select(Foundation).where(Foundation.locator == locator))
        ).scalar_one()
        site = await session.get_one(Site, served.world.site_id)
        fbp = await session.get_one(FoundationBluePrint, foundation.blueprint_id)
        sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
        await make_structure(session, site, foundation, sbp)
    answer = await agent.get("/boot/discovery", params={"mac": mac, "site": served.world.site})
    assert answer.status_code == 200, answer.text
    assert f"echo Contractor: {mac} is known: foundation {locator!r}" in answer.text
    assert "has no PXE target set" in answer.text  # /boot/<uuid>'s decision: the local disk
    assert "/files/discovery" not in answer.text


async def test_the_script_refuses_wrong_tokens_and_bad_macs(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    params = {"mac": new_mac(), "site": world.site}
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as anonymous:
        assert (await anonymous.get("/boot/discovery", params=params)).status_code == 401
        for token in (world.other_site_token, world.ipmi_token):
            headers = {"Authorization": f"Bearer {token}"}
            refused = await anonymous.get("/boot/discovery", params=params, headers=headers)
            assert refused.status_code == 403, refused.text
        wrong = await anonymous.get(
            "/boot/discovery", params=params, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
    bad = await agent.get("/boot/discovery", params={"mac": "zz", "site": world.site})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "mac"


# -- reports --------------------------------------------------------------------------------


async def test_a_report_is_recorded_and_a_second_updates_it(
    served: Served, agent: httpx.AsyncClient
) -> None:
    mac = new_mac()
    first = await post(agent, served, report(mac))
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["matched"], body["located"]) == (None, False)
    assert body["problems"] == ["no foundation of the site has one of its MACs or its serial"]
    again = await post(agent, served, report(mac, cpu_count=4))
    assert again.status_code == 200
    assert again.json()["discovered"] == body["discovered"]
    async with transaction(served.writer) as session:
        row = await session.get_one(DiscoveredHardware, body["discovered"])
        assert (row.reports, row.report["cpu_count"], row.site_id) == (2, 4, served.world.site_id)
        kinds = (
            await session.execute(
                select(Event.kind).where(
                    Event.object_type == "discovered_hardware", Event.object_id == row.id
                )
            )
        ).scalars()
        assert list(kinds) == ["discovered"]


async def test_reports_are_counted_in_metrics_by_outcome(
    served: Served, agent: httpx.AsyncClient
) -> None:
    before = parse(exposition().decode())
    assert (await post(agent, served, report(new_mac()))).status_code == 201
    boot_mac, second = new_mac(), new_mac()
    await served.foundation(macs=[None, second], min_cpu_count=2)
    located = await post(agent, served, report(boot_mac, macs=[boot_mac, second]))
    assert located.json()["located"] is True, located.text
    after = parse(exposition().decode())

    def moved(outcome: str) -> float:
        name = "contractor_discovery_reports_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (moved("unmatched"), moved("located"), moved("throttled")) == (1, 1, 0)


async def test_matched_by_any_mac_and_located_with_its_facts(
    served: Served, agent: httpx.AsyncClient
) -> None:
    boot_mac, second = new_mac(), new_mac()
    locator = await served.foundation(macs=[None, second], min_cpu_count=2)
    answer = await post(agent, served, report(boot_mac, macs=[boot_mac, second], serial="S-1"))
    assert answer.status_code == 201, answer.text
    assert answer.json() | {"discovered": 0} == {
        "discovered": 0,
        "matched": locator,
        "located": True,
        "problems": [],
    }
    state, id_map, macs = await served.state(locator)
    assert state == "located"
    assert macs == [boot_mac, second]  # the boot MAC recorded on the provisioning interface
    assert id_map is not None
    assert (id_map["serial"], id_map["cpu_count"], id_map["memory_mb"]) == ("S-1", 2, 2048)
    assert id_map["pci_devices"] == ["8086:100e"]
    async with transaction(served.writer) as session:
        kinds = (
            await session.execute(
                select(Event.kind, Event.payload)
                .where(
                    Event.object_type == "discovered_hardware",
                    Event.object_id == answer.json()["discovered"],
                )
                .order_by(Event.id)
            )
        ).all()
    assert [k for k, _ in kinds] == ["discovered", "matched", "located"]
    assert kinds[2][1]["foundation"] == locator


async def test_matched_by_serial_as_locator(served: Served, agent: httpx.AsyncClient) -> None:
    serial = unique("SER")
    locator = await served.foundation(locator=serial)
    mac = new_mac()
    answer = (await post(agent, served, report(mac, serial=serial))).json()
    assert (answer["matched"], answer["located"]) == (locator, True)
    assert (await served.state(locator))[2] == [mac]


async def test_a_fingerprint_mismatch_names_each_unmet_requirement(
    served: Served, agent: httpx.AsyncClient
) -> None:
    mac = new_mac()
    locator = await served.foundation(
        macs=[mac],
        min_cpu_count=8,
        min_memory_mb=65536,
        required_pci_devices=["15b3:1017"],
        required_disks_gb=[100, 100],
    )
    answer = await post(agent, served, report(mac))
    body = answer.json()
    assert (body["matched"], body["located"]) == (locator, False)
    problems = "\n".join(body["problems"])
    assert len(body["problems"]) == 4, problems
    assert "needs at least 8 CPUs, has 2" in problems
    assert "needs at least 65536 MB of memory, has 2048" in problems
    assert "needs PCI device 15b3:1017, which is missing" in problems
    assert "needs 2 disks of at least [100, 100] GB" in problems
    state, id_map, _ = await served.state(locator)
    assert (state, id_map) == ("planned", None)  # nothing changed on the Foundation


async def test_two_candidates_are_ambiguous(served: Served, agent: httpx.AsyncClient) -> None:
    first_mac, second_mac = new_mac(), new_mac()
    one = await served.foundation(macs=[first_mac])
    two = await served.foundation(macs=[second_mac])
    answer = await post(agent, served, report(first_mac, macs=[first_mac, second_mac]))
    body = answer.json()
    assert (body["matched"], body["located"]) == (None, False)
    assert one in body["problems"][0]
    assert two in body["problems"][0]
    assert (await served.state(one))[0] == (await served.state(two))[0] == "planned"


async def test_reports_refuse_wrong_tokens(served: Served) -> None:
    world = served.world
    body = {"site": world.site, "report": report(new_mac())}
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        assert (await client.post(REPORT, json=body)).status_code == 401
        for token in (world.other_site_token, world.ipmi_token):
            refused = await client.post(
                REPORT, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 403, refused.text
    async with transaction(served.writer) as session:
        assert (
            await session.execute(
                select(DiscoveredHardware).where(
                    DiscoveredHardware.mac == body["report"]["mac"]  # type: ignore[index]
                )
            )
        ).first() is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mac": "nonsense"}, "report.mac"),
        ({"macs": []}, "report.macs"),
        ({"cpu_count": 0}, "report.cpu_count"),
        ({"cpu_count": True}, "report.cpu_count"),
        ({"memory_mib": "1"}, "report.memory_mib"),
        ({"serial": "x" * 201}, "report.serial"),
        (
            {"disks": [{"name": "a", "size_bytes": 1}] * 2 + [{"name": "c", "size_bytes": -1}]},
            "report.disks[2].size_bytes",
        ),
        ({"pci": [{"vendor": "80860", "device": "100e"}]}, "report.pci[0].vendor"),
        ({"extra": 1}, "report.extra"),
    ],
)
async def test_a_malformed_report_is_refused_naming_the_field(
    served: Served, agent: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    mac = new_mac()
    answer = await post(agent, served, report(mac) | change)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    async with transaction(served.writer) as session:
        assert (
            await session.execute(select(DiscoveredHardware).where(DiscoveredHardware.mac == mac))
        ).first() is None


async def test_a_report_over_64_kib_is_refused(served: Served, agent: httpx.AsyncClient) -> None:
    answer = await post(agent, served, report(new_mac(), product="x" * 70000))
    assert answer.status_code == 413, answer.text


async def test_the_flood_bounds(database_url: str) -> None:
    settings = settings_for(database_url, discovery_reports_per_minute=3, discovery_max_undecided=2)
    engine = create_engine(settings)
    writer = create_session_factory(engine, writes=True)
    try:
        async with transaction(writer) as session:
            site = await make_site(session)
            token = (
                await task_service.create_subcontractor_token(
                    session, name=unique("sub"), sites=[site.name], modules=["boot"]
                )
            ).text
        with serving_in_thread(create_app(settings)) as base:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
                macs = [new_mac() for _ in range(3)]
                codes = []
                for mac in macs:
                    sent = await client.post(
                        REPORT, json={"site": site.name, "report": report(mac)}
                    )
                    codes.append(sent.status_code)
                    last = sent
                assert codes == [201, 201, 429]  # the third new MAC: two undecided already
                assert "discovery_max_undecided" in last.json()["error"]["message"]
                assert int(last.headers["retry-after"]) >= 1
                again = await client.post(
                    REPORT, json={"site": site.name, "report": report(macs[0])}
                )
                assert again.status_code == 429  # the fourth report within the minute
                assert "discovery_reports_per_minute" in again.json()["error"]["message"]
                assert 1 <= int(again.headers["retry-after"]) <= 60
    finally:
        await engine.dispose()


async def test_graphql_lists_matches_by_hand_and_forgets(
    served: Served, agent: httpx.AsyncClient
) -> None:
    from argon2 import PasswordHasher

    from contractor.services import auth

    async with transaction(served.writer) as session:
        tokens = {}
        for role in ("reader", "operator"):
            user = await auth.create_user(session, username=unique(role), role=role)
            made = await auth.create_token(
                session, user=user, hasher=PasswordHasher(memory_cost=64, time_cost=1)
            )
            tokens[role] = made.text

    async def gql(document: str, role: str = "operator", **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
            answer = await client.post(
                "/graphql",
                json={"query": document, "variables": variables},
                headers={"Authorization": f"Bearer {tokens[role]}"},
            )
        body: dict[str, Any] = answer.json()
        return body

    mac, serial = new_mac(), unique("HAND")
    discovered = (await post(agent, served, report(mac, serial=serial))).json()["discovered"]
    locator = await served.foundation()
    listed = await gql(
        "query ($s: String, $m: String) { discoveredHardware(site: $s, mac: $m, matched: false)"
        " { nodes { id mac serial matched located problems facts site } } }",
        "reader",
        s=served.world.site,
        m=mac.upper(),
    )
    nodes = listed["data"]["discoveredHardware"]["nodes"]
    assert [(n["id"], n["serial"], n["matched"], n["site"]) for n in nodes] == [
        (discovered, serial, None, served.world.site)
    ]
    assert nodes[0]["facts"]["cpu_count"] == 2
    by_serial = await gql(
        "query ($s: String) { discoveredHardware(serial: $s) { nodes { id } } }", "reader", s=serial
    )
    assert by_serial["data"]["discoveredHardware"]["nodes"] == [{"id": discovered}]
    match = (
        "mutation ($id: Int!, $f: String!) { matchDiscoveredHardware(id: $id, foundation: $f) "
        "{ __typename ... on DiscoveredHardware { matched located problems } } }"
    )
    refused = await gql(match, "reader", id=discovered, f=locator)
    assert refused["data"]["matchDiscoveredHardware"] == {"__typename": "ForbiddenError"}
    matched = (await gql(match, id=discovered, f=locator))["data"]["matchDiscoveredHardware"]
    assert matched == {
        "__typename": "DiscoveredHardware",
        "matched": locator,
        "located": True,
        "problems": [],
    }
    assert (await served.state(locator))[0] == "located"
    one = await gql(
        "query ($id: Int!) { discoveredMachine(id: $id) { matched } }", "reader", id=discovered
    )
    assert one["data"]["discoveredMachine"] == {"matched": locator}
    forgot = await gql(
        "mutation ($id: Int!) { forgetDiscoveredHardware(id: $id) { __typename } }", id=discovered
    )
    assert "errors" not in forgot, forgot
    gone = await gql(
        "query ($id: Int!) { discoveredMachine(id: $id) { id } }", "reader", id=discovered
    )
    assert gone["data"]["discoveredMachine"] is None
