"""Discovery: machines that booted with no reservation report their hardware
(``docs/boot.md``, "Discovery").

``record_report`` keeps the report as ``DiscoveredHardware`` (one row per boot MAC: a second
report updates it), matches it to a Foundation of the site (any reported MAC on one of its
interfaces, or its serial as the Foundation's locator or the ``serial`` of its hardware
identity), and locates that Foundation when the match is unique, it is planned and its
blueprint's fingerprint requirements are met. Otherwise the row says why in ``problems``.

Events (``record_event``, so subscriptions and webhooks see them): ``discovered`` (a new
MAC), ``matched`` and ``located`` on the discovered machine; the Foundation's own changes
are events of the outbox as always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import ContractorError, InvalidState, NotFound
from contractor.models import DiscoveredHardware, Foundation, FoundationBluePrint, Site, utcnow
from contractor.models.building import RealNetworkInterface
from contractor.services.blueprint import fingerprint_problems
from contractor.services.building import set_id_map, set_located
from contractor.services.discovery_report import hardware_identity
from contractor.services.events.outbox import record_event
from contractor.services.paging import Listing
from contractor.services.validation import normalise_mac

__all__ = [
    "DiscoveryResult",
    "discovered_listing",
    "find_by_mac",
    "forget",
    "get_discovered",
    "known_foundation",
    "match_by_hand",
    "record_report",
    "undecided_count",
]

OBJECT_TYPE = "discovered_hardware"


@dataclass(frozen=True)
class DiscoveryResult:
    discovered: DiscoveredHardware
    matched: str | None  # the Foundation's locator
    located: bool
    problems: list[str]
    new: bool


async def get_discovered(session: AsyncSession, id: int) -> DiscoveredHardware:
    row = await session.get(DiscoveredHardware, id)
    if row is None:
        raise NotFound(f"no discovered machine {id}", field="id")
    return row


async def find_by_mac(session: AsyncSession, mac: str) -> DiscoveredHardware | None:
    query = select(DiscoveredHardware).where(DiscoveredHardware.mac == mac)
    return (await session.execute(query)).scalar_one_or_none()


async def undecided_count(session: AsyncSession, site: Site) -> int:
    query = select(func.count()).where(
        DiscoveredHardware.site_id == site.id, DiscoveredHardware.located.is_(False)
    )
    return int((await session.execute(query)).scalar_one())


async def known_foundation(session: AsyncSession, site: Site, mac: str) -> Foundation | None:
    """The Foundation of ``site`` one of whose interfaces has ``mac``."""
    query = (
        select(Foundation)
        .join(RealNetworkInterface, RealNetworkInterface.foundation_id == Foundation.id)
        .where(Foundation.site_id == site.id, RealNetworkInterface.mac == mac)
    )
    return (await session.execute(query)).scalars().first()


async def _candidates(
    session: AsyncSession, site: Site, report: dict[str, Any]
) -> list[Foundation]:
    """Foundations of the site the report may be: by MAC, then by serial; by id."""
    by_mac = (
        select(Foundation.id)
        .join(RealNetworkInterface, RealNetworkInterface.foundation_id == Foundation.id)
        .where(Foundation.site_id == site.id, RealNetworkInterface.mac.in_(report["macs"]))
    )
    ids = set((await session.execute(by_mac)).scalars())
    serial = report["serial"]
    if serial:
        query = select(Foundation).where(
            Foundation.site_id == site.id,
            or_(Foundation.locator == serial, Foundation.id_map.is_not(None)),
        )
        for foundation in (await session.execute(query)).scalars():
            stored = (foundation.id_map or {}).get("serial")
            if foundation.locator == serial or (isinstance(stored, str) and stored == serial):
                ids.add(foundation.id)
    if not ids:
        return []
    query = select(Foundation).where(Foundation.id.in_(ids)).order_by(Foundation.locator)
    return list((await session.execute(query)).scalars())


def _network(interfaces: list[RealNetworkInterface], boot_mac: str) -> dict[str, Any]:
    """What the report tells of the Foundation's interfaces: the boot MAC is its provisioning
    interface's (unless that has another MAC already); MACs already set stay."""
    network: dict[str, Any] = {}
    for interface in interfaces:
        if interface.is_provisioning and interface.mac in (None, boot_mac):
            network[interface.physical_location] = {"mac": boot_mac}
        elif interface.mac is not None:
            network[interface.physical_location] = {"mac": interface.mac}
    return network


async def _locate(
    session: AsyncSession, foundation: Foundation, report: dict[str, Any]
) -> list[str]:
    """Locate ``foundation`` from ``report``; the problems that prevent it (nothing changed)."""
    if foundation.state != "planned":
        return [f"foundation {foundation.locator!r} is already {foundation.state}"]
    blueprint = await session.get_one(FoundationBluePrint, foundation.blueprint_id)
    identity = hardware_identity(report)
    unmet = await fingerprint_problems(session, blueprint, identity)
    if unmet:
        return [
            f"foundation {foundation.locator!r} (blueprint {blueprint.name!r}) {problem}"
            for problem in unmet
        ]
    interfaces = list(
        (
            await session.execute(
                select(RealNetworkInterface).where(
                    RealNetworkInterface.foundation_id == foundation.id
                )
            )
        ).scalars()
    )
    identity["network"] = _network(interfaces, report["mac"])
    try:
        async with session.begin_nested():
            await set_id_map(session, foundation, identity)
            await set_located(session, foundation)
    except ContractorError as error:
        return [f"foundation {foundation.locator!r} could not be located: {error}"]
    return []


def _event(row: DiscoveredHardware, kind: str, **payload: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "object": row,
        "object_type": OBJECT_TYPE,
        "site_id": row.site_id,
        "payload": {"mac": row.mac, "serial": row.serial, **payload},
    }


async def _decide(
    session: AsyncSession, row: DiscoveredHardware, candidates: list[Foundation]
) -> None:
    """Match ``row`` to its candidates and locate the one (problems say why not)."""
    previous = row.foundation_id
    row.located = False
    if len(candidates) > 1:
        row.foundation_id = None
        names = " and ".join(repr(f.locator) for f in candidates)
        row.problems = [f"the report matches more than one foundation: {names}"]
        return
    if not candidates:
        row.foundation_id = None
        row.problems = ["no foundation of the site has one of its MACs or its serial"]
        return
    foundation = candidates[0]
    row.foundation_id = foundation.id
    if previous != foundation.id:
        record_event(session, **_event(row, "matched", foundation=foundation.locator))
    row.problems = await _locate(session, foundation, row.report)
    if not row.problems:
        row.located = True
        record_event(session, **_event(row, "located", foundation=foundation.locator))


async def _result(session: AsyncSession, row: DiscoveredHardware, *, new: bool) -> DiscoveryResult:
    await session.flush()
    locator = None
    if row.foundation_id is not None:
        locator = (await session.get_one(Foundation, row.foundation_id)).locator
    return DiscoveryResult(row, locator, row.located, list(row.problems), new)


async def record_report(
    session: AsyncSession, site: Site, report: dict[str, Any]
) -> DiscoveryResult:
    """Keep a checked report (``discovery_report.check_report``) and act on it."""
    query = select(DiscoveredHardware).where(DiscoveredHardware.mac == report["mac"])
    row = (await session.execute(query.with_for_update())).scalar_one_or_none()
    new = row is None
    if row is None:
        row = DiscoveredHardware(site_id=site.id, mac=report["mac"], reports=0, problems=[])
        session.add(row)
    elif row.site_id != site.id:
        row.site_id = site.id  # the machine moved: it is judged by its new site
        row.foundation_id = None
    row.serial = report["serial"]
    row.report = report
    row.reports += 1
    row.reported_at = utcnow()
    await session.flush()
    if new:
        record_event(session, **_event(row, "discovered"))
    if row.located and row.foundation_id is not None:
        foundation = await session.get_one(Foundation, row.foundation_id)
        if foundation.state != "planned":
            return await _result(session, row, new=new)  # reported again after locating
    await _decide(session, row, await _candidates(session, site, report))
    return await _result(session, row, new=new)


async def match_by_hand(
    session: AsyncSession, row: DiscoveredHardware, foundation: Foundation
) -> DiscoveryResult:
    """An operator's decision: ``row`` is ``foundation`` (of its site); located as a match
    by MAC or serial would be."""
    if foundation.site_id != row.site_id:
        raise InvalidState(
            f"foundation {foundation.locator!r} is not of the discovered machine's site"
        )
    await _decide(session, row, [foundation])
    return await _result(session, row, new=False)


async def forget(session: AsyncSession, row: DiscoveredHardware) -> None:
    """Drop a discovered machine (its next report makes it new again)."""
    record_event(session, **_event(row, "forgotten"))
    await session.delete(row)
    await session.flush()


async def discovered_listing(
    session: AsyncSession,
    site: str | None = None,
    matched: bool | None = None,
    mac: str | None = None,
    serial: str | None = None,
) -> Listing:
    """Discovered machines, by id: of a site, matched to a Foundation or not, of a MAC (any
    form) or a serial."""
    row = DiscoveredHardware
    query = select(row)
    if site is not None:
        query = query.join(Site, Site.id == row.site_id).where(Site.name == site)
    if matched is not None:
        query = query.where(
            row.foundation_id.is_not(None) if matched else row.foundation_id.is_(None)
        )
    if mac is not None:
        query = query.where(row.mac == normalise_mac(mac, field="mac"))
    if serial is not None:
        query = query.where(row.serial == serial)
    return Listing(query, (row.id,))
