"""Zones and their entries over GraphQL, and the zone files as published."""

from __future__ import annotations

from tests.schema.conftest import Client


async def test_zone_entries_and_published_text(client: Client) -> None:
    made = await client.data(
        'mutation { createZone(name: "example", nameservers: ["ns1.example.net."]) { __typename } '
        '  e: createZoneEntry(zone: "example", type: "MX", name: "@", target: "mail", '
        "    priority: 10) "
        "  { __typename ... on ZoneEntry { id type priority } } }",
        role="operator",
    )
    assert made["e"]["__typename"] == "ZoneEntry"
    bad = await client.data(
        'mutation { createZoneEntry(zone: "example", type: "A", name: "x", target: "y") '
        "{ __typename ... on Error { message field } } }",
        role="operator",
    )
    assert bad["createZoneEntry"]["__typename"] == "InvalidInputError"
    assert bad["createZoneEntry"]["field"] == "type"
    data = await client.data(
        '{ zone(fqdn: "example") { fqdn entries { type name target priority } } '
        '  publishedZones(name: "example") { name kind serial valid problems { code } text } }',
        role="reader",
    )
    assert data["zone"]["entries"] == [
        {"type": "MX", "name": "@", "target": "mail", "priority": 10}
    ]
    (published,) = data["publishedZones"]
    assert published["kind"] == "forward"
    assert published["serial"] > 0
    assert "MX" in published["text"]
    gone = await client.data(
        f"mutation {{ deleteZoneEntry(id: {made['e']['id']}) {{ __typename }} }}", role="operator"
    )
    assert gone["deleteZoneEntry"]["__typename"] == "Deleted"
