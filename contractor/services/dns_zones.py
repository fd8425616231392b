"""DNS zones from the inventory: ``build_zones`` reads the inventory (a handful of queries,
whatever its size) and returns every forward zone (one per Zone row) and reverse zone
(planned by ``bindgen`` from the address blocks) as a ``DnsZone``: plain ``bindgen.ZoneData``
with its content hash, or the problems that keep it from being generated. Serials and files
are ``contractor.services.dns``'s.

What goes in a forward zone, for every Structure whose site uses the zone: each address is
``<interface>[-<alias>].<hostname>`` (A or AAAA), and the primary address is also the bare
``<hostname>``; then the zone's entries, and the NS delegation (with glue) of each child
zone. Reverse zones get a PTR for every address held from a block (not pointer addresses)
naming the address's own name. The reverse zones of a block take their SOA timers, name
servers and mailbox from the zone of the block's site. A site without a zone of its own
publishes nothing, forward or reverse (its parents' zones are not inherited).
The zones above an external zone are not generated: they only spell its name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from bindgen import SOA, Record, ZoneData
from contractor.models import Address, AddressBlock, BaseAddress, Site, Structure, Zone
from contractor.models.directory import Entry
from contractor.runtime import gc_paused
from contractor.services.dns_names import address_label, entry_data

__all__ = ["FILE_MARK", "DnsZone", "Kind", "Touched", "build_zones"]

FILE_MARK = "contractor dns"  # first words of every file export_zones owns
Kind = Literal["forward", "reverse"]


@dataclass(frozen=True, slots=True)
class DnsZone:
    """One zone to publish: ``data`` and ``content_hash`` as the inventory makes it now
    (None when it cannot), ``details`` every problem that keeps it from being published.

    ``publish_zones`` sets the rest: ``serial`` and ``published_hash`` are those of the
    last good version (an invalid zone keeps them), ``text`` that version's file when it was
    rendered or read just now (always for an invalid zone that has one), ``changed`` when
    the serial moved just now."""

    name: str
    kind: Kind
    data: ZoneData | None
    content_hash: str | None
    details: tuple[bindgen.Problem, ...] = ()
    serial: int | None = None
    changed: bool = False
    published_hash: str | None = None
    text: str | None = None

    @property
    def problems(self) -> tuple[str, ...]:
        """The problems' messages."""
        return tuple(problem.message for problem in self.details)

    @property
    def valid(self) -> bool:
        """The inventory makes this zone now (its serial and text are current). A zone
        answered from the stored rows is valid without ``data``: it has its ``text``."""
        return self.content_hash is not None and not self.details

    @property
    def file_name(self) -> str:
        return f"{self.name}.zone"

    @property
    def header(self) -> str:
        """The first line of the zone's file: what export_zones compares to skip work."""
        content = self.content_hash if self.published_hash is None else self.published_hash
        return f"{FILE_MARK} zone {self.name} serial {self.serial} content {content}"


# -- reading the inventory --------------------------------------------------------------


@dataclass(slots=True)
class _ZoneRow:
    id: int
    name: str
    parent_id: int | None
    ttl: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    nameservers: list[str]
    soa_email: str | None
    external: bool
    fqdn: str = ""
    children: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Forward:
    records: list[Record] = field(default_factory=list)
    problems: list[bindgen.Problem] = field(default_factory=list)


class _Inventory:
    """Everything zone generation needs, read in a fixed number of queries."""

    def __init__(self) -> None:
        self.zones: dict[int, _ZoneRow] = {}
        self.site_parent: dict[int, int | None] = {}
        self.site_zone: dict[int, int | None] = {}
        self.site_name: dict[int, str] = {}
        # block id -> (site id, network, first address as an integer)
        self.blocks: dict[int, tuple[int, bindgen.IPNetwork, int]] = {}
        self.addresses: list[tuple[int, str, int, int, str, int | None, bool, int | None]] = []
        self.ips: dict[int, tuple[int, int]] = {}  # address id -> (IP version, integer value)
        self.entries: list[Entry] = []

    def ip(self, block_id: int, offset: int) -> tuple[int, int]:
        _site, network, first = self.blocks[block_id]
        return network.version, first + offset


def _ip_text(version: int, value: int) -> str:
    if version == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


async def _follow_pointers(
    session: AsyncSession, inv: _Inventory, pointers: dict[int, int]
) -> None:
    """Give pointer addresses their target's IP. A pointer may lead to an address of a
    Structure outside every zone, or to a reservation; chains are followed, cycles not."""
    asked: set[int] = set()
    # Targets outside what was read are asked for until the chains end (a publish that reads
    # only some zones' addresses reaches the same IPs as one that reads them all).
    while targets := set(pointers.values()) - inv.ips.keys() - asked:
        asked |= targets
        query = select(
            BaseAddress.id, BaseAddress.address_block_id, BaseAddress.offset, BaseAddress.pointer_id
        ).where(BaseAddress.id.in_(targets))
        for address_id, block_id, offset, pointer_id in await session.execute(query):
            if block_id is not None and offset is not None:
                inv.ips[address_id] = inv.ip(block_id, offset)
            elif pointer_id is not None:
                pointers[address_id] = pointer_id
    for address_id in list(pointers):
        seen: set[int] = set()
        current = address_id
        while current in pointers and current not in seen:
            seen.add(current)
            current = pointers[current]
        if current in inv.ips:
            inv.ips[address_id] = inv.ips[current]


async def _read_settings(session: AsyncSession) -> _Inventory:
    """The small tables: zones, sites, blocks and entries (whatever the inventory's size)."""
    inv = _Inventory()
    for row in await session.execute(
        select(
            Zone.id,
            Zone.name,
            Zone.parent_id,
            Zone.ttl,
            Zone.refresh,
            Zone.retry,
            Zone.expire,
            Zone.minimum,
            Zone.nameservers,
            Zone.soa_email,
            Zone.external,
        )
    ):
        inv.zones[row[0]] = _ZoneRow(*row)
    for zone in inv.zones.values():
        labels, parent_id, seen = [zone.name], zone.parent_id, {zone.id}
        while parent_id is not None and parent_id not in seen:
            seen.add(parent_id)
            labels.append(inv.zones[parent_id].name)
            parent_id = inv.zones[parent_id].parent_id
        zone.fqdn = ".".join(labels)
        if zone.parent_id is not None:
            inv.zones[zone.parent_id].children.append(zone.id)
    for site_id, parent_id, zone_id, name in await session.execute(
        select(Site.id, Site.parent_id, Site.zone_id, Site.name)
    ):
        inv.site_parent[site_id] = parent_id
        inv.site_zone[site_id] = zone_id
        inv.site_name[site_id] = name
    for block in await session.execute(
        select(AddressBlock.id, AddressBlock.site_id, AddressBlock.subnet, AddressBlock.prefix)
    ):
        network = ipaddress.ip_network(f"{block[2]}/{block[3]}")
        inv.blocks[block[0]] = (block[1], network, int(network.network_address))
    inv.entries = list(
        (await session.execute(select(Entry).order_by(Entry.zone_id, Entry.name, Entry.id)))
        .scalars()
        .all()
    )
    return inv


async def _read_addresses(session: AsyncSession, inv: _Inventory, scope: _Reading | None) -> None:
    """The addresses of structures in zoned sites: all of them, or (``scope``) those of the
    structures of some sites and those held from some blocks."""
    query = (
        select(
            BaseAddress.id,
            BaseAddress.address_block_id,
            BaseAddress.offset,
            BaseAddress.pointer_id,
            Structure.id,
            Structure.hostname,
            Structure.site_id,
            BaseAddress.interface_name,
            BaseAddress.alias_index,
            BaseAddress.is_primary,
        )
        .join(Structure, Structure.id == BaseAddress.structure_id)
        .where(BaseAddress.kind == Address.__mapper__.polymorphic_identity)
        # Only structures of a site with a zone of its own get names, forward or reverse:
        # the rest are never read, so an inventory without zones costs nothing here.
        .where(Structure.site_id.in_(select(Site.id).where(Site.zone_id.is_not(None))))
        .order_by(BaseAddress.structure_id, BaseAddress.id)  # a stable order for messages
    )
    # Core execution (not the ORM's row loading): this is the one query that grows with
    # the inventory (its zoned part).
    connection = await session.connection()
    zoned = any(zone_id is not None for zone_id in inv.site_zone.values())
    if not zoned:
        found: Sequence[Any] = ()
    elif scope is None:
        found = (await connection.execute(query)).all()
    else:
        # Two narrow queries (each on its index) rather than one OR over both tables.
        rows: dict[int, Any] = {}
        if scope.sites:
            picked = query.where(Structure.site_id.in_(sorted(scope.sites)))
            rows.update((row[0], row) for row in (await connection.execute(picked)).all())
        if scope.blocks:
            # (less the addresses the first query read: a block's addresses are mostly
            # those of its own site's structures)
            picked = query.where(BaseAddress.address_block_id.in_(sorted(scope.blocks)))
            if scope.sites:
                picked = picked.where(Structure.site_id.not_in(sorted(scope.sites)))
            rows.update((row[0], row) for row in (await connection.execute(picked)).all())
        found = sorted(rows.values(), key=lambda row: (row[4], row[0]))
    pointers: dict[int, int] = {}
    blocks = inv.blocks
    for row in found:
        address_id, block_id, offset, pointer_id = row[0], row[1], row[2], row[3]
        if block_id is not None and offset is not None:
            _site, network, first = blocks[block_id]
            inv.ips[address_id] = (network.version, first + offset)
        elif pointer_id is not None:
            pointers[address_id] = pointer_id
        inv.addresses.append(
            (address_id, row[5], row[4], row[6], row[7] or "", row[8], bool(row[9]), block_id)
        )
    if pointers:
        await _follow_pointers(session, inv, pointers)


# -- building zones ----------------------------------------------------------------------


def _inherited(inv: _Inventory, zone: _ZoneRow) -> tuple[list[str], str]:
    """The zone's name servers and SOA mailbox, from the nearest zone that sets them."""
    servers: list[str] = []
    email: str | None = None
    current: _ZoneRow | None = zone
    while current is not None and (not servers or email is None):
        servers = servers or list(current.nameservers)
        email = email or current.soa_email
        current = inv.zones.get(current.parent_id) if current.parent_id is not None else None
    return servers, email or f"hostmaster@{zone.fqdn}"


def _zone_data(
    inv: _Inventory, origin: str, params: _ZoneRow, records: list[Record]
) -> tuple[ZoneData | None, list[bindgen.Problem]]:
    servers, email = _inherited(inv, params)
    if not servers:
        message = (
            f"zone {params.fqdn!r} has no name servers: set nameservers on it or on a parent zone"
        )
        return None, [bindgen.Problem("NO_NAMESERVERS", message, origin.rstrip(".") + ".")]
    soa = SOA(
        mname=servers[0] + ".",
        rname=bindgen.mailbox_to_rname(email),
        refresh=params.refresh,
        retry=params.retry,
        expire=params.expire,
        minimum=params.minimum,
    )
    data = ZoneData(
        origin=origin,
        soa=soa,
        nameservers=tuple(s + "." for s in servers),
        records=tuple(records),
        ttl=params.ttl,
    )
    return data, []


def _finish(
    name: str, kind: Kind, data: ZoneData | None, problems: Sequence[bindgen.Problem]
) -> DnsZone:
    if problems or data is None:
        return DnsZone(name, kind, None, None, tuple(problems))
    return DnsZone(name, kind, data, bindgen.content_hash(data))


def _ns_targets(inv: _Inventory) -> set[str]:
    """Every name server host name (without the trailing dot) any zone may need glue for."""
    targets = {name for zone in inv.zones.values() for name in zone.nameservers}
    for entry in inv.entries:
        if entry.type == "NS" and entry.target:
            zone = inv.zones[entry.zone_id]
            target = entry.target
            targets.add(target[:-1] if target.endswith(".") else f"{target}.{zone.fqdn}")
    return targets


async def build_zones(session: AsyncSession, touched: Touched | None = None) -> list[DnsZone]:
    """Every forward and reverse zone, by name, from the current inventory (reads only).

    With ``touched`` (what changed since the zones were last built), only the zones those
    changes can have changed, each exactly as a build of all of them makes it: the
    addresses read are those of the structures in their sites, of the sites of the zones
    they take glue from, and those held from the blocks inside their reverse zones."""
    # A few objects per address and none in cycles: without the cyclic collector rescanning
    # the growing heap, this takes half the time.
    with gc_paused():
        # (the inventory is freed before the collector resumes: its first collection
        # scans only what is returned)
        return await _build(session, touched)


async def _build(session: AsyncSession, touched: Touched | None) -> list[DnsZone]:
    inventory = await _read_settings(session)
    reading = None if touched is None else _widen(inventory, touched)
    await _read_addresses(session, inventory, reading)
    # CPU work for a second at 100,000 hosts: off the event loop, so a server stays
    # responsive (the GIL still lets it run between slices).
    return await anyio.to_thread.run_sync(
        _assemble, inventory, None if reading is None else reading.names
    )


@dataclass(frozen=True, slots=True)
class Touched:
    """What changed, as far as zones go: the forward zones (``Zone`` ids) whose own
    records or problems may have changed, and the blocks (ids) whose addresses' PTR records
    may have (the zones and blocks themselves, and the sites, unchanged)."""

    zones: frozenset[int] = frozenset()
    blocks: frozenset[int] = frozenset()


@dataclass(slots=True)
class _Reading:
    names: set[str]  # the zones to build
    sites: set[int]  # whose structures' addresses are read
    blocks: set[int]  # whose held addresses are read


def _widen(inv: _Inventory, touched: Touched) -> _Reading:
    """The zones ``touched`` can change and what must be read to build each of them whole:
    a forward zone takes glue from the zones its name servers are in (so a change there
    changes it too), a reverse zone holds the PTR records of every address inside it."""
    sources = _glue_sources(inv)
    forward = set(touched.zones) & inv.zones.keys()
    forward |= {zone_id for zone_id, held in sources.items() if held & forward}
    read = forward | {source for zone_id in forward for source in sources[zone_id]}
    name_only = _above_external(inv)
    names = {inv.zones[zone_id].fqdn for zone_id in forward if zone_id not in name_only}
    sites = {site_id for site_id, zone_id in inv.site_zone.items() if zone_id in read}
    changed = [inv.blocks[block_id][1] for block_id in touched.blocks if block_id in inv.blocks]
    reverse = [
        zone
        for zone in _plan(inv)[1].zones.values()
        if any(_overlap(zone.network, network) for network in changed)
    ]
    names.update(zone.name for zone in reverse)
    blocks = {
        block_id
        for block_id, (_site, network, _first) in inv.blocks.items()
        if any(_overlap(network, zone.network) for zone in reverse)
    }
    return _Reading(names, sites, blocks)


def _overlap(one: bindgen.IPNetwork, other: bindgen.IPNetwork) -> bool:
    return one.version == other.version and one.overlaps(other)


def _glue_sources(inv: _Inventory) -> dict[int, set[int]]:
    """Per forward zone, the zones whose addresses its glue records may come from: those
    any name server it names (its own, its NS entries', its child zones') is in."""
    servers: dict[int, set[str]] = {
        zone_id: set(_inherited(inv, zone)[0]) for zone_id, zone in inv.zones.items()
    }
    for entry in inv.entries:
        if entry.type == "NS" and entry.target:
            target = entry.target
            fqdn = inv.zones[entry.zone_id].fqdn
            servers[entry.zone_id].add(target[:-1] if target.endswith(".") else f"{target}.{fqdn}")
    for zone_id, zone in inv.zones.items():
        for child_id in zone.children:
            servers[zone_id].update(_inherited(inv, inv.zones[child_id])[0])
    return {
        zone_id: {
            holder.id
            for holder in inv.zones.values()
            if any(server.endswith("." + holder.fqdn) for server in names)
        }
        for zone_id, names in servers.items()
    }


def _assemble(inv: _Inventory, names: set[str] | None = None) -> list[DnsZone]:
    """The zones (only those ``names`` when given) from the inventory read."""
    forward: dict[int, _Forward] = {zone_id: _Forward() for zone_id in inv.zones}
    # Name servers that may need glue, as names relative to each zone that could hold them.
    glue_wanted: dict[int, set[str]] = {zone_id: set() for zone_id in inv.zones}
    for server in _ns_targets(inv):
        for holder in inv.zones.values():
            if server.endswith("." + holder.fqdn):
                glue_wanted[holder.id].add(server[: -len(holder.fqdn) - 1])
    glue: dict[str, list[Record]] = {}  # name server FQDN -> its address records
    ptrs: list[tuple[int, int, str]] = []  # IP version, value, PTR target
    labels_seen: dict[tuple[int, str], tuple[str, int | None]] = {}
    child_names = {
        zone_id: {inv.zones[c].name: inv.zones[c].fqdn for c in zone.children}
        for zone_id, zone in inv.zones.items()
    }
    label_of: dict[tuple[str, int | None], str] = {}
    previous_structure = -1

    for (
        address_id,
        hostname,
        structure_id,
        site_id,
        interface_name,
        alias_index,
        is_primary,
        block_id,
    ) in inv.addresses:
        zone_id = inv.site_zone.get(site_id)
        ip = inv.ips.get(address_id)
        if zone_id is None or ip is None:
            continue
        zone = inv.zones[zone_id]
        target = forward[zone_id]
        key = (interface_name, alias_index)
        label = label_of.get(key)
        if label is None:
            label = label_of[key] = address_label(interface_name, alias_index)
        owner = f"{label}.{hostname}"
        if structure_id != previous_structure:
            # Rows come grouped by structure; checks that are per structure run once.
            previous_structure = structure_id
            labels_seen.clear()
            if hostname in child_names[zone_id]:
                message = (
                    f"hostname {hostname!r} (structure in site {inv.site_name[site_id]!r}) is "
                    f"also the name of child zone {child_names[zone_id][hostname]!r}; rename "
                    "the structure or the zone"
                )
                record = f"{hostname}.{zone.fqdn}."
                target.problems.append(bindgen.Problem("HOSTNAME_IS_CHILD_ZONE", message, record))
        clash = labels_seen.setdefault((structure_id, label), key)
        if clash != key:
            message = (
                f"structure {hostname!r}: addresses on {clash[0]!r} (alias {clash[1] or 0}) "
                f"and {interface_name!r} (alias {alias_index or 0}) are both named "
                f"{owner}.{zone.fqdn}; rename an interface"
            )
            record = f"{owner}.{zone.fqdn}."
            target.problems.append(bindgen.Problem("NAME_CLASH", message, record))
        version, value = ip
        rdtype = "A" if version == 4 else "AAAA"
        text = _ip_text(version, value)
        target.records.append(Record(owner, rdtype, text))
        name = owner
        if is_primary:
            target.records.append(Record(hostname, rdtype, text))
            name = hostname
        wanted = glue_wanted[zone_id]
        if wanted:
            for candidate in {owner, name} & wanted:
                fqdn = f"{candidate}.{zone.fqdn}"
                glue.setdefault(fqdn, []).append(Record(fqdn + ".", rdtype, text))
        if block_id is not None:
            ptrs.append((version, value, f"{name}.{zone.fqdn}."))

    entries: dict[int, list[Entry]] = {}
    for entry in inv.entries:
        entries.setdefault(entry.zone_id, []).append(entry)
    zones: list[DnsZone] = []
    name_only = _above_external(inv)
    for zone_id, zone in inv.zones.items():
        if zone_id in name_only or (names is not None and zone.fqdn not in names):
            continue
        target = forward[zone_id]
        delegated: list[str] = []
        for child_id in zone.children:
            child = inv.zones[child_id]
            servers, _ = _inherited(inv, child)
            if not servers:
                message = f"child zone {child.fqdn!r} has no name servers to delegate to"
                record = f"{child.fqdn}."
                target.problems.append(
                    bindgen.Problem("CHILD_WITHOUT_NAMESERVERS", message, record)
                )
            target.records.extend(Record(child.name, "NS", s + ".") for s in servers)
            delegated.append(child.fqdn)
        apex_servers, _ = _inherited(inv, zone)
        servers_here = set(apex_servers)
        for entry in entries.get(zone_id, []):
            target.records.append(Record(entry.name, entry.type, entry_data(entry), entry.ttl))
            if entry.type == "NS":
                delegated.append(f"{entry.name}.{zone.fqdn}")
                name = entry.target or ""
                servers_here.add(name[:-1] if name.endswith(".") else f"{name}.{zone.fqdn}")
        for child_id in zone.children:
            servers_here.update(_inherited(inv, inv.zones[child_id])[0])
        # Glue: name servers below a delegation of this zone need their addresses here.
        for server in sorted(servers_here):
            if any(server == cut or server.endswith("." + cut) for cut in delegated):
                target.records.extend(glue.get(server, []))
        data, problems = _zone_data(inv, zone.fqdn, zone, target.records)
        zones.append(_finish(zone.fqdn, "forward", data, target.problems + problems))

    zones.extend(_reverse_zones(inv, ptrs, names))
    return sorted(zones, key=lambda z: (z.kind, z.name))


def _above_external(inv: _Inventory) -> set[int]:
    """The zones above an external zone: they only spell its name and are not generated
    (the external zone is delegated to us from a parent Contractor does not serve)."""
    above: set[int] = set()
    for zone in inv.zones.values():
        if zone.external:
            parent_id = zone.parent_id
            while parent_id is not None and parent_id not in above:
                above.add(parent_id)
                parent_id = inv.zones[parent_id].parent_id
    return above


def _plan(inv: _Inventory) -> tuple[dict[bindgen.IPNetwork, int], bindgen.ReversePlan]:
    """The reverse zones: each zoned block's network with its site's zone, and their plan."""
    block_zone: dict[bindgen.IPNetwork, int] = {}
    for site_id, network, _first in inv.blocks.values():
        # The one rule of both directions: a site's own zone (none inherited from its
        # parents), as for its structures' forward names.
        zone_id = inv.site_zone.get(site_id)
        if zone_id is not None:
            known = block_zone.get(network)
            block_zone[network] = zone_id if known is None else min(known, zone_id)
    return block_zone, bindgen.plan_reverse_zones(block_zone)


def _reverse_zones(
    inv: _Inventory, ptrs: list[tuple[int, int, str]], names: set[str] | None
) -> list[DnsZone]:
    block_zone, plan = _plan(inv)
    records: dict[str, list[Record]] = {name: [] for name in plan.zones}
    for version, value, target in ptrs:
        zone = plan.locate(version, value)
        if zone is not None and (names is None or zone.name in names):
            records[zone.name].append(Record(plan.ptr_owner(value, zone), "PTR", target))
    params = {
        name: inv.zones[min(block_zone[source] for source in zone.sources)]
        for name, zone in plan.zones.items()
    }
    for zone in plan.zones.values():
        parent = plan.parent_of(zone)
        if parent is None:
            continue
        owner = plan.delegation_owner(zone, parent)
        servers, _ = _inherited(inv, params[zone.name])
        records[parent.name].extend(Record(owner, "NS", s + ".") for s in servers)
        records[parent.name].extend(plan.classless_cnames(zone))
    result = []
    for name in plan.zones:
        if names is not None and name not in names:
            continue
        data, problems = _zone_data(inv, name, params[name], records[name])
        result.append(_finish(name, "reverse", data, problems))
    return result
