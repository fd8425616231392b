"""Boot data for a site's boot services, DHCP pools, and what a booting machine boots.

Boot data (``docs/boot.md``, "Boot data API") is one entry per *reservation* (a Structure
whose Foundation's provisioning interface has a MAC, and an address on that interface) and
per *pool* (``DhcpPool``), kept in ``boot_entry`` with the site's version that last changed
it. ``refresh`` brings a site's entries up to the inventory whenever the config generation
has moved (every change to an interface, address, structure, block or pool bumps it), under
the site's ``boot_site`` row lock, so versions grow in commit order; ``snapshot_page`` and
``changes_page`` read them in bounded pages. Writers never wait for any of this: a refresh
happens when a subcontractor asks, and one refresh answers every change made since.

``boot_decision`` says what a machine booting by its config UUID gets: the PXE target of its
provisioning interface (what ``dhcp.set_pxe`` stores) while a job runs on it or it is not
built yet, else its local disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, Pruned
from contractor.models import (
    FINISHED_JOB_STATES,
    PXE,
    AddressBlock,
    BaseAddress,
    BootEntry,
    BootSite,
    DhcpPool,
    Job,
    RealNetworkInterface,
    Site,
    Structure,
    utcnow,
)
from contractor.services.addresses import describe_address, describe_pool
from contractor.services.config import (
    ConfigCache,
    boot_pxe,
    composed_config,
    config_changed,
    config_sources_changed,
    current_generation,
)
from contractor.services.config.generation import has_pending_changes
from contractor.services.directory import get_zone, zone_fqdn
from contractor.services.network import block_bounds, gateway, ip_at, lock_block
from contractor.services.validation import check_int
from contractor.settings import Settings

__all__ = [
    "PAGE_LIMIT",
    "BootDecision",
    "BootPage",
    "boot_decision",
    "boot_target",
    "changes_page",
    "create_dhcp_pool",
    "current_boot_site",
    "delete_dhcp_pool",
    "refresh",
    "snapshot_page",
]

PAGE_LIMIT = 2000  # entries per answer, at most
LIST_LIMIT = 8  # DNS servers and search domains per entry, at most
TOMBSTONE_SECONDS = 7 * 86400  # how long a removal can be asked for as a change
_MAX_SHOWN = 3  # holders named in a refusal


# -- DHCP pools ---------------------------------------------------------------------------


async def create_dhcp_pool(
    session: AsyncSession,
    *,
    block: AddressBlock,
    first_offset: int,
    last_offset: int,
    description: str = "",
) -> DhcpPool:
    """Mark offsets ``first_offset``..``last_offset`` of ``block`` for dynamic DHCP leases.

    Refused (naming both sides) when the range holds the gateway or an allocated address
    (a structure's, reserved or dynamic) or overlaps another pool; the block row is locked
    first, so a concurrent allocation cannot slip into the range.
    """
    check_int(first_offset, field="first_offset")
    check_int(last_offset, field="last_offset")
    if not isinstance(description, str) or len(description) > 200:
        raise InvalidInput(
            "description must be text of at most 200 characters", field="description"
        )
    low, high = block_bounds(block)
    for field, offset in (("first_offset", first_offset), ("last_offset", last_offset)):
        if not low <= offset <= high:
            raise InvalidInput(
                f"{field} {offset} is outside the usable offsets {low}..{high} of block "
                f"{block.name!r} ({block.cidr})",
                field=field,
            )
    if first_offset > last_offset:
        raise InvalidInput(
            f"first_offset {first_offset} is above last_offset {last_offset}", field="last_offset"
        )
    await lock_block(session, block)
    wanted = (
        f"the DHCP pool {ip_at(block, first_offset)}-{ip_at(block, last_offset)} "
        f"of block {block.name!r}"
    )
    if block.gateway_offset is not None and first_offset <= block.gateway_offset <= last_offset:
        raise Conflict(
            f"{wanted} would hold {gateway(block)}, the block's gateway", field="first_offset"
        )
    held = (
        (
            await session.execute(
                select(BaseAddress)
                .where(
                    BaseAddress.address_block_id == block.id,
                    BaseAddress.offset >= first_offset,
                    BaseAddress.offset <= last_offset,
                )
                .order_by(BaseAddress.offset)
                .limit(_MAX_SHOWN + 1)
            )
        )
        .scalars()
        .all()
    )
    if held:
        names = [
            f"{ip_at(block, address.offset or 0)} ({await describe_address(session, address)})"
            for address in held[:_MAX_SHOWN]
        ]
        more = ", and more" if len(held) > _MAX_SHOWN else ""
        raise Conflict(
            f"{wanted} would hold allocated addresses: {', '.join(names)}{more}",
            field="first_offset",
        )
    other = (
        await session.execute(
            select(DhcpPool)
            .where(
                DhcpPool.address_block_id == block.id,
                DhcpPool.first_offset <= last_offset,
                DhcpPool.last_offset >= first_offset,
            )
            .order_by(DhcpPool.first_offset)
            .limit(1)
        )
    ).scalar_one_or_none()
    if other is not None:
        raise Conflict(f"{wanted} overlaps {describe_pool(block, other)}", field="first_offset")
    pool = DhcpPool(
        address_block_id=block.id,
        first_offset=first_offset,
        last_offset=last_offset,
        description=description,
    )
    session.add(pool)
    return await config_changed(session, pool)


async def delete_dhcp_pool(session: AsyncSession, pool: DhcpPool) -> None:
    await session.delete(pool)
    config_sources_changed(session)
    await session.flush()


# -- boot data ----------------------------------------------------------------------------


def _digest(data: dict[str, Any]) -> str:
    # (entries are built with their keys in one order: no sorting needed)
    return hashlib.blake2b(json.dumps(data).encode(), digest_size=16).hexdigest()


def _bounded_list(value: Any) -> list[str]:
    """At most ``LIST_LIMIT`` strings of at most 253 characters (a DHCP option holds no
    more in practice), so every entry, and so every page, stays bounded."""
    items = value if isinstance(value, list) else []
    return [item[:253] for item in items if isinstance(item, str)][:LIST_LIMIT]


async def _site_network_values(
    session: AsyncSession, site: Site, *, settings: Settings, cache: ConfigCache | None
) -> dict[str, Any]:
    """What every entry of the site shares: its domain (the site's zone) and its DNS
    servers and search list (the site's ``dns_servers`` and ``dns_search`` config values)."""
    config = await composed_config(session, site, settings=settings, cache=cache)
    domain = None
    if site.zone_id is not None:
        domain = await zone_fqdn(session, await get_zone(session, site.zone_id))
    return {
        "domain": domain,
        "dns_servers": _bounded_list(config.get("dns_servers")),
        "dns_search": _bounded_list(config.get("dns_search")),
    }


@dataclass(frozen=True)
class _Subnet:
    """What entries in one block share, and the block's first address as a number (an
    address is that plus its offset: cheaper than ``ip_at`` ten thousand times)."""

    values: dict[str, Any]
    base: int
    version: int

    @classmethod
    def of(cls, name: str, subnet: str, prefix: int, gateway_offset: int | None) -> _Subnet:
        """From an ``AddressBlock``'s columns."""
        network = ipaddress.ip_network(f"{subnet}/{prefix}")
        made = cls({}, int(network.network_address), network.version)
        made.values.update(
            block=name,
            subnet=str(network),
            prefix=prefix,
            netmask=str(network.netmask) if network.version == 4 else None,
            gateway=None if gateway_offset is None else made.ip(gateway_offset),
        )
        return made

    def ip(self, offset: int) -> str:
        if self.version == 4:
            return str(ipaddress.IPv4Address(self.base + offset))
        return str(ipaddress.IPv6Address(self.base + offset))


_BLOCK_COLUMNS = (
    AddressBlock.name,
    AddressBlock.subnet,
    AddressBlock.prefix,
    AddressBlock.gateway_offset,
)


async def _reservations(session: AsyncSession, site: Site) -> dict[str, dict[str, Any]]:
    """The site's reservations by key, from one query: each structure's provisioning MAC
    and the address on that interface (its primary one if it is there, else the lowest
    alias). Plain rows, not objects: a site may have tens of thousands."""
    query = (
        select(
            Structure.id,
            Structure.hostname,
            Structure.config_uuid,
            Structure.config_values["boot_file"].as_string(),
            RealNetworkInterface.mac,
            BaseAddress.offset,
            AddressBlock.id,
            *_BLOCK_COLUMNS,
        )
        .join(RealNetworkInterface, RealNetworkInterface.foundation_id == Structure.foundation_id)
        .join(
            BaseAddress,
            (BaseAddress.structure_id == Structure.id)
            & (BaseAddress.interface_name == RealNetworkInterface.name),
        )
        .join(AddressBlock, AddressBlock.id == BaseAddress.address_block_id)
        .where(
            Structure.site_id == site.id,
            RealNetworkInterface.is_provisioning.is_(True),
            RealNetworkInterface.mac.is_not(None),
        )
        # the chosen address comes last, so it is the one kept
        .order_by(Structure.id, BaseAddress.is_primary, BaseAddress.alias_index.desc())
    )
    found: dict[str, dict[str, Any]] = {}
    subnets: dict[int, _Subnet] = {}
    for row in await session.execute(query):
        structure_id, hostname, config_uuid, boot_file, mac, offset, block_id = row[:7]
        subnet = subnets.get(block_id)
        if subnet is None:
            subnet = subnets[block_id] = _Subnet.of(*row[7:])
        found[f"reservation:{structure_id}"] = {
            "mac": mac,
            "address": subnet.ip(offset),
            **subnet.values,
            "hostname": hostname,
            "config_uuid": config_uuid,
            "boot_file": boot_file,
            "boot_script": f"/boot/{config_uuid}",
        }
    return found


async def _pools(session: AsyncSession, site: Site) -> dict[str, dict[str, Any]]:
    query = (
        select(DhcpPool, *_BLOCK_COLUMNS)
        .join(AddressBlock, AddressBlock.id == DhcpPool.address_block_id)
        .where(AddressBlock.site_id == site.id)
    )
    found: dict[str, dict[str, Any]] = {}
    for pool, name, subnet_text, prefix, gateway_offset in await session.execute(query):
        subnet = _Subnet.of(name, subnet_text, prefix, gateway_offset)
        found[f"pool:{pool.id}"] = {
            "start": subnet.ip(pool.first_offset),
            "end": subnet.ip(pool.last_offset),
            **subnet.values,
            "description": pool.description,
        }
    return found


async def _lock_boot_site(session: AsyncSession, site: Site) -> BootSite:
    """The site's ``boot_site`` row, made if missing, locked until the transaction ends."""
    dialect = (await session.connection()).dialect.name
    maker = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        maker(BootSite)
        .values(site_id=site.id, version=0, generation=-1, floor=0)
        .on_conflict_do_nothing()
    )
    query = select(BootSite).where(BootSite.site_id == site.id).with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def current_boot_site(session: AsyncSession, site: Site) -> BootSite | None:
    """The site's ``boot_site`` row when its entries are up to the config generation (no
    refresh needed: a reader may answer from them); None otherwise."""
    generation = await current_generation(session)
    state = await session.get(BootSite, site.id, populate_existing=True)
    if state is None or generation < 0 or state.generation != generation:
        return None
    return state


async def refresh(
    session: AsyncSession, site: Site, *, settings: Settings, cache: ConfigCache | None = None
) -> BootSite:
    """The site's boot data brought up to the inventory (nothing to do while the config
    generation has not moved): entries that changed get the next version; ones gone become
    tombstones; tombstones older than a week are pruned (``floor``). Call it in a writer's
    transaction; it holds the site's ``boot_site`` row until that ends."""
    generation = await current_generation(session)
    state = await _lock_boot_site(session, site)
    # (this transaction's own changes have not moved the generation yet)
    if generation >= 0 and state.generation == generation and not has_pending_changes(session):
        return state
    wanted = await _reservations(session, site)
    wanted.update(await _pools(session, site))
    if wanted:
        shared = await _site_network_values(session, site, settings=settings, cache=cache)
        for data in wanted.values():
            data.update(shared)
    stored = {
        key: (digest, removed)
        for key, digest, removed in await session.execute(
            select(BootEntry.key, BootEntry.digest, BootEntry.removed).where(
                BootEntry.site_id == site.id
            )
        )
    }
    now = utcnow()
    version = state.version + 1
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key, data in wanted.items():
        digest = _digest(data)
        row = {"site_id": site.id, "key": key, "version": version, "digest": digest}
        row.update(data=data, removed=False, changed_at=now)
        before = stored.get(key)
        if before is None:
            new.append(row)
        elif before != (digest, False):
            changed.append(row)
    for key, (_, removed) in stored.items():
        if key not in wanted and not removed:
            changed.append(
                {"site_id": site.id, "key": key, "version": version, "digest": ""}
                | {"data": None, "removed": True, "changed_at": now}
            )
    if new:
        await session.execute(insert(BootEntry), new)
    if changed:
        await session.execute(update(BootEntry), changed)
    if new or changed:
        state.version = version
    await _prune(session, state, now)
    state.generation = generation
    await session.flush()
    return state


async def _prune(session: AsyncSession, state: BootSite, now: dt.datetime) -> None:
    old = (BootEntry.site_id == state.site_id) & BootEntry.removed.is_(True)
    old &= BootEntry.changed_at < now - dt.timedelta(seconds=TOMBSTONE_SECONDS)
    newest = (await session.execute(select(func.max(BootEntry.version)).where(old))).scalar()
    if newest is not None:
        await session.execute(delete(BootEntry).where(old))
        state.floor = max(state.floor, int(newest))


@dataclass(frozen=True)
class BootPage:
    """One answer of the boot data API: entries as of ``version``; more to come while
    ``cursor`` is set."""

    site: str
    version: int
    snapshot: bool
    reservations: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    removed: list[str]
    cursor: str | None


# entries are read as plain rows: a page may hold thousands
_ENTRY_COLUMNS = (BootEntry.key, BootEntry.version, BootEntry.data, BootEntry.removed)


def _page(
    site: Site,
    version: int,
    *,
    snapshot: bool,
    rows: Sequence[Any],
    cursor: str | None,
) -> BootPage:
    reservations: list[dict[str, Any]] = []
    pools: list[dict[str, Any]] = []
    removed: list[str] = []
    for row in rows:
        if row.removed:
            removed.append(row.key)
        else:
            kind = reservations if row.key.startswith("reservation:") else pools
            kind.append({"id": row.key, **(row.data or {})})
    return BootPage(site.name, version, snapshot, reservations, pools, removed, cursor)


def _check_limit(limit: int) -> None:
    check_int(limit, field="limit", low=1, high=PAGE_LIMIT)


async def snapshot_page(
    session: AsyncSession, site: Site, state: BootSite, *, after: str = "", limit: int, version: int
) -> BootPage:
    """Up to ``limit`` entries of the site after key ``after``. A snapshot read in pages
    keeps the first page's ``version``: entries changed meanwhile come again as changes."""
    _check_limit(limit)
    rows = (
        await session.execute(
            select(*_ENTRY_COLUMNS)
            .where(
                BootEntry.site_id == site.id,
                BootEntry.removed.is_(False),
                BootEntry.key > after,
            )
            .order_by(BootEntry.key)
            .limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"s.{version}.{rows[-1].key}" if more else None
    return _page(site, version, snapshot=True, rows=rows, cursor=cursor)


async def changes_page(
    session: AsyncSession,
    site: Site,
    state: BootSite,
    *,
    since: int,
    after: tuple[int, str] | None = None,
    limit: int,
) -> BootPage:
    """Up to ``limit`` entries changed after version ``since`` (continuing after
    ``(version, key)``), in version order; ``Pruned`` (answer: take a snapshot) when the
    removals since then are no longer kept, or the version is not one this site had."""
    _check_limit(limit)
    if since < state.floor or since > state.version:
        raise Pruned(
            f"version {since} of site {site.name!r} is not one whose changes are kept "
            f"(they are from {state.floor} to {state.version}): take a snapshot",
            field="since",
        )
    query = select(*_ENTRY_COLUMNS).where(BootEntry.site_id == site.id, BootEntry.version > since)
    if after is not None:
        after_version, after_key = after
        query = query.where(
            (BootEntry.version > after_version)
            | ((BootEntry.version == after_version) & (BootEntry.key > after_key))
        )
    rows = (
        await session.execute(query.order_by(BootEntry.version, BootEntry.key).limit(limit + 1))
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"c.{since}.{rows[-1].version}.{rows[-1].key}" if more else None
    version = max([state.version, *(row.version for row in rows)])
    return _page(site, since if more else version, snapshot=False, rows=rows, cursor=cursor)


# -- boot decisions -----------------------------------------------------------------------


async def boot_target(session: AsyncSession, structure: Structure) -> PXE | None:
    """The PXE target set for the machine: what ``dhcp.set_pxe`` (or an operator's
    ``assignPxe``) stored on its foundation's provisioning interface; None for none."""
    return await boot_pxe(session, structure)


@dataclass(frozen=True)
class BootDecision:
    """What a booting machine gets: ``pxe`` rendered, or its local disk (``pxe`` None), and
    why, in words for its console."""

    pxe: PXE | None
    reason: str


async def boot_decision(session: AsyncSession, structure: Structure) -> BootDecision:
    """By the machine's state and its job: its PXE target while a job of the structure or
    of its foundation is unfinished, or while the structure is not built; else (a built
    machine with no job, or no target set) its local disk, as a built machine that
    PXE-boots by default must not be reinstalled by a stale target."""
    target = await boot_target(session, structure)
    job = (
        await session.execute(
            select(Job.id, Job.script_name)
            .where(
                (Job.structure_id == structure.id) | (Job.foundation_id == structure.foundation_id),
                Job.state.not_in(list(FINISHED_JOB_STATES)),
            )
            .limit(1)
        )
    ).first()
    who = f"structure {structure.hostname!r}"
    if target is None:
        return BootDecision(None, f"{who} has no PXE target set")
    if job is not None:
        return BootDecision(target, f"job {job[0]} ({job[1]}) of {who} boots {target.name!r}")
    if structure.built_at is None:
        return BootDecision(target, f"{who} is not built yet: it boots {target.name!r}")
    return BootDecision(
        None, f"{who} is built and no job of it runs (its PXE target {target.name!r} waits)"
    )
