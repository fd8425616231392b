"""Foundations and structures over GraphQL: the list filters."""

from __future__ import annotations

import pytest

from tests.schema.conftest import Client, build_inventory


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ('{hostname: "web000*"}', 6),
        ('{site: {name: "world", includeDescendants: true}}', 6),
        ('{site: {name: "world"}}', 0),
        ('{blueprint: {name: "linux"}}', 0),
        ('{blueprint: {name: "linux", includeDescendants: true}}', 6),
        ("{state: [PLANNED]}", 6),
        ("{state: [BUILT]}", 0),
        ('{foundationType: ["manual"]}', 3),
    ],
)
async def test_structure_filters(client: Client, filter: str, expected: int) -> None:
    await build_inventory(client, 6)
    data = await client.data(f"{{ structures(filter: {filter}) {{ totalCount }} }}", role="reader")
    assert data["structures"]["totalCount"] == expected
