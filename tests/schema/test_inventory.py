"""The inventory questions over GraphQL: filtered counts, impact, complex usage."""

from __future__ import annotations

from contractor.db import transaction
from contractor.services import building, complexes
from contractor.services import site as sites
from tests.schema.conftest import Client, build_inventory


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
        {"type": "manual", "state": "PLANNED", "site": None, "count": 3},
        {"type": "simulated", "state": "PLANNED", "site": None, "count": 3},
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
        cluster = await complexes.create_complex(
            session, name="cluster", site=await sites.get_site(session, "dc1")
        )
        await complexes.add_complex_member(session, cluster, app1)
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


async def test_counts_and_impact_spell_states_as_the_nodes_do(client: Client) -> None:
    made = (await build_inventory(client, 3))["structures"]
    async with transaction(client.writer_sessions) as session:
        built = await building.get_structure_by_id(session, made[0])
        foundation = await session.get_one(building.Foundation, built.foundation_id)
        await building.set_located(session, foundation)
        await building.set_built(session, foundation)
        await building.set_structure_built(session, built)
        located = await building.get_foundation(session, "web-node0001")
        await building.set_located(session, located)
    data = await client.data(
        "{ foundationCounts(groupBy: [STATE]) { state count } "
        "  structureCounts(groupBy: [STATE]) { state count } "
        "  foundations { nodes { state } } structures { nodes { state } } "
        '  impact(of: {foundation: "web-node0000"}) { kind state } }',
        role="reader",
    )
    assert sorted((g["state"], g["count"]) for g in data["foundationCounts"]) == [
        ("BUILT", 1),
        ("LOCATED", 1),
        ("PLANNED", 1),
    ]
    assert sorted((g["state"], g["count"]) for g in data["structureCounts"]) == [
        ("BUILT", 1),
        ("PLANNED", 2),
    ]
    # the very spellings the nodes answer
    assert {g["state"] for g in data["foundationCounts"]} == {
        n["state"] for n in data["foundations"]["nodes"]
    }
    assert {g["state"] for g in data["structureCounts"]} == {
        n["state"] for n in data["structures"]["nodes"]
    }
    assert data["impact"] == [{"kind": "STRUCTURE", "state": "BUILT"}]
    # the state enum is also what a count filters by
    filtered = await client.data(
        "{ structureCounts(groupBy: [STATE], filter: {state: [BUILT]}) { state count } }",
        role="reader",
    )
    assert filtered["structureCounts"] == [{"state": "BUILT", "count": 1}]
