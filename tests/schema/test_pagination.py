"""Keyset pages over GraphQL: every row once, in order; cursors and sizes checked."""

from __future__ import annotations

from tests.schema.conftest import PAGE, Client, build_inventory


async def test_keyset_pages_cover_everything_once(client: Client) -> None:
    await build_inventory(client, 7)
    seen: list[str] = []
    after = None
    while True:
        page = (await client.data(PAGE, {"first": 3, "after": after}, role="reader"))["structures"]
        seen += [e["node"]["hostname"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 7
    bad = await client.query(PAGE, {"first": 3, "after": "not-a-cursor"}, role="reader")
    assert bad["errors"][0]["message"] == "after is not a cursor this list handed out"
    bad = await client.query(PAGE, {"first": 5000}, role="reader")
    assert bad["errors"][0]["message"] == "first must be from 0 to 1000"
