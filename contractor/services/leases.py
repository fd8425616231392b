"""DHCP leases a site's boot services report: recorded per site, MAC and address (the
latest report wins), listed per site and per interface (by MAC)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import DhcpLease, Site, utcnow
from contractor.services.paging import Listing

__all__ = ["LeaseReport", "dhcp_leases", "record_leases"]


@dataclass(frozen=True)
class LeaseReport:
    """One lease as reported (already validated: a lower-case MAC, an address)."""

    mac: str
    address: str
    hostname: str
    starts: dt.datetime | None
    ends: dt.datetime | None
    state: str


async def record_leases(
    session: AsyncSession, site: Site, leases: Sequence[LeaseReport]
) -> tuple[int, int]:
    """Record ``leases`` for ``site``: new ones added, known ones (same MAC and address)
    updated. Answers (added, updated)."""
    now = utcnow()
    macs = {lease.mac for lease in leases}
    known = {
        (row.mac, row.address): row
        for row in (
            await session.scalars(
                select(DhcpLease).where(DhcpLease.site_id == site.id, DhcpLease.mac.in_(macs))
            )
        ).all()
    }
    added = updated = 0
    for lease in leases:
        row = known.get((lease.mac, lease.address))
        if row is None:
            row = DhcpLease(site_id=site.id, mac=lease.mac, address=lease.address)
            session.add(row)
            known[(lease.mac, lease.address)] = row
            added += 1
        else:
            updated += 1
        row.hostname = lease.hostname
        row.starts, row.ends, row.state = lease.starts, lease.ends, lease.state
        row.reported_at = now
    await session.flush()
    return added, updated


async def dhcp_leases(session: AsyncSession, site: str | None = None) -> Listing:
    """Leases, of one site or all, newest report last."""
    query = select(DhcpLease)
    if site is not None:
        query = query.join(Site, Site.id == DhcpLease.site_id).where(Site.name == site)
    return Listing(query, (DhcpLease.id,))
