"""List filters as SQL: globs, site and blueprint scopes with what is below them, and the
refusals that name the field."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.models import Foundation, Site
from contractor.services import filters
from tests.factories import make_foundation, make_foundation_blueprint, make_site


@pytest.mark.parametrize(
    ("glob", "like"),
    [("web*", "web%"), ("rack?-u1", "rack_-u1"), ("50%_off", "50\\%\\_off"), ("a\\b", "a\\\\b")],
)
def test_globs_become_like_patterns(glob: str, like: str) -> None:
    assert filters.like_pattern(glob, field="name") == like


@pytest.mark.parametrize("glob", ["", "x" * 201])
def test_bad_globs_name_the_field(glob: str) -> None:
    with pytest.raises(InvalidInput) as info:
        filters.like_pattern(glob, field="hostname")
    assert info.value.field == "hostname"


async def _names(session: AsyncSession, where: filters.SiteFilter) -> list[str]:
    query = await filters.filter_sites(session, select(Site).order_by(Site.name), where)
    return [site.name for site in (await session.execute(query)).scalars()]


async def test_site_filters(session: AsyncSession) -> None:
    world = await make_site(session, "world")
    eu = await make_site(session, "eu", parent=world)
    await make_site(session, "eu-dc1", parent=eu)
    await make_site(session, "us", parent=world)
    assert await _names(session, filters.SiteFilter(name="eu*")) == ["eu", "eu-dc1"]
    assert await _names(session, filters.SiteFilter(parent="world")) == ["eu", "us"]
    assert await _names(session, filters.SiteFilter(roots_only=True)) == ["world"]
    within = filters.Scope("eu", include_descendants=True)
    assert await _names(session, filters.SiteFilter(within=within)) == ["eu", "eu-dc1"]
    with pytest.raises(InvalidInput) as info:
        await _names(session, filters.SiteFilter(parent="mars"))
    assert info.value.field == "parent"


async def test_foundation_filters_by_site_scope_and_state(session: AsyncSession) -> None:
    world = await make_site(session, "f-world")
    dc = await make_site(session, "f-dc", parent=world)
    blueprint = await make_foundation_blueprint(session)
    await make_foundation(session, world, blueprint, locator="top-1")
    await make_foundation(session, dc, blueprint, locator="dc-1")

    async def locators(where: filters.FoundationFilter) -> list[str]:
        base = select(Foundation).order_by(Foundation.locator)
        query = await filters.filter_foundations(session, base, where)
        return [f.locator for f in (await session.execute(query)).scalars()]

    tree = filters.Scope("f-world", include_descendants=True)
    assert await locators(filters.FoundationFilter(site=tree)) == ["dc-1", "top-1"]
    assert await locators(filters.FoundationFilter(site=filters.Scope("f-world"))) == ["top-1"]
    assert await locators(filters.FoundationFilter(state=["planned"], locator="dc*")) == ["dc-1"]
    assert await locators(filters.FoundationFilter(state=["built"])) == []
    assert await locators(filters.FoundationFilter(type=["MANUAL"])) == ["dc-1", "top-1"]
    assert await locators(filters.FoundationFilter(type=["Simulated"])) == []
    with pytest.raises(InvalidInput) as info:
        await locators(filters.FoundationFilter(type=["manual", "vcenter"]))
    assert (info.value.field, info.value.message) == (
        "type",
        "type names 'vcenter', which is not an installed foundation type "
        "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)",
    )
    with pytest.raises(InvalidInput) as info:
        await locators(filters.FoundationFilter(blueprint=filters.Scope("nothing")))
    assert info.value.field == "blueprint"
