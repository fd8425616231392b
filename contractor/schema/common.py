"""What every domain module of the schema uses: the mutation and subscription fields (a role
each), single-object reads, the delete answer, and argument helpers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Annotated, Any, TypeVar

import strawberry
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


async def found(info: Info, lookup: Callable[..., Awaitable[T]], *key: Any) -> T | None:
    """What a service's ``get_...`` finds by ``key``, or None where it does not exist."""
    async with info.context.sessions() as session:
        try:
            return await lookup(session, *key)
        except NotFound:
            return None


@strawberry.type(description="What a delete mutation removed.")
class Deleted:
    kind: str
    id: int


DeleteResult = Annotated[Deleted | AnyError, strawberry.union("DeleteResult")]


def given(value: Any) -> Any:
    """strawberry's 'argument not given' as the services' UNSET."""
    return UNSET if value is strawberry.UNSET else value


def json_object(value: JSON | None, field: str) -> dict[str, Any]:
    """A JSON argument that must be an object (null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    return value
