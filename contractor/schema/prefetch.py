"""Relationships resolved ahead for whole pages.

Relationship fields of the object types are plain attributes that start out ``LAZY``. A list
resolver knows which fields the query selects below its nodes: ``prefetch`` loads each
selected relationship for all nodes of the page at once (one batched query per relationship
and level, through the request's DataLoaders) and stores the results on the nodes, so
GraphQL reads them as plain attributes, with no resolver call and no await per row. A field
still ``LAZY`` when it is read (a single object, say) is loaded by ``attribute``, the schema's
default resolver, through the same DataLoaders. Results are identical either way; prefetching
only saves the per-field work, which is most of the cost of a large page.

Each relationship field declares how it is loaded (``related``); a type's table is read from
its fields when first needed (``relations``), so importing the schema registers nothing.

The request's loaders reach the default resolver through a context variable set when the
request's context is built (GraphQL's default resolver gets no ``info``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import strawberry
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from contractor.schema.loaders import Loaders
from contractor.services.records import Reader, reader

Tree = dict[str, "Tree"]

_RELATION = "contractor.relation"
_LOADS = "contractor.loads"


class _Lazy:
    def __repr__(self) -> str:
        return "LAZY"


LAZY: Any = _Lazy()


@dataclass(frozen=True)
class Relation:
    """How a node reaches related rows: by ``key`` (an attribute of its row) through the
    loader on ``column`` (unique: one row; otherwise a list ordered by ``order_by``, of the
    rows ``keep`` keeps)."""

    column: InstrumentedAttribute[Any]
    key: str
    order_by: tuple[InstrumentedAttribute[Any], ...] = ()
    keep: Callable[[Any], bool] | None = None


def related(
    column: InstrumentedAttribute[Any],
    key: str,
    *,
    order_by: tuple[InstrumentedAttribute[Any], ...] = (),
    keep: Callable[[Any], bool] | None = None,
    description: str | None = None,
) -> Any:
    """A relationship field: ``LAZY`` until it is loaded, through ``Relation(column, key)``,
    into nodes of the field's type (made by its ``of``)."""
    relation = Relation(column, key, order_by, keep)
    return strawberry.field(default=LAZY, description=description, metadata={_RELATION: relation})


def loads(field: str) -> dict[str, str]:
    """Metadata for a computed field: selecting it prefetches the relationship ``field`` it
    is computed from."""
    return {_LOADS: field}


@dataclass(frozen=True)
class _Bound:
    """A relationship field of one object type, bound to its nodes' type."""

    relation: Relation
    convert: Callable[[Any], Any]
    many: bool
    into: str  # the attribute that holds the result
    read: Reader | None  # the rows as records, not ORM objects (``services.records``)

    def loader(self, loaders: Loaders) -> Any:
        if self.many:
            return loaders.many(self.relation.column, *self.relation.order_by, read=self.read)
        return loaders.one(self.relation.column, self.read)

    async def fetch(self, loaders: Loaders, keys: list[Any]) -> list[Any]:
        """The rows for ``keys`` in one query, without a DataLoader's per-key futures (a
        page asks for each key once)."""
        if self.many:
            found = await loaders.fetch_many(
                self.relation.column, keys, self.relation.order_by, self.read
            )
        else:
            found = await loaders.fetch_one(self.relation.column, keys, self.read)
        # what a field below asks of the same relation later is then answered from memory
        self.loader(loaders).prime_many(dict(zip(keys, found, strict=True)))
        return found

    def finish(self, loaded: Any) -> Any:
        keep = self.relation.keep
        if self.many:
            return [self.convert(r) for r in loaded if keep is None or keep(r)]
        return None if loaded is None else self.convert(loaded)


def _node_type(field: StrawberryField) -> tuple[Any, bool]:
    """The object type a relationship field holds, and whether it holds a list."""
    kind: Any = field.type
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    many = isinstance(kind, StrawberryList)
    if many:
        kind = kind.of_type
    if isinstance(kind, LazyType):
        kind = kind.resolve_type()
    return kind, many


@cache
def relations(cls: Hashable) -> dict[str, _Bound]:
    """The relationship fields of an object type by Python name, as its fields declare them
    (``related``, ``loads``); each converts its rows with its node type's ``of``. A node
    type whose class sets ``from_records`` (every use of its ``row`` reads values only)
    is made from records where its model has them."""
    fields = cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
    found: dict[str, _Bound] = {}
    for field in fields:
        relation = field.metadata.get(_RELATION)
        if relation is not None:
            kind, many = _node_type(field)
            plain = getattr(kind, "from_records", False)
            read = reader(relation.column.class_) if plain else None
            found[field.python_name] = _Bound(relation, kind.of, many, field.python_name, read)
    for field in fields:
        if _LOADS in field.metadata:
            found[field.python_name] = found[field.metadata[_LOADS]]
    return found


current_loaders: ContextVar[Loaders] = ContextVar("current_loaders")


def attribute(node: Any, name: str) -> Any:
    """The schema's default resolver: an attribute, loading it first if it is still LAZY."""
    value = getattr(node, name)
    if value is LAZY:
        return resolve(node, current_loaders.get(), name)
    return value


def resolve(node: Any, loaders: Loaders, field: str) -> Any:
    """An awaitable that loads a relationship of one node."""
    bound = relations(node.__class__)[field]
    key = getattr(node.row, bound.relation.key)
    if key is None:
        return [] if bound.many else None

    async def load() -> Any:
        value = bound.finish(await bound.loader(loaders).load(key))
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
    known = relations(nodes[0].__class__)
    work: list[Awaitable[None]] = []
    for gql_name, subtree in tree.items():
        bound = known.get(_python_name(gql_name))
        if bound is not None:
            work.append(_prefetch_field(loaders, nodes, bound, subtree))
    await asyncio.gather(*work)


async def _prefetch_field(loaders: Loaders, nodes: list[Any], bound: _Bound, subtree: Tree) -> None:
    keys = [getattr(node.row, bound.relation.key) for node in nodes]
    wanted = [k for k in dict.fromkeys(keys) if k is not None]
    loaded = await bound.fetch(loaders, wanted) if wanted else []
    # One node per related row, shared by every node that points at it: a page of a
    # thousand hosts in four sites makes four site nodes, and their own relationships are
    # then loaded for four nodes, not a thousand.
    converted = {key: bound.finish(row) for key, row in zip(wanted, loaded, strict=True)}
    empty: Any = [] if bound.many else None
    for node, key in zip(nodes, keys, strict=True):
        setattr(node, bound.into, empty if key is None else converted[key])
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
