"""Roles as field extensions: a field declares the least role that may use it
(``extensions=[Reader()]``; mutations through ``common.mutation``).

A refusal raises ``Forbidden`` naming the role and the caller's before the resolver runs; a
mutation answers it as its ``ForbiddenError`` (``errors.ERROR_HANDLERS``), a query raises it
as a GraphQL error. (Strawberry's ``permission_classes`` would do the same, but its extension
takes the field's arguments as keywords beside its own ``source``, so a field with an
argument named ``source``, like ``createScript``, could not have one.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from strawberry.extensions import FieldExtension

from contractor.schema.context import Info


class Role(FieldExtension):
    role: ClassVar[str]

    # source and info positional only: the arguments may hold a "source" of their own
    async def resolve_async(  # type: ignore[override]
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, /, **kwargs: Any
    ) -> Any:
        info.context.require(self.role)
        return await next_(source, info, **kwargs)


class Reader(Role):
    role = "reader"


class Operator(Role):
    role = "operator"


class Admin(Role):
    role = "admin"
