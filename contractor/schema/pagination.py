"""Relay-style connections with keyset cursors.

A list is ordered by a unique key (a name, or a name and the id); the cursor is that key,
base64-encoded, so paging never skips or repeats rows when others are inserted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry

from contractor.errors import InvalidInput
from contractor.schema.context import Info
from contractor.schema.prefetch import Tree, prefetch, selection_tree
from contractor.services import paging
from contractor.services.paging import Listing

NodeT = TypeVar("NodeT")

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Rows matching the filter, over all pages.")
    async def total_count(self) -> int:
        return await self._count()

    @strawberry.field(description="The nodes of this page (the edges without cursors).")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("after is not a cursor this list handed out", field="after") from None
    if not isinstance(key, list) or len(key) != width:
        raise InvalidInput("after is not a cursor this list handed out", field="after")
    return key


@dataclass(frozen=True)
class PageRequest:
    first: int | None
    after: str | None

    def size(self) -> int:
        size = DEFAULT_PAGE if self.first is None else self.first
        if not 0 <= size <= MAX_PAGE:
            raise InvalidInput(f"first must be from 0 to {MAX_PAGE}", field="first")
        return size


async def paginate(
    info: Info,
    listing: Listing,
    page: PageRequest,
    to_node: Callable[[Any], NodeT],
    *,
    from_records: bool = False,
) -> Connection[NodeT]:
    """One page of ``listing``, with the relationships the query selects below the nodes
    loaded for the whole page; ``from_records``: the nodes are made from records where
    the listing's model has them (``paging.page``)."""
    sessions = info.context.sessions
    size = page.size()
    after = None if page.after is None else decode_cursor(page.after, len(listing.order))
    async with sessions() as session:
        rows, has_next = await paging.page(
            session, listing, after=after, size=size, as_records=from_records
        )
    edges = [Edge(cursor=encode_cursor(listing.key(row)), node=to_node(row)) for row in rows]

    selected = selection_tree(info.selected_fields[0].selections) if info.selected_fields else {}
    below: Tree = {}
    for branch in (selected.get("edges", {}).get("node", {}), selected.get("nodes", {})):
        for name, subtree in branch.items():
            below.setdefault(name, {}).update(subtree)
    by_type: dict[type, list[Any]] = {}  # an interface's page holds nodes of several types
    for edge in edges:
        by_type.setdefault(type(edge.node), []).append(edge.node)
    for nodes in by_type.values():
        await prefetch(info.context.loaders, nodes, below)

    async def count() -> int:
        async with sessions() as session:
            return await paging.count(session, listing)

    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
        _count=count,
    )
