# ruff: noqa: E501  (GraphQL documents read best on one line)
"""Relationships loaded ahead for whole pages: the statements a page costs do not grow with
its rows, and a computed field loads what it is computed from."""

from __future__ import annotations

from tests.schema.conftest import PAGE, Client, build_inventory, queries


async def test_nested_page_statement_count_does_not_grow_with_rows(client: Client) -> None:
    await build_inventory(client, 5, prefix="a")
    await client.data(PAGE, {"first": 1000}, role="reader")  # connection set-up queries
    client.statements.clear()
    small = await client.data(PAGE, {"first": 1000}, role="reader")
    # The token's standing is read on every request (a disabled user is refused at once).
    token_checks = [s for s in queries(client.statements) if "FROM api_token" in s]
    assert len(token_checks) == 1, client.statements
    small_count = len(queries(client.statements))
    await build_inventory(client, 40, prefix="b")
    client.statements.clear()
    large = await client.data(PAGE, {"first": 1000}, role="reader")
    assert len(large["structures"]["edges"]) == 45
    assert len(queries(client.statements)) == small_count, client.statements
    assert small_count - 1 <= 13  # the page, its count, and one batch per relationship
    node = small["structures"]["edges"][0]["node"]
    assert node["site"] == {"name": "dc1", "parent": {"name": "eu"}}
    assert node["blueprint"] == {"name": "web", "parents": [{"name": "linux"}]}
    assert node["addresses"][0]["ipAddress"].startswith("10.1.0.")
    assert {i["physicalLocation"] for i in node["foundation"]["interfaces"]} == {"eth0", "eth1"}


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
    assert all(isinstance(node.ip_address(), str) for node in nodes)


async def test_what_a_lookup_or_a_page_loaded_is_not_asked_for_again(client: Client) -> None:
    """The row a lookup found answers the fields below that point back at it: the
    structure page's addresses name their structure without asking for it again."""
    made = await build_inventory(client, 3)
    structure = made["structures"][0]
    document = f"{{ structure(id: {structure}) {{ hostname addresses {{ structure {{ id hostname }} addressBlock {{ id }} }} }} }}"
    await client.data(document, role="reader")
    client.statements.clear()
    answer = (await client.data(document, role="reader"))["structure"]
    assert answer["addresses"][0]["structure"] == {"id": structure, "hostname": answer["hostname"]}
    reads = [s for s in queries(client.statements) if "FROM structure" in s]
    assert len(reads) == 1, reads  # the lookup's own; the addresses' structure is that row
