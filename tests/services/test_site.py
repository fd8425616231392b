"""Sites: name rules, the tree, config values, deletion refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InUse, InvalidInput, NotFound
from contractor.models import Site
from contractor.services import site as sites
from tests.factories import make_block, make_foundation, make_foundation_blueprint, make_site


async def test_create_and_get(session: AsyncSession) -> None:
    root = await make_site(session, "root", description="the top")
    child = await make_site(session, "child", parent=root, config_values={"a": 1, "<b": "x"})
    found = await sites.get_site(session, "child")
    assert found.id == child.id
    assert found.parent_id == root.id
    assert list(found.config_values) == ["a", "<b"]


@pytest.mark.parametrize("name", ["", "-x", "_x", "a b", "a.b", "é", "x" * 41])
async def test_bad_names_are_refused(session: AsyncSession, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await sites.create_site(session, name=name)
    assert info.value.field == "name"
    assert (await session.execute(select(Site))).first() is None


async def test_duplicate_name(session: AsyncSession) -> None:
    await make_site(session, "dup")
    with pytest.raises(Conflict, match="site 'dup' already exists"):
        await make_site(session, "dup")


async def test_config_values_are_checked(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput, match="_private"):
        await make_site(session, config_values={"_private": 1})
    with pytest.raises(InvalidInput, match="dns_servers"):
        await make_site(session, config_values={"dns_servers": "10.0.0.1"})
    with pytest.raises(InvalidInput, match="config_values"):
        await make_site(session, config_values={"x": float("nan")})


async def test_order_of_config_keys_survives_storage(session: AsyncSession) -> None:
    values = {"zz": 1, "<aa": "p", "aa": "x", ">aa": "s", "mm": [3, 1]}
    site = await make_site(session, config_values=values)
    session.expunge_all()
    stored = await sites.get_site(session, site.name)
    assert list(stored.config_values.items()) == list(values.items())


async def test_chain_and_descendants(session: AsyncSession) -> None:
    top = await make_site(session, "top")
    middle = await make_site(session, "middle", parent=top)
    leaf = await make_site(session, "leaf", parent=middle)
    other = await make_site(session, "other", parent=top)
    assert [s.name for s in await sites.site_chain(session, leaf)] == ["top", "middle", "leaf"]
    assert set(await sites.site_descendant_ids(session, top)) == {
        top.id,
        middle.id,
        leaf.id,
        other.id,
    }


async def test_parent_cycle_is_refused(session: AsyncSession) -> None:
    top = await make_site(session, "top")
    leaf = await make_site(session, "leaf", parent=await make_site(session, "mid", parent=top))
    with pytest.raises(InvalidInput, match="own ancestor"):
        await sites.update_site(session, top, parent=leaf)
    with pytest.raises(InvalidInput, match="own ancestor"):
        await sites.update_site(session, top, parent=top)
    assert top.parent_id is None


async def test_update_fields(session: AsyncSession) -> None:
    site = await make_site(session)
    other = await make_site(session)
    await sites.update_site(session, site, description="new", parent=other, config_values={"k": 1})
    assert (site.description, site.parent_id, site.config_values) == ("new", other.id, {"k": 1})
    await sites.update_site(session, site, parent=None)
    assert site.parent_id is None


async def test_missing_site(session: AsyncSession) -> None:
    with pytest.raises(NotFound, match="site 'nope' does not exist"):
        await sites.get_site(session, "nope")


async def test_delete_refuses_while_used(session: AsyncSession) -> None:
    site = await make_site(session, "busy")
    await make_site(session, "kid", parent=site)
    await make_foundation(session, site, await make_foundation_blueprint(session), locator="n1")
    await make_block(session, site, name="blk")
    with pytest.raises(InUse) as info:
        await sites.delete_site(session, site)
    message = str(info.value)
    assert "1 child sites (kid)" in message
    assert "1 foundations (n1)" in message
    assert "1 address blocks (blk)" in message
    assert await sites.get_site(session, "busy")


async def test_delete_empty_site(session: AsyncSession) -> None:
    site = await make_site(session, "gone")
    await sites.delete_site(session, site)
    with pytest.raises(NotFound):
        await sites.get_site(session, "gone")
