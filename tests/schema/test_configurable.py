"""Configuration over GraphQL: composed, rendered, explained, and batched for pages."""

from __future__ import annotations

from contractor.db import transaction
from contractor.services import site as sites
from tests.schema.conftest import Client, build_inventory, queries


async def test_structure_config_comes_from_its_layers(client: Client) -> None:
    await build_inventory(client, 3)
    async with transaction(client.writer_sessions) as session:
        world = await sites.get_site(session, "world")
        await sites.update_site(
            session,
            world,
            config_values={"dns_servers": ["10.0.0.53"], "greeting": "hi {{ _hostname }}"},
        )
    data = await client.data(
        '{ structure(site: "dc1", hostname: "web0001") { config configExplain } '
        '  site(name: "dc1") { config } }',
        role="reader",
    )
    config = data["structure"]["config"]
    assert config["dns_servers"] == ["10.0.0.53"]
    assert config["greeting"] == "hi web0001"
    assert config["_site"] == "dc1"
    assert config["_blueprint"] == "web"
    assert data["site"]["config"]["greeting"] == "hi {{ _hostname }}"  # sites stay unrendered
    explained = data["structure"]["configExplain"]
    assert "greeting" in str(explained)


async def test_config_of_a_page_is_batched(client: Client) -> None:
    document = "{ structures(first: 100) { edges { node { hostname config } } } }"
    await build_inventory(client, 3, prefix="a")
    await client.data(document, role="reader")
    client.statements.clear()
    await client.data(document, role="reader")
    few = len(queries(client.statements))
    await build_inventory(client, 30, prefix="b")
    await client.data(document, role="reader")
    client.statements.clear()
    data = await client.data(document, role="reader")
    assert len(data["structures"]["edges"]) == 33
    assert len(queries(client.statements)) <= few + 2, client.statements
