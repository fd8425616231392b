"""The address-block page's query: the block's addresses a page at a time, its free offsets
as runs computed in SQL, its own DHCP pools, in statements that do not grow with the block."""

from __future__ import annotations

from typing import Any

from contractor.db import transaction
from contractor.services import addresses, boot, building, inventory
from contractor.services import network as net
from tests.factories import make_stack
from tests.schema.conftest import Client, queries

# what contractor/ui/static/network.js asks for #/block/ID
PAGE = """
query ($id: Int!, $first: Int, $after: String, $ranges: Int) {
  addressBlock(id: $id) {
    id gatewayOffset usage { total static reserved dynamic free }
    addresses(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes {
        __typename id offset ipAddress
        ... on Address { interfaceName isPrimary structure { id hostname } }
        ... on ReservedAddress { reason }
        ... on DynamicAddress { pxe { name } }
      }
    }
    freeRanges(first: $ranges) { first last }
    dhcpPools { firstOffset lastOffset description }
  }
}
"""


async def _block(
    client: Client, subnet: str, *, gateway: int | None, name: str = "blk"
) -> dict[str, int]:
    """A block in a new site with a structure: the block's and the structure's ids."""
    async with transaction(client.writer_sessions) as session:
        site, _, structure = await make_stack(session)
        block = await net.create_address_block(
            session, site=site, name=name, subnet=subnet, gateway_offset=gateway
        )
        return {"block": block.id, "structure": structure.id}


async def _fill(
    client: Client, made: dict[str, int], static: list[int], reserved: list[int]
) -> None:
    async with transaction(client.writer_sessions) as session:
        block = await inventory.get_address_block_by_id(session, made["block"])
        structure = await building.get_structure_by_id(session, made["structure"])
        for offset in static:
            await addresses.create_address(
                session,
                structure=structure,
                block=block,
                offset=offset,
                interface_name=f"eth{offset % 10**6}",
            )
        for offset in reserved:
            await addresses.create_reserved_address(
                session, block=block, offset=offset, reason=f"r{offset}"
            )


async def _pool(client: Client, block_id: int, low: int, high: int, text: str) -> None:
    async with transaction(client.writer_sessions) as session:
        block = await inventory.get_address_block_by_id(session, block_id)
        await boot.create_dhcp_pool(
            session, block=block, first_offset=low, last_offset=high, description=text
        )


def _data(statements: list[str]) -> list[str]:
    """The statements answering the query (not the token's look-up and its last use)."""
    return [s for s in queries(statements) if "api_token" not in s]


async def _page(client: Client, block: int, **variables: Any) -> dict[str, Any]:
    data = await client.data(PAGE, {"id": block, **variables}, role="reader")
    answer: dict[str, Any] = data["addressBlock"]
    return answer


async def test_addresses_by_page_free_runs_and_the_blocks_own_pools(client: Client) -> None:
    made = await _block(client, "10.1.0.0/24", gateway=1)
    other = await _block(client, "10.2.0.0/24", gateway=None, name="other")
    await _fill(client, made, static=[2, 3, 40], reserved=[10, 11, 12, 254])
    await _pool(client, made["block"], 100, 149, "leases")
    await _pool(client, other["block"], 5, 9, "not this block's")
    first = await _page(client, made["block"], first=3, ranges=10)
    assert first["addresses"]["totalCount"] == 7
    assert [(a["__typename"], a["offset"]) for a in first["addresses"]["nodes"]] == [
        ("Address", 2),
        ("Address", 3),
        ("ReservedAddress", 10),
    ]
    assert first["addresses"]["nodes"][0]["ipAddress"] == "10.1.0.2"
    assert first["addresses"]["nodes"][0]["structure"]["id"] == made["structure"]
    assert first["addresses"]["nodes"][2]["reason"] == "r10"
    # free: not an address, not the gateway (1), not the pool (100-149)
    assert first["freeRanges"] == [
        {"first": 4, "last": 9},
        {"first": 13, "last": 39},
        {"first": 41, "last": 99},
        {"first": 150, "last": 253},
    ]
    assert first["dhcpPools"] == [{"firstOffset": 100, "lastOffset": 149, "description": "leases"}]
    seen, after = [], None
    while True:
        page = await _page(client, made["block"], first=3, after=after, ranges=1)
        seen += [a["offset"] for a in page["addresses"]["nodes"]]
        assert page["freeRanges"] == [{"first": 4, "last": 9}]  # only as many as asked
        if not page["addresses"]["pageInfo"]["hasNextPage"]:
            break
        after = page["addresses"]["pageInfo"]["endCursor"]
    assert seen == [2, 3, 10, 11, 12, 40, 254]
    empty = await _page(client, other["block"], ranges=10)
    assert empty["addresses"]["nodes"] == []
    assert empty["freeRanges"] == [{"first": 1, "last": 4}, {"first": 10, "last": 254}]
    assert empty["dhcpPools"] == [
        {"firstOffset": 5, "lastOffset": 9, "description": "not this block's"}
    ]


async def test_a_full_block_and_offsets_past_64_bits(client: Client) -> None:
    full = await _block(client, "10.3.0.0/30", gateway=1)
    await _fill(client, full, static=[2], reserved=[])
    assert (await _page(client, full["block"]))["freeRanges"] == []
    top = 2**64 - 2
    made = await _block(client, "2001:db8::/64", gateway=top)
    await _fill(client, made, static=[1, 2**63], reserved=[top - 1, 2**62 - 1, 2**62])
    runs = (await _page(client, made["block"], ranges=10))["freeRanges"]
    assert runs == [
        {"first": 2, "last": str(2**62 - 2)},
        {"first": str(2**62 + 1), "last": str(2**63 - 1)},
        {"first": str(2**63 + 1), "last": str(top - 2)},
    ]
    listed = await _page(client, made["block"], first=2)
    assert [a["offset"] for a in listed["addresses"]["nodes"]] == [1, str(2**62 - 1)]
    after = listed["addresses"]["pageInfo"]["endCursor"]
    rest = await _page(client, made["block"], first=10, after=after)
    assert [a["offset"] for a in rest["addresses"]["nodes"]] == [
        str(2**62),
        str(2**63),
        str(top - 1),
    ]


async def test_bad_arguments_are_errors_naming_the_field(client: Client) -> None:
    made = await _block(client, "10.4.0.0/24", gateway=None)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"ranges": -1}, "first must be from 0 to 1000", "freeRanges"),
        ({"ranges": 1001}, "first must be from 0 to 1000", "freeRanges"),
        ({"first": 5000}, "first must be from 0 to 1000", "addresses"),
        ({"after": "not-a-cursor"}, "after is not a cursor this list handed out", "addresses"),
        ({"after": "WyJ4Il0="}, "after is not a cursor this list handed out", "addresses"),  # ["x"]
        ({"after": "Wy0xXQ=="}, "after is not a cursor this list handed out", "addresses"),  # [-1]
    ]
    for variables, message, field in cases:
        answer = await client.query(PAGE, {"id": made["block"], **variables}, role="reader")
        (error,) = answer["errors"]
        assert error["message"] == message, (variables, error)
        assert error["path"] == ["addressBlock", field], (variables, error)


async def test_the_page_costs_the_same_statements_however_full_the_block(client: Client) -> None:
    made = await _block(client, "10.5.0.0/16", gateway=1)
    await _fill(client, made, static=[2, 3], reserved=[4])
    await _pool(client, made["block"], 1000, 1099, "leases")
    client.statements.clear()
    small = await _page(client, made["block"], first=50, ranges=101)
    few = _data(client.statements)
    await _fill(client, made, static=list(range(10, 40)), reserved=list(range(200, 400)))
    client.statements.clear()
    large = await _page(client, made["block"], first=50, ranges=101)
    many = _data(client.statements)
    assert len(small["addresses"]["nodes"]) == 3
    assert len(large["addresses"]["nodes"]) == 50
    assert len(many) == len(few), many
    # the block, usage, a page of addresses, its count, the structures and blocks below it
    # (per kind of address), the free runs and the pools
    assert len(many) <= 9, many
    # the addresses are read a page at a time (LIMIT 51), never the whole block
    (listed,) = [s for s in many if s.startswith("SELECT address.id")]
    assert "LIMIT" in listed.upper()
