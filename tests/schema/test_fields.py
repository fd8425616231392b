"""The field kinds of contractor.schema.fields, through the real app: a deletion finds its
row by its arguments, deletes it and names it; what it does not find is refused unchanged."""

from __future__ import annotations

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
