"""The field kinds of contractor.schema.fields, through the real app: a deletion finds its
row by its arguments, deletes it and names it; what it does not find is refused unchanged."""

from __future__ import annotations

from graphql import get_introspection_query

from tests.schema.conftest import Client

ANSWER = "{ __typename ... on Deleted { kind id } ... on Error { code message field } }"


async def test_a_deletion_deletes_what_its_keys_find_and_names_it(client: Client) -> None:
    await client.data('mutation { createSite(name: "dz") { __typename } }')
    made = await client.data(
        'mutation { n: createNetwork(site: "dz", name: "lan") { ... on Network { id } } '
        'p: createPXE(name: "boot") { ... on PXE { id } } }'
    )
    network_id, pxe_id = made["n"]["id"], made["p"]["id"]

    gone = await client.data(
        f"mutation {{ n: deleteNetwork(id: {network_id}) {ANSWER} "
        f'p: deletePXE(name: "boot") {ANSWER} }}'
    )
    assert gone["n"] == {"__typename": "Deleted", "kind": "Network", "id": network_id}
    assert gone["p"] == {"__typename": "Deleted", "kind": "PXE", "id": pxe_id}
    listed = await client.data('{ site(name: "dz") { name } pxes { totalCount } }')
    assert listed == {"site": {"name": "dz"}, "pxes": {"totalCount": 0}}

    again = await client.data(f"mutation {{ deleteNetwork(id: {network_id}) {ANSWER} }}")
    assert again["deleteNetwork"]["__typename"] == "NotFoundError"
    assert again["deleteNetwork"]["code"] == "NOT_FOUND"


async def test_a_deletion_with_two_keys_uses_both(client: Client) -> None:
    missing = await client.data(
        f'mutation {{ deleteInterface(locator: "nowhere", physicalLocation: "eth0") {ANSWER} }}'
    )
    assert missing["deleteInterface"]["__typename"] == "NotFoundError"
    assert "nowhere" in missing["deleteInterface"]["message"]


async def test_a_refused_deletion_changes_nothing(client: Client) -> None:
    await client.data('mutation { createSite(name: "top") { __typename } }')
    await client.data('mutation { createSite(name: "leaf", parent: "top") { __typename } }')
    refused = await client.data(f'mutation {{ deleteSite(name: "top") {ANSWER} }}')
    assert refused["deleteSite"]["__typename"] == "ConflictError"
    assert "child sites (leaf)" in refused["deleteSite"]["message"]
    still = await client.data('{ site(name: "top") { children { name } } }')
    assert still == {"site": {"children": [{"name": "leaf"}]}}


async def test_a_spread_typed_dict_gives_one_argument_per_key(client: Client) -> None:
    """createZoneEntry spreads services.directory.Record: the keys not given are null (its
    SDL line, one argument per key, is checked by test_sdl)."""
    await client.data(
        'mutation { createZone(name: "spread", nameservers: ["ns.x."]) { __typename } }'
    )
    fields = "... on ZoneEntry { type name target text priority weight port ttl }"
    made = await client.data(
        f'mutation {{ createZoneEntry(zone: "spread", type: "TXT", name: "t", text: "hi") '
        f"{{ {fields} }} }}"
    )
    assert made["createZoneEntry"] == {
        "type": "TXT",
        "name": "t",
        "target": None,
        "text": "hi",
        "priority": None,
        "weight": None,
        "port": None,
        "ttl": None,
    }
    refused = await client.data(
        'mutation { createZoneEntry(zone: "spread", type: "SRV", name: "_s._tcp", '
        'target: "h", priority: 1, weight: 2, ttl: 60) '
        "{ __typename ... on Error { field } } }"
    )
    assert refused["createZoneEntry"]["__typename"] == "InvalidInputError"
    assert refused["createZoneEntry"]["field"] == "port"
    entries = await client.data('{ zone(fqdn: "spread") { entries { name } } }')
    assert entries == {"zone": {"entries": [{"name": "t"}]}}


async def test_spread_arguments_introspect_like_declared_ones(client: Client) -> None:
    """GraphiQL's introspection query answers; a spread key that is Required has no default
    (services.directory has postponed annotations, which hide Required from the TypedDict)."""
    body = await client.query(get_introspection_query(), role="reader")
    assert "errors" not in body, body["errors"]
    (mutation,) = [t for t in body["data"]["__schema"]["types"] if t["name"] == "Mutation"]
    fields = {f["name"]: f for f in mutation["fields"]}
    zone_entry = [(a["name"], a["defaultValue"]) for a in fields["createZoneEntry"]["args"]]
    assert zone_entry == [
        ("zone", None),
        ("type", None),
        ("name", None),
        ("target", "null"),
        ("text", "null"),
        ("priority", "null"),
        ("weight", "null"),
        ("port", "null"),
        ("ttl", "null"),
    ]
    do_job = [(a["name"], a["defaultValue"]) for a in fields["doJob"]["args"]]
    assert do_job == [("name", None), ("foundation", "null"), ("structure", "null")]
