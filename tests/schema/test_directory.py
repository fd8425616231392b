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


ZONE_FIELDS = "ttl refresh retry expire minimum nameservers soaEmail external"


async def test_create_and_update_zone_settings(client: Client) -> None:
    made = await client.data(
        'mutation { top: createZone(name: "top", nameservers: ["ns1.elsewhere.net"]) '
        f"  {{ __typename ... on Zone {{ {ZONE_FIELDS} }} }} "
        '  mine: createZone(name: "mine", parent: "top", ttl: 600, refresh: 7200, retry: 900, '
        '    expire: 2419200, minimum: 1800, soaEmail: "dns@mine.top", external: true) '
        f"  {{ __typename ... on Zone {{ fqdn {ZONE_FIELDS} }} }} }}",
        role="operator",
    )
    assert made["top"] == {
        "__typename": "Zone",
        "ttl": 3600,
        "refresh": 14400,
        "retry": 3600,
        "expire": 1209600,
        "minimum": 3600,
        "nameservers": ["ns1.elsewhere.net"],
        "soaEmail": None,
        "external": False,
    }
    assert made["mine"]["external"] is True
    assert (made["mine"]["refresh"], made["mine"]["minimum"]) == (7200, 1800)
    # mine is external: top only spells its name and is not published.
    names = await client.data("{ publishedZones { name valid } }", role="reader")
    assert names["publishedZones"] == [{"name": "mine.top", "valid": True}]

    changed = await client.data(
        'mutation { updateZone(fqdn: "mine.top", refresh: 86400, retry: 3600, '
        '  nameservers: ["ns9.elsewhere.net"], soaEmail: null, external: false) '
        f"  {{ __typename ... on Zone {{ {ZONE_FIELDS} }} }} }}",
        role="operator",
    )
    assert changed["updateZone"] == {
        "__typename": "Zone",
        "ttl": 600,
        "refresh": 86400,
        "retry": 3600,
        "expire": 2419200,
        "minimum": 1800,
        "nameservers": ["ns9.elsewhere.net"],
        "soaEmail": None,
        "external": False,
    }
    names = await client.data("{ publishedZones { name } }", role="reader")
    assert [z["name"] for z in names["publishedZones"]] == ["mine.top", "top"]


async def test_zone_settings_errors_name_the_field(client: Client) -> None:
    await client.data(
        'mutation { createZone(name: "solid", nameservers: ["ns1.elsewhere.net"]) { __typename } }',
        role="operator",
    )
    cases = [
        ('createZone(name: "bad", retry: 20000)', "InvalidInputError", "retry"),
        ('createZone(name: "bad", minimum: 172800)', "InvalidInputError", "minimum"),
        ('updateZone(fqdn: "solid", expire: 7200)', "InvalidInputError", "expire"),
        ('updateZone(fqdn: "solid", refresh: 1800)', "InvalidInputError", "refresh"),
        ('updateZone(fqdn: "solid", ttl: null)', "InvalidInputError", "ttl"),
        ('updateZone(fqdn: "solid", external: null)', "InvalidInputError", "external"),
        ('updateZone(fqdn: "solid", nameservers: ["x"])', "InvalidInputError", "nameservers"),
        ('updateZone(fqdn: "nowhere", ttl: 60)', "NotFoundError", "zone"),
    ]
    for call, typename, field in cases:
        answer = await client.data(
            f"mutation {{ r: {call} {{ __typename ... on Error {{ message field }} }} }}",
            role="operator",
        )
        assert answer["r"]["__typename"] == typename, (call, answer)
        assert answer["r"]["field"] == field, (call, answer)
    data = await client.data(f'{{ zone(fqdn: "solid") {{ {ZONE_FIELDS} }} }}', role="reader")
    assert data["zone"] == {
        "ttl": 3600,
        "refresh": 14400,
        "retry": 3600,
        "expire": 1209600,
        "minimum": 3600,
        "nameservers": ["ns1.elsewhere.net"],
        "soaEmail": None,
        "external": False,
    }
    assert "bad" not in str(
        await client.data("{ zones(first: 10) { edges { node { name } } } }", role="reader")
    )
