"""List filters as SQL conditions: which sites, foundations and structures a list (or a
count) holds. Every part of a filter is optional; the given parts must all match."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from contractor import models
from contractor.errors import InvalidInput
from contractor.plugins import canonical_foundation_type
from contractor.services.site import site_descendant_ids


@dataclass(frozen=True)
class Scope:
    """A site or a blueprint by name, optionally with everything below it (sites) or
    inheriting it (blueprints)."""

    name: str
    include_descendants: bool = False


@dataclass(frozen=True)
class SiteFilter:
    name: str | None = None  # a glob
    parent: str | None = None  # direct children of this site
    within: Scope | None = None
    roots_only: bool = False


@dataclass(frozen=True)
class FoundationFilter:
    site: Scope | None = None
    blueprint: Scope | None = None
    type: Sequence[str] | None = None
    state: Sequence[str] | None = None  # planned, located, built
    locator: str | None = None  # a glob
    complex: str | None = None  # hosted by structures of this complex
    network: int | None = None  # has an interface on this network id
    has_structure: bool | None = None


@dataclass(frozen=True)
class StructureFilter:
    site: Scope | None = None
    blueprint: Scope | None = None
    state: Sequence[str] | None = None  # planned, built
    hostname: str | None = None  # a glob
    foundation_type: Sequence[str] | None = None
    complex: str | None = None  # members of this complex
    network: int | None = None  # whose foundation has an interface on this network id
    address_block: int | None = None  # holding an address in this block id


def like_pattern(pattern: str, *, field: str) -> str:
    """A glob (``web*``, ``rack?-u1``) as a LIKE pattern; other characters are literal."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
        raise InvalidInput(f"{field} must be a pattern of 1 to 200 characters", field=field)
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob(column: QueryableAttribute[str], pattern: str, *, field: str) -> ColumnElement[bool]:
    """``column`` matches the glob ``pattern`` (see ``like_pattern``)."""
    return column.like(like_pattern(pattern, field=field), escape="\\")


async def _site_ids(session: AsyncSession, scope: Scope) -> list[int]:
    site = (
        await session.execute(select(models.Site).where(models.Site.name == scope.name))
    ).scalar_one_or_none()
    if site is None:
        raise InvalidInput(f"site {scope.name!r} does not exist", field="site")
    if not scope.include_descendants:
        return [site.id]
    return await site_descendant_ids(session, site)


async def _blueprint_ids(session: AsyncSession, scope: Scope) -> list[int]:
    blueprint_id = (
        await session.execute(
            select(models.BluePrint.id).where(models.BluePrint.name == scope.name)
        )
    ).scalar_one_or_none()
    if blueprint_id is None:
        raise InvalidInput(f"blueprint {scope.name!r} does not exist", field="blueprint")
    if not scope.include_descendants:
        return [blueprint_id]
    tree = (
        select(models.BluePrint.id)
        .where(models.BluePrint.id == blueprint_id)
        .cte("bp_tree", recursive=True)
    )
    tree = tree.union(
        select(models.BluePrintParent.child_id).join(
            tree, models.BluePrintParent.parent_id == tree.c.id
        )
    )
    return list((await session.execute(select(tree.c.id))).scalars())


def foundation_state_condition(states: Sequence[str]) -> ColumnElement[bool]:
    f = models.Foundation
    conditions = {
        "planned": f.located_at.is_(None),
        "located": and_(f.located_at.is_not(None), f.built_at.is_(None)),
        "built": and_(f.located_at.is_not(None), f.built_at.is_not(None)),
    }
    return or_(*(conditions[s] for s in states))


def built_condition(column: Any, states: Sequence[str]) -> ColumnElement[bool]:
    return or_(*(column.is_(None) if s == "planned" else column.is_not(None) for s in states))


async def filter_sites(
    session: AsyncSession, query: Select[Any], where: SiteFilter | None
) -> Select[Any]:
    if where is None:
        return query
    s = models.Site
    if where.name is not None:
        query = query.where(_glob(s.name, where.name, field="name"))
    if where.parent is not None:
        parent = (
            await session.execute(select(s.id).where(s.name == where.parent))
        ).scalar_one_or_none()
        if parent is None:
            raise InvalidInput(f"site {where.parent!r} does not exist", field="parent")
        query = query.where(s.parent_id == parent)
    if where.within is not None:
        query = query.where(s.id.in_(await _site_ids(session, where.within)))
    if where.roots_only:
        query = query.where(s.parent_id.is_(None))
    return query


def _types(names: Sequence[str], *, field: str) -> list[str]:
    """Type names in any case, as stored (the installed types' own spelling)."""
    return [canonical_foundation_type(name, field=field) for name in names]


def _complex_structures(name: str) -> Select[Any]:
    return (
        select(models.ComplexMember.structure_id)
        .join(models.Complex, models.Complex.id == models.ComplexMember.complex_id)
        .where(models.Complex.name == name)
    )


def _on_network(column: Any, network_id: int) -> ColumnElement[bool]:
    """``column`` (a foundation id) is of a foundation with an interface on the network."""
    condition: ColumnElement[bool] = column.in_(
        select(models.RealNetworkInterface.foundation_id).where(
            models.RealNetworkInterface.network_id == network_id
        )
    )
    return condition


async def _placed(
    session: AsyncSession, query: Select[Any], row: Any, where: FoundationFilter | StructureFilter
) -> Select[Any]:
    """``query`` narrowed by the parts foundation and structure filters share."""
    if where.site is not None:
        query = query.where(row.site_id.in_(await _site_ids(session, where.site)))
    if where.blueprint is not None:
        query = query.where(row.blueprint_id.in_(await _blueprint_ids(session, where.blueprint)))
    return query


async def filter_foundations(
    session: AsyncSession, query: Select[Any], where: FoundationFilter | None
) -> Select[Any]:
    if where is None:
        return query
    f = models.Foundation
    query = await _placed(session, query, f, where)
    if where.type:
        query = query.where(f.type.in_(_types(where.type, field="type")))
    if where.state:
        query = query.where(foundation_state_condition(where.state))
    if where.locator is not None:
        query = query.where(_glob(f.locator, where.locator, field="locator"))
    if where.complex is not None:
        hosted = select(models.Structure.foundation_id).where(
            models.Structure.id.in_(_complex_structures(where.complex))
        )
        query = query.where(f.id.in_(hosted))
    if where.network is not None:
        query = query.where(_on_network(f.id, where.network))
    if where.has_structure is not None:
        carried = select(models.Structure.foundation_id)
        query = query.where(f.id.in_(carried) if where.has_structure else f.id.not_in(carried))
    return query


async def filter_structures(
    session: AsyncSession, query: Select[Any], where: StructureFilter | None
) -> Select[Any]:
    if where is None:
        return query
    s = models.Structure
    query = await _placed(session, query, s, where)
    if where.state:
        query = query.where(built_condition(s.built_at, where.state))
    if where.hostname is not None:
        query = query.where(_glob(s.hostname, where.hostname, field="hostname"))
    if where.foundation_type:
        query = query.where(
            s.foundation_id.in_(
                select(models.Foundation.id).where(
                    models.Foundation.type.in_(
                        _types(where.foundation_type, field="foundation_type")
                    )
                )
            )
        )
    if where.complex is not None:
        query = query.where(s.id.in_(_complex_structures(where.complex)))
    if where.network is not None:
        query = query.where(_on_network(s.foundation_id, where.network))
    if where.address_block is not None:
        query = query.where(
            s.id.in_(
                select(models.BaseAddress.structure_id).where(
                    models.BaseAddress.address_block_id == where.address_block
                )
            )
        )
    return query
