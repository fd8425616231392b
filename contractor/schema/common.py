"""What every domain module of the schema uses: the mutation and subscription fields (a role
each), object types made from rows, single-object reads, the delete answer, and argument
helpers."""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from contextlib import aclosing
from functools import cache
from typing import Annotated, Any, Self, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.scalars import JSON

from contractor.errors import InvalidInput, NotFound
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.permissions import Role
from contractor.services.common import UNSET

T = TypeVar("T")

_INJECTED = ("session", "info", "actor")
_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
_INFO = inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info)


def mutation(
    permission: type[Role], *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """A mutation field for callers with ``permission``, made of ``work(session, ...)``.

    ``work`` runs in one transaction of its own writer session, whose events name the
    caller as their actor; it may also take ``info`` and ``actor`` (the caller's username).
    Its other parameters are the field's arguments. A service error it raises, and a
    refusal, are answered as the Error union member (``errors.ERROR_HANDLERS``), with
    nothing changed.
    """

    def decorate(work: Callable[..., Awaitable[Any]]) -> Any:
        signature = inspect.signature(work)
        wanted = signature.parameters

        @functools.wraps(work)
        async def resolve(self: Any, info: Info, **arguments: Any) -> Any:
            principal = info.context.principal
            assert principal is not None  # the permission admitted someone
            if "info" in wanted:
                arguments["info"] = info
            if "actor" in wanted:
                arguments["actor"] = principal.username
            async with info.context.writer_sessions() as session, session.begin():
                session.info["actor"] = principal.username  # for the events it writes
                return await work(session, **arguments)

        arguments = [p for n, p in wanted.items() if n not in _INJECTED]
        resolve.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[_SELF, _INFO, *arguments]
        )
        return strawberry.mutation(
            resolver=resolve, name=name, description=description, extensions=[permission()]
        )

    return decorate


def subscription(
    permission: type[Role], *, description: str | None = None
) -> Callable[[Callable[..., AsyncGenerator[Any, None]]], Any]:
    """A subscription field for callers with ``permission``. The role is checked as the
    stream starts, so a refusal arrives as the stream's error (as any failure of it does),
    not as a refusal of the operation."""

    def decorate(stream: Callable[..., AsyncGenerator[Any, None]]) -> Any:
        @functools.wraps(stream)
        async def checked(self: Any, info: Info, **arguments: Any) -> AsyncGenerator[Any, None]:
            info.context.require(permission.role)
            async with aclosing(stream(self, info, **arguments)) as items:
                async for item in items:
                    yield item

        return strawberry.subscription(resolver=checked, description=description)

    return decorate


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


async def removed(
    session: AsyncSession,
    kind: str,
    remove: Callable[[AsyncSession, Any], Awaitable[None]],
    row: Any,
) -> Deleted:
    """Delete ``row`` with the service's ``remove``; the answer names it."""
    await remove(session, row)
    return Deleted(kind=kind, id=row.id)


async def found(info: Info, lookup: Callable[..., Awaitable[T]], *key: Any) -> T | None:
    """What a service's ``get_...`` finds by ``key``, or None where it does not exist."""
    async with info.context.sessions() as session:
        try:
            return await lookup(session, *key)
        except NotFound:
            return None


class Row:
    """An object type made from its ORM row: each of its fields without a default holds the
    row's attribute of the same name (``row``, if it has one, the row itself); ``from_row``
    takes the ones that differ."""

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls.from_row(row)

    @classmethod
    def from_row(cls, row: Any, **given: Any) -> Self:
        kind: object = cls
        taken = {
            name: row if name == "row" else getattr(row, name)
            for name in _row_fields(kind)
            if name not in given
        }
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


def plain(given: Any, into: Callable[..., T]) -> T | None:
    """The service filter ``into`` holding what the input ``given`` says (None: no filter):
    the same fields, enums as their values, nested inputs as their ``plain()``."""
    if given is None:
        return None
    return into(**{name: _plain(value) for name, value in vars(given).items()})


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.plain() if hasattr(value, "plain") else value


def json_object(value: JSON | None, field: str) -> dict[str, Any]:
    """A JSON argument that must be an object (null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    return value
