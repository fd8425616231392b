# ruff: noqa: E501  (GraphQL documents read best on one line)
"""Offsets over GraphQL: the BigInt scalar carries offsets of any size in and out, bad ones
are typed errors naming the field, and IPv4 offsets are answered as before."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.db import transaction
from tests.factories import make_stack
from tests.schema.conftest import Client

TOP_64 = 2**64 - 2
ALLOCATE = """
mutation Allocate($structure: Int!, $block: Int!, $name: String!, $offset: BigInt) {
  allocateAddress(structure: $structure, addressBlock: $block, interfaceName: $name, offset: $offset) {
    __typename
    ... on Address { offset ipAddress }
    ... on Error { code message field }
  }
}
"""


async def _stack(client: Client) -> tuple[str, int]:
    """A site (its name) with a structure (its id)."""
    async with transaction(client.writer_sessions) as session:
        site, _, structure = await make_stack(session)
        return site.name, structure.id


async def _block(client: Client, site: str, subnet: str, gateway: str | int) -> dict[str, Any]:
    made = await client.data(
        f'mutation {{ b: createAddressBlock(site: "{site}", name: "blk", subnet: "{subnet}", gatewayOffset: {gateway}) '
        "{ __typename ... on AddressBlock { id gatewayOffset gateway usage { total free } } ... on Error { message field } } }"
    )
    assert made["b"]["__typename"] == "AddressBlock", made
    block: dict[str, Any] = made["b"]
    return block


async def _allocate(client: Client, structure: int, block: int, name: str, offset: Any) -> Any:
    variables = {"structure": structure, "block": block, "name": name, "offset": offset}
    return (await client.data(ALLOCATE, variables))["allocateAddress"]


async def test_offsets_past_64_bits_in_and_out(client: Client) -> None:
    site, structure = await _stack(client)
    block = await _block(client, site, "2001:db8::/64", '"18446744073709551614"')
    assert (block["gatewayOffset"], block["gateway"]) == (
        "18446744073709551614",
        "2001:db8::ffff:ffff:ffff:fffe",
    )
    assert block["usage"] == {"total": "18446744073709551614", "free": "18446744073709551613"}
    reserved = await client.data(
        f'mutation {{ r: reserveAddress(addressBlock: {block["id"]}, offset: 18446744073709551613, reason: "top") '
        "{ __typename ... on ReservedAddress { offset ipAddress reason } } }"
    )
    assert reserved["r"] == {
        "__typename": "ReservedAddress",
        "offset": "18446744073709551613",
        "ipAddress": "2001:db8::ffff:ffff:ffff:fffd",
        "reason": "top",
    }
    # Without an offset: the lowest free one; with one as a string or as a JSON number.
    assert await _allocate(client, structure, block["id"], "eth0", None) == {
        "__typename": "Address",
        "offset": 1,
        "ipAddress": "2001:db8::1",
    }
    assert await _allocate(client, structure, block["id"], "eth1", str(2**63)) == {
        "__typename": "Address",
        "offset": "9223372036854775808",
        "ipAddress": "2001:db8:0:0:8000::",
    }
    assert (await _allocate(client, structure, block["id"], "eth2", 2**64 - 4))["offset"] == str(
        2**64 - 4
    )
    assert (await _allocate(client, structure, block["id"], "eth3", 2**53 - 1))["offset"] == (
        2**53 - 1  # still exact in every JSON parser: a number
    )
    listed = await client.data(
        f"{{ addressBlock(id: {block['id']}) {{ usage {{ free }} addresses {{ nodes {{ offset }} }} }}"
        ' address(ip: "2001:db8:0:0:8000::") { offset } }'
    )
    assert listed == {
        "addressBlock": {
            "usage": {"free": str(TOP_64 - 6)},
            "addresses": {
                "nodes": [
                    {"offset": o}
                    for o in (1, 2**53 - 1, "9223372036854775808", str(2**64 - 4), str(2**64 - 3))
                ]
            },
        },
        "address": {"offset": "9223372036854775808"},
    }


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        ("abc", "offset must be a whole number, got 'abc'"),
        ("1e3", "offset must be a whole number, got '1e3'"),
        (" 5", "offset must be a whole number, got ' 5'"),
        (1.5, "offset must be a whole number, got 1.5"),
        (True, "offset must be a whole number, got True"),
        (-1, "offset -1 is outside the usable offsets 1..18446744073709551614"),
        ("-7", "offset -7 is outside the usable offsets 1..18446744073709551614"),
        (0, "offset 0 is outside the usable offsets"),
        (str(2**64 - 1), "offset 18446744073709551615 is outside the usable offsets"),
        (2**64, "offset 18446744073709551616 is outside the usable offsets"),
        (
            "9" * 60,
            "offset 999999999999999999999999999999999999999999999999999999999999 is outside",
        ),
    ],
)
async def test_bad_offsets_are_typed_errors(client: Client, offset: Any, message: str) -> None:
    site, structure = await _stack(client)
    block = await _block(client, site, "2001:db8::/64", "null")
    refused = await _allocate(client, structure, block["id"], "eth0", offset)
    assert (refused["__typename"], refused["field"]) == ("InvalidInputError", "offset"), refused
    assert message in refused["message"]
    for document in [
        f'reserveAddress(addressBlock: {block["id"]}, offset: $offset, reason: "x")',
        f"addDynamicAddress(addressBlock: {block['id']}, offset: $offset)",
    ]:
        body = await client.data(
            f"mutation M($offset: BigInt!) {{ r: {document} {{ __typename ... on Error {{ message field }} }} }}",
            {"offset": offset},
        )
        assert body["r"] == {
            "__typename": "InvalidInputError",
            "message": refused["message"],
            "field": "offset",
        }
    gateway = await client.data(
        "mutation M($g: BigInt) { r: updateAddressBlock(id: "
        f"{block['id']}, gatewayOffset: $g) {{ __typename ... on Error {{ field }} }} }}",
        {"g": offset},
    )
    assert gateway["r"] == {"__typename": "InvalidInputError", "field": "gateway_offset"}
    unchanged = await client.data(
        f"{{ addressBlock(id: {block['id']}) {{ gatewayOffset addresses {{ nodes {{ id }} }} }} }}"
    )
    assert unchanged["addressBlock"] == {"gatewayOffset": None, "addresses": {"nodes": []}}


async def test_literals_and_a_48(client: Client) -> None:
    """Offsets written in the document: an integer literal of any size, a string, and an
    enum-like word (a typed error too, not a refused document)."""
    site, structure = await _stack(client)
    block = await _block(client, site, "2001:db8::/48", "1")
    top = 2**80 - 2
    for interface, literal, expected in [
        ("eth0", str(top), str(top)),
        ("eth1", f'"{2**64}"', str(2**64)),
        ("eth2", "null", 2),
    ]:
        got = await client.data(
            f'mutation {{ a: allocateAddress(structure: {structure}, addressBlock: {block["id"]}, interfaceName: "{interface}", offset: {literal}) '
            "{ __typename ... on Address { offset ipAddress } } }"
        )
        assert got["a"]["offset"] == expected, got
    assert got["a"]["ipAddress"] == "2001:db8::2"
    for literal, message in [
        (
            str(2**80 - 1),
            "offset 1208925819614629174706175 is outside the usable offsets 1..1208925819614629174706174",
        ),
        ("abc", "offset must be a whole number, got 'abc'"),
    ]:
        refused = await client.data(
            f'mutation {{ a: allocateAddress(structure: {structure}, addressBlock: {block["id"]}, interfaceName: "eth9", offset: {literal}) '
            "{ __typename ... on Error { message field } } }"
        )
        assert (refused["a"]["__typename"], refused["a"]["field"]) == (
            "InvalidInputError",
            "offset",
        )
        assert refused["a"]["message"].startswith(message)


async def test_ipv4_offsets_are_answered_as_before(client: Client) -> None:
    site, structure = await _stack(client)
    block = await _block(client, site, "192.0.2.0/24", 1)
    assert (block["gatewayOffset"], block["gateway"], block["usage"]) == (
        1,
        "192.0.2.1",
        {"total": 254, "free": 253},
    )
    assert await _allocate(client, structure, block["id"], "eth0", None) == {
        "__typename": "Address",
        "offset": 2,
        "ipAddress": "192.0.2.2",
    }
    assert (await _allocate(client, structure, block["id"], "eth1", 254))["offset"] == 254
    refused = await _allocate(client, structure, block["id"], "eth2", 255)
    assert refused == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": "offset 255 is outside the usable offsets 1..254 of block 'blk' (192.0.2.0/24)",
        "field": "offset",
    }
