"""Lookups, refusals, the setting of given fields and the retry backoff that the service
modules share."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from contractor.errors import InUse, NotFound
from contractor.models import Base

ModelT = TypeVar("ModelT", bound=Base)

# How many names an "in use" message lists before it only counts.
_SHOWN = 5


class _Unset:
    """The type of ``UNSET``: an argument the caller did not give (None is a real value)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def set_given(obj: Any, **fields: tuple[Any, Callable[[Any], Any]]) -> None:
    """Set each field the caller gave (its value is not ``UNSET``) to what its check makes
    of it, in the order given: ``set_given(site, description=(description,
    check_description))``. A check raises to refuse the value; nothing after it is set."""
    for name, (value, check) in fields.items():
        if value is not UNSET:
            setattr(obj, name, check(value))


async def added(session: AsyncSession, row: ModelT) -> ModelT:
    """Add a new ``row``, flush it (so it has its id) and hand it back."""
    session.add(row)
    await session.flush()
    return row


def id_or_none(row: Any) -> int | None:
    """A foreign key given as the row it points to: the row's id, or None for None."""
    return None if row is None else int(row.id)


async def get_by(
    session: AsyncSession,
    model: type[ModelT],
    column: InstrumentedAttribute[Any],
    value: Any,
    *,
    what: str,
    in_site: Any = None,
    for_update: bool = False,
) -> ModelT:
    """The one row whose ``column`` equals ``value`` (in site ``in_site`` when given: the
    model's ``site_id`` names it), or NotFound naming ``what``."""
    query = select(model).where(column == value)
    if in_site is not None:
        query = query.where(model.site_id == in_site.id)  # type: ignore[attr-defined]
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} {value!r} does not exist", field=what.split()[-1])
    return row


async def refuse_if_used(
    session: AsyncSession,
    description: str,
    users: Sequence[tuple[str, InstrumentedAttribute[Any], ColumnElement[bool]]],
) -> None:
    """Raise InUse naming what still refers to the object, if anything does.

    ``users`` lists ``(plural noun, name column, condition)``: e.g. ``("foundations",
    Foundation.locator, Foundation.site_id == site.id)``.
    """
    parts: list[str] = []
    for noun, name_column, condition in users:
        total = (
            await session.execute(
                select(func.count()).select_from(name_column.class_).where(condition)
            )
        ).scalar_one()
        if not total:
            continue
        names = (
            await session.execute(
                select(name_column).where(condition).order_by(name_column).limit(_SHOWN)
            )
        ).scalars()
        shown = ", ".join(str(n) for n in names)
        more = f", and {total - _SHOWN} more" if total > _SHOWN else ""
        parts.append(f"{total} {noun} ({shown}{more})")
    if parts:
        raise InUse(f"{description} is still used by " + "; ".join(parts))


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempt`` failures in a row: exponential, capped,
    with full jitter over the upper half (so that many retries spread out but never come
    early). Webhook deliveries and DNS pushes retry so."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
