# ruff: noqa: E501  (GraphQL documents read best on one line)
"""The inventory graph over GraphQL as a whole: union errors, a lifecycle through mutations,
limits, masking and concurrent writers (pages, filters, prefetching and the inventory
questions have their own modules)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.schema.conftest import Client


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
