"""A publish with nothing changed answers from what the last one stored, and every kind of
change after it is still published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import EventHorizon, utcnow
from contractor.models.directory import PublishedZone, PublishedZoneList
from contractor.services import addresses, building, directory, dns, dns_push, network
from contractor.services import blueprint as bp_service
from contractor.services import site as site_service
from contractor.services.dns import DnsZone
from tests.bindgen.inventory import Lab, build_lab
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
)

# Tables only a build of the zones reads.
INVENTORY = ("structure", "base_address", "address_block", "zone_entry")


def by_name(zones: list[DnsZone]) -> dict[str, DnsZone]:
    return {zone.name: zone for zone in zones}


def names(zone: DnsZone) -> set[tuple[str, str, str]]:
    assert zone.data is not None, zone.problems
    return {(r.name, r.type, r.data) for r in zone.data.records}


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    seen: list[str] = []
    engine = session.sync_session.get_bind().engine

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def reads_inventory(sent: list[str]) -> bool:
    return any(f"FROM {table}" in s or f"JOIN {table}" in s for s in sent for table in INVENTORY)


async def published(session: AsyncSession) -> dict[str, DnsZone]:
    zones = by_name(await dns.publish_zones(session))
    await session.commit()
    return zones


async def test_a_publish_with_nothing_changed_reads_no_inventory(
    session: AsyncSession, tmp_path: Path
) -> None:
    await build_lab(session)
    await session.commit()
    with statements(session) as sent:
        first = await published(session)
    assert reads_inventory(sent)  # (the check can fail)
    assert all(zone.data is not None for zone in first.values())
    dns.export_zones(first.values(), tmp_path)

    with statements(session) as sent:
        again = await published(session)
    assert not reads_inventory(sent), sent
    queries = [s for s in sent if not s.startswith(("SAVEPOINT", "RELEASE"))]
    # the advisory lock (PostgreSQL), the list, the newest event, a later one, the event
    # horizon, the rows
    assert len(queries) <= 6, queries
    assert all(s.lstrip().startswith("SELECT") for s in queries), queries  # writes nothing
    assert list(again) == list(first)
    for name, zone in again.items():
        before = first[name]
        assert zone.data is None  # answered from the stored rows
        assert (zone.kind, zone.serial, zone.content_hash, zone.details) == (
            before.kind,
            before.serial,
            before.content_hash,
            before.details,
        )
        assert zone.valid
        assert not zone.changed
        assert zone.header == before.header
        assert dns.served_text(zone) == dns.served_text(before)
    result = dns.export_zones(again.values(), tmp_path)
    assert result.written == ()
    assert sorted(result.unchanged) == sorted(first)

    # A directory that lacks a file gets it from the stored text, unchanged.
    (tmp_path / "example.zone").unlink()
    (tmp_path / "0.0.10.in-addr.arpa.zone").unlink()
    result = dns.export_zones(again.values(), tmp_path)
    assert result.ok, result.invalid
    assert result.written == ("0.0.10.in-addr.arpa", "example")
    assert (tmp_path / "example.zone").read_text() == dns.zone_text(first["example"])

    # A caller that needs the records asks for a build.
    rebuilt = by_name(await dns.publish_zones(session, rebuild=True))
    assert names(rebuilt["example"]) == names(first["example"])
    assert rebuilt["example"].serial == first["example"].serial


async def _address(session: AsyncSession, lab: Lab) -> None:
    await addresses.create_address(
        session,
        structure=lab.structures["web1.dc1"],
        block=lab.blocks["v4"],
        offset=30,
        interface_name="eth2",
    )


async def _hostname(session: AsyncSession, lab: Lab) -> None:
    await building.update_structure(session, lab.structures["nopri.dc1"], hostname="renamed")


async def _site_zone(session: AsyncSession, lab: Lab) -> None:
    dc3 = await site_service.get_site(session, "dc3")
    await site_service.update_site(session, dc3, zone=lab.example)


async def _entry(session: AsyncSession, lab: Lab) -> None:
    await directory.create_entry(session, zone=lab.example, type="TXT", name="new", text="hi")


async def _zone_setting(session: AsyncSession, lab: Lab) -> None:
    await directory.update_zone(session, lab.example, ttl=1234)


async def _block(session: AsyncSession, lab: Lab) -> None:
    await network.update_address_block(session, lab.blocks["v4"], subnet="10.0.5.0/24")


def _saw_address(zones: dict[str, DnsZone]) -> None:
    assert ("eth2.web1", "A", "10.0.0.30") in names(zones["example"])
    assert ("30", "PTR", "eth2.web1.example.") in names(zones["0.0.10.in-addr.arpa"])


def _saw_hostname(zones: dict[str, DnsZone]) -> None:
    assert ("eth0.renamed", "A", "10.0.0.20") in names(zones["example"])
    assert not [r for r in names(zones["example"]) if "nopri" in r[0]]


def _saw_site_zone(zones: dict[str, DnsZone]) -> None:
    assert ("far", "A", "172.16.0.5") in names(zones["example"])
    assert "0.16.172.in-addr.arpa" in zones


def _saw_entry(zones: dict[str, DnsZone]) -> None:
    assert ("new", "TXT", '"hi"') in names(zones["example"])


def _saw_zone_setting(zones: dict[str, DnsZone]) -> None:
    data = zones["example"].data
    assert data is not None
    assert data.ttl == 1234


def _saw_block(zones: dict[str, DnsZone]) -> None:
    assert ("web1", "A", "10.0.5.10") in names(zones["example"])
    assert "5.0.10.in-addr.arpa" in zones, sorted(zones)
    assert "0.0.10.in-addr.arpa" not in zones


CHANGES: dict[
    str,
    tuple[Callable[[AsyncSession, Lab], Awaitable[None]], Callable[[dict[str, DnsZone]], None]],
] = {
    "address": (_address, _saw_address),
    "structure hostname": (_hostname, _saw_hostname),
    "site zone": (_site_zone, _saw_site_zone),
    "zone entry": (_entry, _saw_entry),
    "zone setting": (_zone_setting, _saw_zone_setting),
    "block": (_block, _saw_block),
}


@pytest.mark.parametrize("kind", list(CHANGES))
async def test_a_change_after_a_publish_with_nothing_changed_is_published(
    session: AsyncSession, kind: str
) -> None:
    lab = await build_lab(session)
    # A site without a zone, with one host: it publishes nothing until it gets one.
    dc3 = await make_site(session, "dc3")
    block = await network.create_address_block(
        session, site=dc3, name="far", subnet="172.16.0.0/24"
    )
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    far = await make_structure(
        session, dc3, await make_foundation(session, dc3, fbp), sbp, hostname="far"
    )
    await addresses.create_address(
        session, structure=far, block=block, offset=5, interface_name="eth0", is_primary=True
    )
    await session.commit()
    first = await published(session)
    same = await published(session)
    assert all(zone.data is None for zone in same.values())  # nothing changed: stored rows

    change, saw = CHANGES[kind]
    await change(session, lab)
    await session.commit()
    with statements(session) as sent:
        after = await published(session)
    assert reads_inventory(sent)
    saw(after)
    assert after["example"].changed
    assert after["example"].serial is not None
    assert first["example"].serial is not None
    assert after["example"].serial > first["example"].serial
    # ... and the next publish answers from what this one stored
    stored = await published(session)
    assert all(zone.data is None for zone in stored.values())
    assert {n: z.serial for n, z in stored.items()} == {n: z.serial for n, z in after.items()}


async def test_a_change_in_the_publishing_transaction_is_seen(session: AsyncSession) -> None:
    """Events are written at the commit: until then the transaction's own changes (even
    ones that cancel out) make a publish read the inventory."""
    lab = await build_lab(session)
    await session.commit()
    await published(session)
    await _entry(session, lab)
    assert ("new", "TXT", '"hi"') in names(by_name(await dns.publish_zones(session))["example"])
    zone = await directory.create_zone(session, name="brief", nameservers=["ns.elsewhere.net"])
    assert "brief" in by_name(await dns.publish_zones(session))
    await directory.delete_zone(session, zone)
    assert "brief" not in by_name(await dns.publish_zones(session))
    await session.commit()
    after = await published(session)
    assert "brief" not in after
    assert ("new", "TXT", '"hi"') in names(after["example"])


async def test_rolled_back_publish_changes_nothing(session: AsyncSession) -> None:
    lab = await build_lab(session)
    await session.commit()
    first = await published(session)
    await _entry(session, lab)
    await dns.publish_zones(session)  # stores its list ... which the rollback takes back
    await session.rollback()
    again = await published(session)
    assert all(zone.data is None for zone in again.values())
    assert again["example"].serial == first["example"].serial


async def test_stored_rows_that_no_longer_match_are_published_again(
    session: AsyncSession,
) -> None:
    await build_lab(session)
    await session.commit()
    first = await published(session)
    # Rows removed or left without text behind the publisher's back: it builds again.
    await session.execute(delete(PublishedZone).where(PublishedZone.name == "example"))
    await session.execute(
        update(PublishedZone).where(PublishedZone.name == "lab.example").values(text=None)
    )
    await session.commit()
    again = await published(session)
    assert again["example"].data is not None
    assert again["example"].text is not None
    assert again["lab.example"].text == dns.served_text(first["lab.example"])
    assert again["lab.example"].serial == first["lab.example"].serial
    stored = await published(session)
    assert all(zone.data is None for zone in stored.values())


async def test_unrelated_events_move_the_cursor(session: AsyncSession) -> None:
    """Events that cannot change a zone are skipped, and the list's cursor is moved on
    past many of them so the next look stays short."""
    await build_lab(session)
    await session.commit()
    await published(session)
    listing = (await session.execute(PublishedZoneList.__table__.select())).one()
    fbp = await make_foundation_blueprint(session)
    for _ in range(3):
        await bp_service.update_blueprint(session, fbp, description="x" + fbp.name)
        await session.commit()
    same = await published(session)
    assert all(zone.data is None for zone in same.values())
    moved = (await session.execute(PublishedZoneList.__table__.select())).one()
    assert moved.cursor == listing.cursor  # under the threshold: left alone
    assert not await dns.dns_changed_after(session, listing.cursor)


async def test_pruned_events_after_the_publish_make_it_read_again(session: AsyncSession) -> None:
    """Events the last publish never saw that were pruned since: the log cannot say what
    changed, so the inventory is read."""
    await build_lab(session)
    await session.commit()
    await published(session)
    (cursor,) = (await session.execute(select(PublishedZoneList.cursor))).one()
    await make_foundation_blueprint(session)  # events that change no zone ...
    await session.commit()
    assert not await dns.dns_changed_after(session, cursor)
    # ... and one that did, pruned since
    session.add(EventHorizon(id=1, cursor=cursor + 1, pruned_at=utcnow()))
    await session.commit()
    assert await dns.dns_changed_after(session, cursor)
    again = await published(session)
    assert all(zone.data is not None for zone in again.values())
    stored = await published(session)  # its cursor is past the horizon now
    assert all(zone.data is None for zone in stored.values())


async def test_the_pusher_gets_the_records_of_a_zone_answered_from_stored_rows(
    session: AsyncSession,
) -> None:
    """A failing zone retried with nothing changed: the publish answers from the stored
    rows, and the plan asks for a build to have the records it sends."""
    await build_lab(session)
    await session.commit()
    await published(session)

    def wanted(name: str) -> bool:
        return name == "example"

    (first,) = await dns_push.plan_pushes(session, wanted=wanted, lease_seconds=60)
    (row,) = (await dns_push.zone_rows(session)).values()
    row.state, row.leased_until, row.next_attempt_at = "failing", None, utcnow()
    await session.commit()
    assert all(zone.data is None for zone in (await published(session)).values())
    (retry,) = await dns_push.plan_pushes(session, wanted=wanted, lease_seconds=60)
    assert retry.push_id != first.push_id
    assert (retry.serial, retry.content_hash) == (first.serial, first.content_hash)
    assert retry.target == first.target
    assert retry.target  # the records, not an empty zone
