# ruff: noqa: E501  (GraphQL documents read best on one line)
"""The inventory graph over GraphQL: types, filters, keyset pages, union errors, statement
counts, the inventory questions, limits and masking."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.db import transaction
from contractor.services import blueprint as bps
from contractor.services import building, network
from contractor.services import site as sites
from tests.schema.conftest import Client


async def build_inventory(client: Client, hosts: int, *, prefix: str = "web") -> dict[str, Any]:
    """A site tree, blueprints with parents, foundations with interfaces, structures with
    addresses, a complex and a dependency."""
    async with transaction(client.writer_sessions) as session:
        existing = {s.name for s in (await session.execute(sites.Site.__table__.select())).all()}  # type: ignore[attr-defined]
        if "world" not in existing:
            world = await sites.create_site(session, name="world")
            region = await sites.create_site(session, name="eu", parent=world)
            await sites.create_site(session, name="dc1", parent=region)
            metal = await bps.create_foundation_blueprint(
                session, name="metal", foundation_types=["manual", "simulated"]
            )
            base = await bps.create_structure_blueprint(
                session, name="linux", foundation_blueprints=[metal]
            )
            await bps.create_structure_blueprint(session, name="web", parents=[base])
            dc1 = await sites.get_site(session, "dc1")
            await network.create_network(session, site=dc1, name="prov")
            await network.create_address_block(
                session, site=dc1, name="prov", subnet="10.1.0.0/16", gateway_offset=1
            )
        dc1 = await sites.get_site(session, "dc1")
        metal = await bps.get_foundation_blueprint(session, "metal")
        web = await bps.get_structure_blueprint(session, "web")
        block = await network.get_address_block(session, dc1, "prov")
        prov = await network.get_network(session, dc1, "prov")
        made = []
        for index in range(hosts):
            foundation = await building.create_foundation(
                session,
                locator=f"{prefix}-node{index:04d}",
                site=dc1,
                blueprint=metal,
                type="manual" if index % 2 else "simulated",
            )
            await building.add_interface(
                session,
                foundation=foundation,
                physical_location="eth0",
                is_provisioning=True,
                network=prov,
            )
            await building.add_interface(session, foundation=foundation, physical_location="eth1")
            structure = await building.create_structure(
                session,
                hostname=f"{prefix}{index:04d}",
                site=dc1,
                blueprint=web,
                foundation=foundation,
            )
            await network.next_address(
                session, block=block, structure=structure, interface_name="eth0", is_primary=True
            )
            made.append(structure.id)
        return {"structures": made}


def queries(statements: list[str]) -> list[str]:
    """The statements that read data (SQLite's explicit BEGINs are transaction framing)."""
    return [s for s in statements if s.split()[0].upper() not in ("BEGIN", "PRAGMA")]


PAGE = """
query Page($first: Int, $after: String) {
  structures(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      hostname state
      site { name parent { name } }
      blueprint { name parents { name } }
      foundation { locator type state interfaces { physicalLocation mac network { name } } }
      addresses { interfaceName isPrimary ipAddress addressBlock { cidr } }
    } }
  }
}
"""


async def test_nested_page_statement_count_does_not_grow_with_rows(client: Client) -> None:
    await build_inventory(client, 5, prefix="a")
    await client.data(PAGE, {"first": 1000}, role="reader")  # connection set-up queries
    client.statements.clear()
    small = await client.data(PAGE, {"first": 1000}, role="reader")
    small_count = len(queries(client.statements))
    await build_inventory(client, 40, prefix="b")
    client.statements.clear()
    large = await client.data(PAGE, {"first": 1000}, role="reader")
    assert len(large["structures"]["edges"]) == 45
    assert len(queries(client.statements)) == small_count, client.statements
    assert small_count <= 13  # the page, its count, and one batch per relationship
    node = small["structures"]["edges"][0]["node"]
    assert node["site"] == {"name": "dc1", "parent": {"name": "eu"}}
    assert node["blueprint"] == {"name": "web", "parents": [{"name": "linux"}]}
    assert node["addresses"][0]["ipAddress"].startswith("10.1.0.")
    assert {i["physicalLocation"] for i in node["foundation"]["interfaces"]} == {"eth0", "eth1"}


async def test_keyset_pages_cover_everything_once(client: Client) -> None:
    await build_inventory(client, 7)
    seen: list[str] = []
    after = None
    while True:
        page = (await client.data(PAGE, {"first": 3, "after": after}, role="reader"))["structures"]
        seen += [e["node"]["hostname"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 7
    bad = await client.query(PAGE, {"first": 3, "after": "not-a-cursor"}, role="reader")
    assert bad["errors"][0]["message"] == "after is not a cursor this list handed out"
    bad = await client.query(PAGE, {"first": 5000}, role="reader")
    assert bad["errors"][0]["message"] == "first must be from 0 to 1000"


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ('{hostname: "web000*"}', 6),
        ('{site: {name: "world", includeDescendants: true}}', 6),
        ('{site: {name: "world"}}', 0),
        ('{blueprint: {name: "linux"}}', 0),
        ('{blueprint: {name: "linux", includeDescendants: true}}', 6),
        ("{state: [PLANNED]}", 6),
        ("{state: [BUILT]}", 0),
        ('{foundationType: ["manual"]}', 3),
    ],
)
async def test_structure_filters(client: Client, filter: str, expected: int) -> None:
    await build_inventory(client, 6)
    data = await client.data(f"{{ structures(filter: {filter}) {{ totalCount }} }}", role="reader")
    assert data["structures"]["totalCount"] == expected


async def test_foundation_filters_and_counts(client: Client) -> None:
    await build_inventory(client, 6)
    data = await client.data(
        '{ foundations(filter: {type: ["simulated"], state: [PLANNED], locator: "web-*"}) '
        "{ totalCount } }",
        role="reader",
    )
    assert data["foundations"]["totalCount"] == 3
    counts = await client.data(
        "{ foundationCounts(groupBy: [TYPE, STATE]) { type state site count } "
        "  structureCounts(groupBy: [SITE, BLUEPRINT]) { site blueprint count } }",
        role="reader",
    )
    assert counts["foundationCounts"] == [
        {"type": "manual", "state": "planned", "site": None, "count": 3},
        {"type": "simulated", "state": "planned", "site": None, "count": 3},
    ]
    assert counts["structureCounts"] == [{"site": "dc1", "blueprint": "web", "count": 6}]
    bad = await client.query(
        '{ foundations(filter: {site: {name: "nowhere"}}) { totalCount } }', role="reader"
    )
    assert bad["errors"][0]["message"] == "site 'nowhere' does not exist"


async def test_impact_follows_every_kind_of_link(client: Client) -> None:
    made = (await build_inventory(client, 4))["structures"]
    async with transaction(client.writer_sessions) as session:
        db, app1, app2, spare = [await building.get_structure_by_id(session, i) for i in made]
        cluster = await building.create_complex(
            session, name="cluster", site=await sites.get_site(session, "dc1")
        )
        await building.add_complex_member(session, cluster, app1)
        app2_foundation = await session.get_one(building.Foundation, app2.foundation_id)
        dependency = await building.create_dependency(
            session, structure=db, foundation=app2_foundation
        )
        await building.create_dependency(session, dependency=dependency)
    data = await client.data(
        '{ impact(of: {foundation: "web-node0000"}) { kind name path } }', role="reader"
    )
    impacted = {(i["kind"], i["name"]): i["path"] for i in data["impact"]}
    assert impacted[("STRUCTURE", "web0000")] == ["foundation web-node0000", "structure web0000"]
    dep_name = f"dependency-{dependency.id}"
    assert impacted[("DEPENDENCY", dep_name)][-1] == f"dependency {dep_name}"
    assert impacted[("FOUNDATION", "web-node0002")] == [
        "foundation web-node0000",
        "structure web0000",
        f"dependency {dep_name}",
        "foundation web-node0002",
    ]
    assert impacted[("STRUCTURE", "web0002")][-1] == "structure web0002"
    assert ("STRUCTURE", "web0003") not in impacted
    member = await client.data(
        f"{{ impact(of: {{structure: {app1.id}}}) {{ kind name }} }}", role="reader"
    )
    assert member["impact"] == [{"kind": "COMPLEX", "name": "cluster"}]
    usage = await client.data(
        '{ complexUsage(name: "cluster") { memberCount builtMemberCount members { hostname } '
        "complex { state } } }",
        role="reader",
    )
    assert usage["complexUsage"] == {
        "memberCount": 1,
        "builtMemberCount": 0,
        "members": [{"hostname": "web0001"}],
        "complex": {"state": "PLANNED"},
    }
    bad = await client.query("{ impact(of: {}) { name } }", role="reader")
    assert "exactly one origin" in bad["errors"][0]["message"]
    assert spare is not None


async def test_mutations_return_union_errors_and_change_nothing(client: Client) -> None:
    created = await client.data(
        'mutation Make($values: JSON) { createSite(name: "dc9", configValues: $values) '
        "{ __typename ... on Site { name configValues } } }",
        {"values": {"<dns_search": "x", "a": [1]}},
    )
    assert created["createSite"]["configValues"] == {"<dns_search": "x", "a": [1]}
    for document, typename, text in [
        ('createSite(name: "dc9")', "ConflictError", "site 'dc9' already exists"),
        ('createSite(name: "bad name")', "InvalidInputError", "may only contain"),
        ('createSite(name: "x", configValues: {_no: 1})', "InvalidInputError", "_no"),
        ('createSite(name: "x", parent: "nope")', "NotFoundError", "site 'nope' does not exist"),
        (
            'createAddressBlock(site: "dc9", name: "b", subnet: "10.0.0.0/33")',
            "InvalidInputError",
            "not a valid network",
        ),
    ]:
        body = await client.data(
            f"mutation {{ r: {document} {{ __typename ... on Error {{ code message field }} }} }}"
        )
        assert body["r"]["__typename"] == typename, body
        assert text in body["r"]["message"]
    data = await client.data("{ sites { totalCount } }")
    assert data["sites"]["totalCount"] == 1


async def test_lifecycle_through_mutations(client: Client) -> None:
    async def run(document: str) -> Any:
        body = await client.data(f"mutation {{ r: {document} }}", role="operator")
        assert "Error" not in body["r"].get("__typename", ""), body
        return body["r"]

    await run('createSite(name: "lab") { __typename }')
    await run('createFoundationBlueprint(name: "hw", foundationTypes: ["manual"]) { __typename }')
    await run('createStructureBlueprint(name: "os", foundationBlueprints: ["hw"]) { __typename }')
    await run('createScript(name: "os-create", source: "pass") { __typename }')
    await run(
        'linkScript(blueprint: "os", role: "create", script: "os-create") { __typename ... on StructureBluePrint { scripts { role script { name } } } }'
    )
    await run(
        'createFoundation(locator: "box", site: "lab", blueprint: "hw", type: "manual") { __typename }'
    )
    await run(
        'addInterface(locator: "box", physicalLocation: "eth0", mac: "AA:BB:CC:00:11:22", isProvisioning: true) { __typename ... on NetworkInterface { mac } }'
    )
    await run('createPXE(name: "install", bootScript: "chain x") { __typename }')
    await run('assignPxe(locator: "box", physicalLocation: "eth0", pxe: "install") { __typename }')
    structure = await run(
        'createStructure(hostname: "srv", site: "lab", blueprint: "os", foundation: "box") { __typename ... on Structure { id } }'
    )
    block = await run(
        'createAddressBlock(site: "lab", name: "lan", subnet: "192.0.2.0/24", gatewayOffset: 1) { __typename ... on AddressBlock { id } }'
    )
    address = await run(
        f'allocateAddress(structure: {structure["id"]}, addressBlock: {block["id"]}, interfaceName: "eth0", isPrimary: true) {{ __typename ... on Address {{ ipAddress offset }} }}'
    )
    assert address["ipAddress"] == "192.0.2.2"
    await run('locateFoundation(locator: "box") { __typename ... on Foundation { state } }')
    view = await client.data(
        '{ foundation(locator: "box") { state interfaces { pxe { name } mac } structure { hostname '
        "addresses { ipAddress } } } }",
        role="reader",
    )
    assert view["foundation"] == {
        "state": "LOCATED",
        "interfaces": [{"pxe": {"name": "install"}, "mac": "aa:bb:cc:00:11:22"}],
        "structure": {"hostname": "srv", "addresses": [{"ipAddress": "192.0.2.2"}]},
    }
    refused = await client.data(
        'mutation { deleteFoundation(locator: "box") { __typename ... on Error { message } } }'
    )
    assert refused["deleteFoundation"]["__typename"] == "ConflictError"
    assert "still used by 1 structures (srv)" in refused["deleteFoundation"]["message"]


async def test_limits(client: Client) -> None:
    deep = "{ sites { edges { node { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { name } } } } } } } } } } } } } }"
    body = await client.query(deep, role="reader")
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    aliases = "{ " + " ".join(f"a{i}: me {{ username }}" for i in range(40)) + " }"
    body = await client.query(aliases, role="reader")
    assert "aliases found" in body["errors"][0]["message"]


async def test_unexpected_errors_are_masked(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("contractor.services.site.create_site", broken)
    body = await client.query('mutation { createSite(name: "x") { __typename } }')
    assert body["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in str(body)


async def test_concurrent_mutations(client: Client) -> None:
    """Writers queue for each other (SQLite takes the write lock when a writer begins)."""
    import asyncio

    results = await asyncio.gather(
        *(
            client.data(
                f'mutation {{ createSite(name: "c{i}") {{ __typename }} }}', role="operator"
            )
            for i in range(12)
        )
    )
    assert all(r["createSite"]["__typename"] == "Site" for r in results)
    assert (await client.data("{ sites { totalCount } }"))["sites"]["totalCount"] == 12


async def test_ip_addresses_on_a_page_load_their_blocks_once(client: Client) -> None:
    """``ipAddress`` alone is computed from the address's block: the page loads the blocks
    ahead (one batch), with the same answers as when ``addressBlock`` is selected too."""
    await build_inventory(client, 6)
    bare = "{ structures(first: 100) { edges { node { hostname addresses { ipAddress } } } } }"
    full = "{ structures(first: 100) { edges { node { hostname addresses { ipAddress addressBlock { cidr } } } } } }"
    await client.data(bare, role="reader")  # connection set-up queries
    client.statements.clear()
    plain = await client.data(bare, role="reader")
    blocks = [s for s in queries(client.statements) if "FROM address_block" in s]
    assert len(blocks) == 1, client.statements
    with_blocks = await client.data(full, role="reader")
    ips = [a["ipAddress"] for e in plain["structures"]["edges"] for a in e["node"]["addresses"]]
    assert ips == [
        a["ipAddress"] for e in with_blocks["structures"]["edges"] for a in e["node"]["addresses"]
    ]
    assert len(set(ips)) == 6
    assert all(ip.startswith("10.1.0.") for ip in ips)


async def test_selecting_ip_address_prefetches_the_block(client: Client) -> None:
    """No per-row await: after a page's prefetch, ``ipAddress`` is computed on the spot."""
    from sqlalchemy import select

    from contractor import models
    from contractor.schema.loaders import Loaders
    from contractor.schema.network import BaseAddress
    from contractor.schema.prefetch import LAZY, prefetch

    await build_inventory(client, 3)
    async with client.sessions() as session:
        rows = (await session.execute(select(models.Address))).scalars().all()
    nodes = [BaseAddress.of(row) for row in rows]
    await prefetch(Loaders(client.sessions), nodes, {"ipAddress": {}})
    assert all(node.address_block is not LAZY for node in nodes)
    assert all(isinstance(node.ip_address(None), str) for node in nodes)  # type: ignore[arg-type]
