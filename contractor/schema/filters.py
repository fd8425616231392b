"""List filters: GraphQL inputs and the SQL conditions they become."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.errors import InvalidInput
from contractor.schema.types import BuildState, FoundationState
from contractor.services.site import site_descendant_ids


def like_pattern(pattern: str, *, field: str) -> str:
    """A glob (``web*``, ``rack?-u1``) as a LIKE pattern; other characters are literal."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
        raise InvalidInput(f"{field} must be a pattern of 1 to 200 characters", field=field)
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@strawberry.input(description="Where: a site, optionally with every site below it.")
class SiteScope:
    name: str
    include_descendants: bool = False


@strawberry.input(description="Which blueprint, optionally with every blueprint inheriting it.")
class BluePrintScope:
    name: str
    include_descendants: bool = False


@strawberry.input
class SiteFilter:
    name: str | None = strawberry.field(default=None, description="Glob, e.g. 'dc1-*'.")
    parent: str | None = strawberry.field(default=None, description="Direct children of this site.")
    within: SiteScope | None = None
    roots_only: bool = False


@strawberry.input
class FoundationFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    type: list[str] | None = None
    state: list[FoundationState] | None = None
    locator: str | None = strawberry.field(default=None, description="Glob, e.g. 'rack1-*'.")
    complex: str | None = strawberry.field(
        default=None, description="Hosted by structures of this complex."
    )
    network: int | None = strawberry.field(
        default=None, description="Has an interface on this network id."
    )
    has_structure: bool | None = None


@strawberry.input
class StructureFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    state: list[BuildState] | None = None
    hostname: str | None = strawberry.field(default=None, description="Glob, e.g. 'web*'.")
    foundation_type: list[str] | None = None
    complex: str | None = strawberry.field(default=None, description="Members of this complex.")
    network: int | None = strawberry.field(
        default=None, description="Whose foundation has an interface on this network id."
    )
    address_block: int | None = strawberry.field(
        default=None, description="Holding an address in this block id."
    )


async def _site_ids(session: AsyncSession, scope: SiteScope) -> list[int]:
    site = (
        await session.execute(select(models.Site).where(models.Site.name == scope.name))
    ).scalar_one_or_none()
    if site is None:
        raise InvalidInput(f"site {scope.name!r} does not exist", field="site")
    if not scope.include_descendants:
        return [site.id]
    return await site_descendant_ids(session, site)


async def _blueprint_ids(session: AsyncSession, scope: BluePrintScope) -> list[int]:
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


def foundation_state_condition(states: list[FoundationState]) -> ColumnElement[bool]:
    f = models.Foundation
    conditions = {
        FoundationState.PLANNED: f.located_at.is_(None),
        FoundationState.LOCATED: and_(f.located_at.is_not(None), f.built_at.is_(None)),
        FoundationState.BUILT: and_(f.located_at.is_not(None), f.built_at.is_not(None)),
    }
    return or_(*(conditions[s] for s in states))


def built_condition(column: Any, states: list[BuildState]) -> ColumnElement[bool]:
    return or_(
        *(column.is_(None) if s is BuildState.PLANNED else column.is_not(None) for s in states)
    )


async def filter_sites(
    session: AsyncSession, query: Select[Any], where: SiteFilter | None
) -> Select[Any]:
    if where is None:
        return query
    s = models.Site
    if where.name is not None:
        query = query.where(s.name.like(like_pattern(where.name, field="name"), escape="\\"))
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


def _complex_structures(name: str) -> Select[Any]:
    return (
        select(models.ComplexMember.structure_id)
        .join(models.Complex, models.Complex.id == models.ComplexMember.complex_id)
        .where(models.Complex.name == name)
    )


async def filter_foundations(
    session: AsyncSession, query: Select[Any], where: FoundationFilter | None
) -> Select[Any]:
    if where is None:
        return query
    f = models.Foundation
    if where.site is not None:
        query = query.where(f.site_id.in_(await _site_ids(session, where.site)))
    if where.blueprint is not None:
        query = query.where(f.blueprint_id.in_(await _blueprint_ids(session, where.blueprint)))
    if where.type:
        query = query.where(f.type.in_(where.type))
    if where.state:
        query = query.where(foundation_state_condition(where.state))
    if where.locator is not None:
        query = query.where(
            f.locator.like(like_pattern(where.locator, field="locator"), escape="\\")
        )
    if where.complex is not None:
        hosted = select(models.Structure.foundation_id).where(
            models.Structure.id.in_(_complex_structures(where.complex))
        )
        query = query.where(f.id.in_(hosted))
    if where.network is not None:
        query = query.where(
            f.id.in_(
                select(models.RealNetworkInterface.foundation_id).where(
                    models.RealNetworkInterface.network_id == where.network
                )
            )
        )
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
    if where.site is not None:
        query = query.where(s.site_id.in_(await _site_ids(session, where.site)))
    if where.blueprint is not None:
        query = query.where(s.blueprint_id.in_(await _blueprint_ids(session, where.blueprint)))
    if where.state:
        query = query.where(built_condition(s.built_at, where.state))
    if where.hostname is not None:
        query = query.where(
            s.hostname.like(like_pattern(where.hostname, field="hostname"), escape="\\")
        )
    if where.foundation_type:
        query = query.where(
            s.foundation_id.in_(
                select(models.Foundation.id).where(
                    models.Foundation.type.in_(where.foundation_type)
                )
            )
        )
    if where.complex is not None:
        query = query.where(s.id.in_(_complex_structures(where.complex)))
    if where.network is not None:
        query = query.where(
            s.foundation_id.in_(
                select(models.RealNetworkInterface.foundation_id).where(
                    models.RealNetworkInterface.network_id == where.network
                )
            )
        )
    if where.address_block is not None:
        query = query.where(
            s.id.in_(
                select(models.BaseAddress.structure_id).where(
                    models.BaseAddress.address_block_id == where.address_block
                )
            )
        )
    return query
