"""Foundations and structures over GraphQL: the list filters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.schema.conftest import Client, build_inventory


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


async def test_foundation_type_names_in_any_case(client: Client) -> None:
    async def run(document: str) -> Any:
        return (await client.data(f"mutation {{ r: {document} }}", role="operator"))["r"]

    created = await run(
        'createFoundationBlueprint(name: "hw", foundationTypes: ["Simulated", "IPMI"]) '
        "{ __typename ... on FoundationBluePrint { foundationTypes } }"
    )
    assert created == {
        "__typename": "FoundationBluePrint",
        "foundationTypes": ["simulated", "ipmi"],
    }
    updated = await run(
        'updateBlueprint(name: "hw", foundationTypes: ["SIMULATED", "Manual"]) '
        "{ __typename ... on FoundationBluePrint { foundationTypes } }"
    )
    assert updated["foundationTypes"] == ["simulated", "manual"]
    twice = await run(
        'updateBlueprint(name: "hw", foundationTypes: ["manual", "Manual"]) '
        "{ __typename ... on Error { message field } }"
    )
    assert twice == {
        "__typename": "InvalidInputError",
        "message": "foundation_types lists an entry twice",
        "field": "foundation_types",
    }
    unknown = await run(
        'updateBlueprint(name: "hw", foundationTypes: ["VCenter"]) '
        "{ __typename ... on Error { message field } }"
    )
    assert unknown == {
        "__typename": "InvalidInputError",
        "message": "foundation_types names 'VCenter', which is not an installed foundation "
        "type (installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)",
        "field": "foundation_types",
    }
    await run('createSite(name: "lab") { __typename }')
    box = await run(
        'createFoundation(locator: "box", site: "lab", blueprint: "hw", type: "Simulated") '
        "{ __typename ... on Foundation { type classList } }"
    )
    assert box == {
        "__typename": "Foundation",
        "type": "simulated",
        "classList": ["Metal", "VM", "Container", "Switch", "Simulated"],
    }
    refused = await run(
        'createFoundation(locator: "box2", site: "lab", blueprint: "hw", type: "Ipmi") '
        "{ __typename ... on Error { message field } }"
    )
    assert refused == {
        "__typename": "InvalidInputError",
        "message": "blueprint 'hw' does not accept foundation type 'ipmi' "
        "(it accepts: manual, simulated)",
        "field": "type",
    }
    missing = await run(
        'createFoundation(locator: "box2", site: "lab", blueprint: "hw", type: "vcenter") '
        "{ __typename ... on Error { message field } }"
    )
    assert missing == {
        "__typename": "NotFoundError",
        "message": (
            "unknown foundation type 'vcenter' "
            "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)"
        ),
        "field": "type",
    }
    found = await client.data(
        '{ foundations(filter: {type: ["SIMULATED"]}) { totalCount } '
        'foundationCounts(groupBy: [TYPE], filter: {type: ["Simulated", "manual"]}) '
        "{ type count } }",
        role="reader",
    )
    assert found == {
        "foundations": {"totalCount": 1},
        "foundationCounts": [{"type": "simulated", "count": 1}],
    }
    body = await client.query(
        '{ foundations(filter: {type: ["vcenter"]}) { totalCount } }', role="reader"
    )
    assert body["errors"][0]["message"] == (
        "type names 'vcenter', which is not an installed foundation type "
        "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)"
    )


async def test_structure_filter_by_foundation_type_in_any_case(client: Client) -> None:
    await build_inventory(client, 4)
    data = await client.data(
        '{ structures(filter: {foundationType: ["Manual"]}) { totalCount } '
        'structureCounts(groupBy: [FOUNDATION_TYPE], filter: {foundationType: ["SIMULATED"]}) '
        "{ type count } }",
        role="reader",
    )
    assert data == {
        "structures": {"totalCount": 2},
        "structureCounts": [{"type": "simulated", "count": 2}],
    }
