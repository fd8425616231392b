"""The kinds of field the domain modules declare, each with the least role that may use it:
a lookup (one object by its key, or null), a connection (a keyset-paged list), a mutation
(one transaction), a deletion (a mutation that deletes one object by its key) and a
subscription."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints

import strawberry
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.extensions import FieldExtension

from contractor.schema.common import Deleted, DeleteResult, found, linked, load_one, plain
from contractor.schema.context import Info
from contractor.schema.pagination import Connection, PageRequest, paginate
from contractor.schema.permissions import Operator, Reader, Role
from contractor.services.paging import Listing

_INJECTED = ("session", "info", "actor")
_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
_INFO = inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info)
_SESSION = inspect.Parameter("session", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def mutation(
    permission: type[Role], *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """A mutation field for callers with ``permission``, made of ``work(session, ...)``.

    ``work`` runs in one transaction of its own writer session, whose events name the
    caller as their actor; it may also take ``info`` and ``actor`` (the caller's username).
    Its other parameters are the field's arguments; ``**name: Unpack[SomeTypedDict]`` makes
    one argument of each key of (a service's) TypedDict, in its order (a key that is not
    required defaults to null), and passes them on together. A service error it raises, and
    a refusal, are answered as the Error union member (``errors.ERROR_HANDLERS``), with
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

        arguments = _arguments(work, wanted.values())
        resolve.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[_SELF, _INFO, *arguments]
        )
        return strawberry.mutation(
            resolver=resolve, name=name, description=description, extensions=[permission()]
        )

    return decorate


def _arguments(
    work: Callable[..., Any], parameters: Iterable[inspect.Parameter]
) -> list[inspect.Parameter]:
    """The field arguments of a mutation's ``work`` (see ``mutation``)."""
    arguments = []
    for parameter in parameters:
        if parameter.name in _INJECTED:
            continue
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD:
            arguments.append(parameter)
            continue
        (spread,) = get_args(get_type_hints(work, include_extras=True)[parameter.name])
        for key, hint in get_type_hints(spread, include_extras=True).items():
            # Required[...] is read from the hint: a module with postponed annotations
            # leaves it out of the TypedDict's __required_keys__.
            marked = get_origin(hint)
            kind = get_args(hint)[0] if marked in (Required, NotRequired) else hint
            needed = marked is Required or (
                marked is not NotRequired and key in spread.__required_keys__
            )
            default = inspect.Parameter.empty if needed else None
            keyword = inspect.Parameter.KEYWORD_ONLY
            arguments.append(inspect.Parameter(key, keyword, annotation=kind, default=default))
    return arguments


def deletion(
    kind: str,
    get: Callable[..., Awaitable[Any]],
    delete: Callable[[Any, Any], Awaitable[None]],
    *,
    role: type[Role] = Operator,
    field_name: str | None = None,
    description: str | None = None,
    **key: Any,
) -> Any:
    """A mutation field for callers with ``role`` (named ``field_name``, else after its
    attribute): the service's ``delete(session, row)`` of the row its ``get(session, *key)``
    finds by the arguments ``key`` names (name: type, in order), answered as ``Deleted`` with
    the GraphQL type name ``kind`` and the row's id."""

    async def work(session: Any, **arguments: Any) -> Deleted:
        row = await get(session, *(arguments[argument] for argument in key))
        await delete(session, row)
        return Deleted(kind=kind, id=row.id)

    keyword = inspect.Parameter.KEYWORD_ONLY
    work.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_SESSION, *(inspect.Parameter(n, keyword, annotation=t) for n, t in key.items())],
        return_annotation=DeleteResult,
    )
    return mutation(role, name=field_name, description=description)(work)


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


def query(
    resolve: Callable[..., Awaitable[Any]],
    returns: Any,
    *parameters: tuple[Any, ...],
    role: type[Role] | None = Reader,
    description: str | None = None,
) -> Any:
    """A field for callers with ``role`` (None: anyone who may read its object), answered by
    ``resolve(self, info, **arguments)``: its arguments are ``parameters``, each ``(name,
    type)`` or ``(name, type, default)``, its type ``returns``."""
    arguments = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default[0])
        if default
        else inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
        for name, kind, *default in parameters
    ]
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_SELF, _INFO, *arguments], return_annotation=returns
    )
    extensions: list[FieldExtension] = [] if role is None else [role()]
    return strawberry.field(resolver=resolve, description=description, extensions=extensions)


def fetched(node_type: Any, column: InstrumentedAttribute[Any], key: str) -> Any:
    """An object field: the ``node_type`` of the row whose unique ``column`` is the node's
    row's ``key`` (null for none), through the request's loader."""

    async def resolve(self: Any, info: Info) -> Any:
        row = await load_one(info, column, getattr(self.row, key))
        return None if row is None else node_type.of(row)

    return query(resolve, node_type | None, role=None)


def through(
    link: InstrumentedAttribute[Any],
    order: InstrumentedAttribute[Any],
    target: InstrumentedAttribute[Any],
    target_key: str,
    node: Callable[[Any, Any], Any],
    *,
    description: str | None = None,
) -> Any:
    """An object field of the list type it is annotated with: the rows reached from the
    node's row through a link table (``common.linked``: the links whose ``link`` column is
    the row's id, in ``order``, each with the row its ``target_key`` names by ``target``),
    each made into a node by ``node(link, row)``."""

    async def resolve(self: Any, info: Info) -> list[Any]:  # typed by the field's annotation
        links = await linked(info, link, order, self.row.id, target, target_key)
        return [node(link_row, row) for link_row, row in links]

    return strawberry.field(resolver=resolve, description=description)


def lookup(
    node_type: Any,
    get: Callable[..., Awaitable[Any]],
    *,
    of: Callable[[Any], Any] | None = None,
    description: str | None = None,
    **key: Any,
) -> Any:
    """A query field for readers: the ``node_type`` (made by ``of``, else its ``of``) of what
    the service's ``get(session, key)`` finds by the one argument ``key`` names, or null."""
    ((name, key_type),) = key.items()
    node = of or node_type.of

    async def resolve(self: Any, info: Info, **arguments: Any) -> Any:
        row = await found(info, get, arguments[name])
        if row is None:
            return None
        info.context.loaders.known(row)
        return node(row)

    return query(resolve, node_type | None, (name, key_type), description=description)


def connection(
    node_type: Any,
    listing: Callable[..., Awaitable[Listing]],
    *,
    of: Callable[[Any], Any] | None = None,
    role: type[Role] = Reader,
    description: str | None = None,
    **arguments: Any,
) -> Any:
    """A query field: a page of ``listing(session, **arguments)`` as nodes of ``node_type``
    (made by ``of``, else its ``of``). Each of ``arguments`` (name: type) is optional, null by
    default, and reaches the service as ``common.plain`` makes it; ``first`` and ``after``
    choose the page."""
    node = of or node_type.of
    # a node type whose row is read for its values only (``prefetch.relations``)
    from_records = of is None and getattr(node_type, "from_records", False)

    async def resolve(
        self: Any, info: Info, first: int | None = None, after: str | None = None, **given: Any
    ) -> Any:
        async with info.context.sessions() as session:
            listed = await listing(session, **{name: plain(value) for name, value in given.items()})
        page = PageRequest(first, after)
        return await paginate(info, listed, page, node, from_records=from_records)

    optional = {**arguments, "first": int, "after": str}
    parameters = [(name, kind | None, None) for name, kind in optional.items()]
    returns = Connection[node_type]
    return query(resolve, returns, *parameters, role=role, description=description)
