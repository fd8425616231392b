"""The outbox: every inventory change writes its event in the changing transaction, once per
object, with the actor and a payload without secrets; nothing for what rolls back."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.models import Event
from contractor.services import blueprint as bp_service
from contractor.services import building, events, interfaces
from contractor.services import site as site_service
from contractor.services.events import EventFilter, events_after, latest_cursor, record_event
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_stack,
    make_structure,
    make_structure_blueprint,
)


async def _events(session: AsyncSession, after: int = 0) -> list[Event]:
    rows = await session.execute(select(Event).where(Event.id > after).order_by(Event.id))
    return list(rows.scalars())


async def test_creates_are_events_with_actor_site_and_blueprint(session: AsyncSession) -> None:
    start = await latest_cursor(session)
    events.set_actor(session, "alice")
    site, foundation, structure = await make_stack(session)
    await session.commit()

    rows = await _events(session, start)
    assert [(r.kind, r.object_type) for r in rows] == [
        ("created", "site"),
        ("created", "foundation_blueprint"),
        ("created", "structure_blueprint"),
        ("created", "foundation"),
        ("created", "structure"),
    ]
    assert {r.actor for r in rows} == {"alice"}
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    by_type = {r.object_type: r for r in rows}
    assert by_type["structure"].object_id == structure.id
    assert by_type["structure"].object_name == structure.hostname
    assert by_type["structure"].site_id == site.id
    assert by_type["structure"].blueprint_id == structure.blueprint_id
    assert by_type["structure"].payload["state"] == "planned"
    assert by_type["structure"].payload["config_uuid"] == structure.config_uuid
    assert by_type["foundation"].payload["locator"] == foundation.locator
    assert by_type["site"].site_id == site.id


async def test_one_event_per_object_per_transaction(session: AsyncSession) -> None:
    _site, foundation, structure = await make_stack(session)
    await session.commit()
    start = await latest_cursor(session)

    await building.update_structure(session, structure, config_values={"a": 1})
    await building.set_located(session, foundation)
    await building.set_built(session, foundation)
    await building.set_structure_built(session, structure)
    await session.commit()

    rows = await _events(session, start)
    assert [(r.kind, r.object_type) for r in rows] == [
        ("updated", "structure"),
        ("updated", "foundation"),
    ]
    assert set(rows[0].changed) == {"config_values", "built_at"}
    assert rows[0].payload["state"] == "built"
    assert rows[1].changed == ["built_at", "located_at"]
    assert rows[1].payload["state"] == "built"

    # created and changed in one transaction is one "created" with the final state
    start = await latest_cursor(session)
    other = await make_site(session, description="first")
    await site_service.update_site(session, other, description="second")
    await session.commit()
    rows = await _events(session, start)
    assert [(r.kind, r.payload["description"]) for r in rows] == [("created", "second")]

    # created and deleted again is nothing at all
    start = await latest_cursor(session)
    gone = await make_site(session)
    await site_service.delete_site(session, gone)
    await session.commit()
    assert await _events(session, start) == []


async def test_deletes_carry_the_last_state(session: AsyncSession) -> None:
    site, _foundation, structure = await make_stack(session)
    await session.commit()
    start = await latest_cursor(session)
    await building.delete_structure(session, structure)
    await session.commit()
    [row] = await _events(session, start)
    assert (row.kind, row.object_type, row.object_id) == ("deleted", "structure", structure.id)
    assert row.payload["hostname"] == structure.hostname
    assert row.site_id == site.id


async def test_rolled_back_changes_write_nothing(session: AsyncSession) -> None:
    start = await latest_cursor(session)
    await make_site(session, name="kept")
    savepoint = await session.begin_nested()
    await make_site(session, name="dropped")
    await savepoint.rollback()
    await session.commit()
    assert [r.object_name for r in await _events(session, start)] == ["kept"]

    await make_site(session, name="rolledback")
    await session.rollback()
    await make_site(session, name="after")
    await session.commit()
    assert [r.object_name for r in await _events(session, start)] == ["kept", "after"]


async def test_secrets_never_reach_the_payload(session: AsyncSession) -> None:
    start = await latest_cursor(session)
    await make_site(
        session,
        config_values={
            "ntp": "pool",
            "root_password": "hunter2",
            "nested": {"api_token": "t", "db": {"Private_Key": "k", "host": "h"}},
            "list": [{"client_secret": "s", "x": 1}],
        },
    )
    await session.commit()
    [row] = await _events(session, start)
    assert row.payload["config_values"] == {
        "ntp": "pool",
        "nested": {"db": {"host": "h"}},
        "list": [{"x": 1}],
    }
    assert "hunter2" not in repr(row.payload)


@pytest.mark.parametrize("name", ["bmc_passwd", "api_key", "ssh_key", "snmp_community", "Token"])
async def test_every_secret_word_keeps_its_value_out_of_the_payload(
    session: AsyncSession, name: str
) -> None:
    """Events go by the one list of secret words (contractor.secret_names), like answers."""
    start = await latest_cursor(session)
    await make_site(session, config_values={"ntp": "pool", name: "hunter22"})
    await session.commit()
    [row] = await _events(session, start)
    assert row.payload["config_values"] == {"ntp": "pool"}
    assert "hunter22" not in repr(row.payload)


async def test_link_rows_and_bulk_statements_update_their_owner(session: AsyncSession) -> None:
    parent = await make_structure_blueprint(session)
    child = await make_structure_blueprint(session)
    await session.commit()
    start = await latest_cursor(session)
    await bp_service.set_parents(session, child, [parent])
    await session.commit()
    [row] = await _events(session, start)
    assert (row.kind, row.object_name, row.changed) == ("updated", child.name, ["parents"])

    start = await latest_cursor(session)
    await bp_service.set_parents(session, child, [])  # a bulk DELETE only
    await session.commit()
    [row] = await _events(session, start)
    assert (row.kind, row.object_name, row.changed) == ("updated", child.name, ["parents"])


async def test_parts_carry_their_owners_site(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session, physical_interface_names=["eth0"])
    foundation = await make_foundation(session, site, fbp)
    await session.commit()
    start = await latest_cursor(session)
    await interfaces.add_interface(session, foundation=foundation, physical_location="eth0")
    await session.commit()
    [row] = await _events(session, start)
    assert (row.kind, row.object_type, row.site_id) == ("created", "network_interface", site.id)
    assert row.blueprint_id == fbp.id


async def test_record_event_joins_the_transaction(session: AsyncSession) -> None:
    site = await make_site(session)
    await session.commit()
    start = await latest_cursor(session)
    record_event(session, kind="paused", object=site, payload={"message": "x", "password": "p"})
    await session.commit()
    [row] = await _events(session, start)
    assert (row.kind, row.object_type, row.object_id, row.site_id) == (
        "paused",
        "site",
        site.id,
        site.id,
    )
    assert row.payload == {"message": "x"}

    record_event(session, kind="paused", object=site)
    await session.rollback()
    await session.commit()
    assert len(await _events(session, start)) == 1


async def test_filters_follow_the_site_tree(session: AsyncSession) -> None:
    top = await make_site(session)
    await session.commit()
    start = await latest_cursor(session)
    tree = await events.site_tree(session)
    wanted = EventFilter.build(site_id=top.id, object_types=["structure", "site"], tree=tree)
    other = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    child = await make_site(session, parent=top)
    await session.commit()  # the child site is newer than the filter
    inside = await make_structure(
        session, child, await make_foundation(session, child, fbp), sbp, hostname="inside"
    )
    await make_structure(
        session, other, await make_foundation(session, other, fbp), sbp, hostname="outside"
    )
    await session.commit()

    names: list[tuple[str, str]] = []
    upto, more = start, True
    while more:
        matched, upto, more = await events_after(session, after=upto, filter=wanted, limit=2)
        names += [(r.object_type, r.object_name) for r in matched]
    assert names == [("site", child.name), ("structure", inside.hostname)]


async def test_cursors_follow_commit_order() -> None:
    """PostgreSQL: a transaction that changed its rows first but commits last still gets the
    later cursor, so a reader of "after N" never skips it."""
    settings = Settings(database_url=make_pg_database("contractor_events"))
    migrate.upgrade(settings)
    engine = create_engine(settings)
    writers = create_session_factory(engine, writes=True)
    try:
        async with writers() as first, writers() as second:
            await make_site(first, name="flushed-first")
            await make_site(second, name="committed-first")
            await second.commit()
            await first.commit()
            rows = await _events(first)
        assert [r.object_name for r in rows] == ["committed-first", "flushed-first"]
    finally:
        await engine.dispose()


async def test_a_change_only_the_commit_flushes_has_its_event(session: AsyncSession) -> None:
    """A change still pending when ``commit()`` is called (no flush before it) is flushed
    before the transaction's event rows are written, so it has its event."""
    site = await make_site(session, description="first")
    await session.commit()
    start = await latest_cursor(session)

    site.description = "set on the object, flushed by the commit"
    await session.commit()

    rows = await _events(session, start)
    assert [(r.kind, r.object_type, r.changed) for r in rows] == [
        ("updated", "site", ["description"])
    ]
    assert rows[0].payload["description"] == "set on the object, flushed by the commit"
