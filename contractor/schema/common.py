"""What the domain modules of the schema share: object types made from rows, reads through
the request's loaders, lookups, the delete answer, and argument helpers."""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Awaitable, Callable, Hashable
from functools import cache
from typing import Annotated, Any, Self, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.scalars import JSON

from contractor.errors import InvalidInput, NotFound
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.services import filters
from contractor.services.common import UNSET

T = TypeVar("T")


class Row:
    """An object type made from its ORM row: each of its fields without a default holds the
    row's attribute of the same name (``row``, if it has one, the row itself); ``from_row``
    takes the ones that differ."""

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls.from_row(row)

    @classmethod
    def from_row(cls, row: Any, **given: Any) -> Self:
        kind: object = cls  # a class is hashable (mypy does not see type[...] as Hashable)
        names, read, whole = _row_reader(kind, tuple(given))
        taken = dict(zip(names, read(row), strict=True)) if read is not None else {}
        if whole:
            taken["row"] = row
        return cls(**taken, **given)


@cache
def _row_fields(cls: Hashable) -> tuple[str, ...]:
    return tuple(
        field.name
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        if field.init
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    )


@cache
def _row_reader(
    cls: Hashable, given: tuple[str, ...]
) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]] | None, bool]:
    """The fields ``from_row`` takes from the row's attributes when ``given`` are given (a
    page makes thousands of nodes of a few types): their names, one getter for all of them
    (None: none), and whether the type holds the row itself."""
    names = tuple(n for n in _row_fields(cls) if n not in given and n != "row")
    whole = "row" in _row_fields(cls) and "row" not in given
    if not names:
        return names, None, whole
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return names, lambda row: (one(row),), whole
    return names, operator.attrgetter(*names), whole


async def load_one(info: Info, column: InstrumentedAttribute[Any], key: Any) -> Any:
    """The row whose unique ``column`` is ``key`` (None for no key), through the request's
    loader."""
    return None if key is None else await info.context.loaders.one(column).load(key)


async def linked(
    info: Info,
    link: InstrumentedAttribute[Any],
    order: InstrumentedAttribute[Any],
    key: Any,
    target: InstrumentedAttribute[Any],
    target_key: str,
) -> list[tuple[Any, Any]]:
    """Rows reached through a link table: the links whose ``link`` column is ``key`` (in
    ``order``), each with the row its ``target_key`` names by ``target``."""
    links = await info.context.loaders.many(link, order).load(key)
    targets = await info.context.loaders.one(target).load_many(
        [getattr(row, target_key) for row in links]
    )
    return list(zip(links, targets, strict=True))


async def optional(
    lookup: Callable[[AsyncSession, Any], Awaitable[T]], session: AsyncSession, key: Any
) -> T | None:
    """``lookup(session, key)``, or None for no key."""
    return None if key is None else await lookup(session, key)


async def each(
    lookup: Callable[[AsyncSession, Any], Awaitable[T]], session: AsyncSession, keys: Any
) -> list[T]:
    """``lookup(session, key)`` for every key, in order (None: none)."""
    return [await lookup(session, key) for key in keys or []]


async def found(info: Info, lookup: Callable[..., Awaitable[T]], *key: Any) -> T | None:
    """What a service's ``get_...`` finds by ``key``, or None where it does not exist."""
    async with info.context.sessions() as session:
        try:
            return await lookup(session, *key)
        except NotFound:
            return None


@strawberry.input
class Scope:
    """A site or a blueprint by name, optionally with everything below or inheriting it (an
    input's base: the SDL shows SiteScope and BluePrintScope)."""

    name: str
    include_descendants: bool = False

    def plain(self) -> filters.Scope:
        return filters.Scope(**plain_fields(self))


@strawberry.type(description="What a delete mutation removed.")
class Deleted:
    kind: str
    id: int


DeleteResult = Annotated[Deleted | AnyError, strawberry.union("DeleteResult")]


def given(value: Any) -> Any:
    """strawberry's 'argument not given' as the services' UNSET."""
    return UNSET if value is strawberry.UNSET else value


def given_object(value: JSON | None, field: str) -> Any:
    """An optional JSON object argument: UNSET when not given."""
    return UNSET if value is strawberry.UNSET else json_object(value, field)


def plain(value: Any) -> Any:
    """An argument as the services take it: an enum as its value, an input as its
    ``plain()`` (a service dataclass), a list item by item."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value.plain() if hasattr(value, "plain") else value


def plain_fields(given: Any) -> dict[str, Any]:
    """An input's fields as the services take them (see ``plain``)."""
    return {name: plain(value) for name, value in vars(given).items()}


def json_object(value: JSON | None, field: str) -> dict[str, Any]:
    """A JSON argument that must be an object (null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    return value
