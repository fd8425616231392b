"""Relationships resolved ahead for whole pages.

Relationship fields of the object types are plain attributes that start out ``LAZY``. A list
resolver knows which fields the query selects below its nodes: ``prefetch`` loads each
selected relationship for all nodes of the page at once (one batched query per relationship
and level, through the request's DataLoaders) and stores the results on the nodes, so
GraphQL reads them as plain attributes, with no resolver call and no await per row. A field
still ``LAZY`` when it is read (a single object, say) is loaded by ``attribute``, the schema's
default resolver, through the same DataLoaders. Results are identical either way; prefetching
only saves the per-field work, which is most of the cost of a large page.

The request's loaders reach the default resolver through a context variable set when the
request's context is built (GraphQL's default resolver gets no ``info``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from contractor.schema.loaders import Loaders

Tree = dict[str, "Tree"]


@dataclass(frozen=True)
class Relation:
    """How a node reaches related rows: by ``key`` (an attribute of its row) through the
    loader on ``column`` (unique: one row; otherwise a list ordered by ``order_by``)."""

    column: InstrumentedAttribute[Any]
    key: str
    convert: Callable[[Any], Any]
    many: bool = False
    order_by: tuple[InstrumentedAttribute[Any], ...] = ()
    keep: Callable[[Any], bool] | None = None
    into: str | None = None  # the attribute that holds the result (default: the field's)

    def loader(self, loaders: Loaders) -> Any:
        if self.many:
            return loaders.many(self.column, *self.order_by)
        return loaders.one(self.column)

    async def fetch(self, loaders: Loaders, keys: list[Any]) -> list[Any]:
        """The rows for ``keys`` in one query, without a DataLoader's per-key futures (a
        page asks for each key once)."""
        if self.many:
            return await loaders.fetch_many(self.column, keys, self.order_by)
        return await loaders.fetch_one(self.column, keys)

    def finish(self, loaded: Any) -> Any:
        if self.many:
            return [self.convert(r) for r in loaded if self.keep is None or self.keep(r)]
        return None if loaded is None else self.convert(loaded)


class _Lazy:
    def __repr__(self) -> str:
        return "LAZY"


LAZY: Any = _Lazy()

# (type name, Python field name) -> Relation; filled in by the types module.
RELATIONS: dict[tuple[str, str], Relation] = {}

current_loaders: ContextVar[Loaders] = ContextVar("current_loaders")


def attribute(node: Any, name: str) -> Any:
    """The schema's default resolver: an attribute, loading it first if it is still LAZY."""
    value = getattr(node, name)
    if value is LAZY:
        return resolve(node, current_loaders.get(), name)
    return value


def resolve(node: Any, loaders: Loaders, field: str) -> Any:
    """An awaitable that loads a relationship of one node."""
    relation = RELATIONS[(type(node).__name__, field)]
    key = getattr(node.row, relation.key)
    if key is None:
        return [] if relation.many else None

    async def load() -> Any:
        value = relation.finish(await relation.loader(loaders).load(key))
        setattr(node, field, value)
        return value

    return load()


def _python_name(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def selection_tree(selections: list[Any]) -> Tree:
    """Field names selected below, fragments merged, as nested dicts."""
    tree: Tree = {}
    for selection in selections:
        if isinstance(selection, SelectedField):
            child = tree.setdefault(selection.name, {})
            _merge(child, selection_tree(selection.selections))
        elif isinstance(selection, FragmentSpread | InlineFragment):
            _merge(tree, selection_tree(selection.selections))
    return tree


def _merge(into: Tree, other: Tree) -> None:
    for name, sub in other.items():
        _merge(into.setdefault(name, {}), sub)


async def prefetch(loaders: Loaders, nodes: list[Any], tree: Tree) -> None:
    """Load every selected relationship of ``nodes`` (all of one type), level by level."""
    if not nodes or not tree:
        return
    type_name = type(nodes[0]).__name__
    work: list[Awaitable[None]] = []
    for gql_name, subtree in tree.items():
        field = _python_name(gql_name)
        relation = RELATIONS.get((type_name, field))
        if relation is None:
            continue
        work.append(_prefetch_field(loaders, nodes, field, relation, subtree))
    await asyncio.gather(*work)


async def _prefetch_field(
    loaders: Loaders, nodes: list[Any], field: str, relation: Relation, subtree: Tree
) -> None:
    keys = [getattr(node.row, relation.key) for node in nodes]
    wanted = [k for k in dict.fromkeys(keys) if k is not None]
    loaded = await relation.fetch(loaders, wanted) if wanted else []
    # One node per related row, shared by every node that points at it: a page of a
    # thousand hosts in four sites makes four site nodes, and their own relationships are
    # then loaded for four nodes, not a thousand.
    converted = {key: relation.finish(row) for key, row in zip(wanted, loaded, strict=True)}
    empty: Any = [] if relation.many else None
    into = relation.into or field
    for node, key in zip(nodes, keys, strict=True):
        setattr(node, into, empty if key is None else converted[key])
    children: list[Any] = []
    for value in converted.values():
        if isinstance(value, list):
            children.extend(value)
        elif value is not None:
            children.append(value)
    by_type: dict[type, list[Any]] = {}
    for child in children:
        by_type.setdefault(type(child), []).append(child)
    await asyncio.gather(*(prefetch(loaders, group, subtree) for group in by_type.values()))
