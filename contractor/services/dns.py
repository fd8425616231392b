"""DNS zones from the inventory: what each zone holds, its serial, and its files.

* ``build_zones`` reads the inventory (a handful of queries, whatever its size) and returns
  every forward zone (one per Zone row) and reverse zone (planned by ``bindgen`` from the
  address blocks) as plain ``bindgen.ZoneData`` with its content hash, or the problems that
  keep it from being generated.
* ``publish_zones`` gives each zone its serial: unchanged while the content hash is, a new
  one (``bindgen.next_serial``) when it changes, kept in ``published_zone``.
* ``export_zones`` writes the zone files and a ``named.conf`` fragment into a directory:
  only zones whose serial or content differs from the file are rendered, each new file is
  checked with ``named-checkzone`` (when installed) before it atomically replaces the old.

What goes in a forward zone, for every Structure whose site uses the zone: each address is
``<interface>[-<alias>].<hostname>`` (A or AAAA), and the primary address is also the bare
``<hostname>``; then the zone's entries, and the NS delegation (with glue) of each child
zone. Reverse zones get a PTR for every address held from a block (not pointer addresses)
naming the address's own name. The reverse zones of a block take their SOA timers, name
servers and mailbox from the zone of the block's site (or the nearest ancestor site's).
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from bindgen import SOA, Record, ZoneData
from contractor.errors import NotFound
from contractor.models import Address, AddressBlock, BaseAddress, Site, Structure, Zone
from contractor.models.directory import Entry, PublishedZone
from contractor.runtime import gc_paused
from contractor.services.directory import address_label, entry_data

__all__ = [
    "CONF_NAME",
    "PARALLEL_RECORDS",
    "DnsZone",
    "ExportResult",
    "build_zones",
    "export_zones",
    "find_published_zone",
    "publish_zones",
    "zone_text",
]

CONF_NAME = "named.conf"
PARALLEL_RECORDS = 50_000  # more records than this to write: render in worker processes
_MARK = "contractor dns"  # first words of every file export_zones owns
Kind = Literal["forward", "reverse"]


@dataclass(frozen=True, slots=True)
class DnsZone:
    """One zone to publish. ``data`` is None when ``problems`` says why it cannot be made;
    ``serial`` is set by ``publish_zones`` (``changed``: the serial moved just now)."""

    name: str
    kind: Kind
    data: ZoneData | None
    content_hash: str | None
    problems: tuple[str, ...] = ()
    serial: int | None = None
    changed: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.name}.zone"

    @property
    def header(self) -> str:
        """The first line of the zone's file: what export_zones compares to skip work."""
        return f"{_MARK} zone {self.name} serial {self.serial} content {self.content_hash}"


def zone_text(zone: DnsZone) -> str:
    """The zone file text (raises ``bindgen.ZoneError`` naming what is wrong)."""
    if zone.data is None:
        raise bindgen.ZoneError(zone.name, list(zone.problems))
    if zone.serial is None:
        raise ValueError(f"zone {zone.name} has no serial yet: publish_zones gives it one")
    return bindgen.render_zone(zone.data, zone.serial, header=_file_header(zone))


def _file_header(zone: DnsZone) -> str:
    return f"{zone.header}\ngenerated from the inventory; edits are overwritten"


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
    fqdn: str = ""
    children: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Forward:
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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
    targets = set(pointers.values()) - inv.ips.keys()
    if targets:
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


async def _read(session: AsyncSession) -> _Inventory:
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
        .order_by(BaseAddress.structure_id, BaseAddress.id)  # a stable order for messages
    )
    pointers: dict[int, int] = {}
    # Core execution (not the ORM's row loading): this is the one query that grows with
    # the inventory.
    connection = await session.connection()
    blocks = inv.blocks
    for found in (await connection.execute(query)).all():
        address_id, block_id, offset, pointer_id = found[0], found[1], found[2], found[3]
        if block_id is not None and offset is not None:
            _site, network, first = blocks[block_id]
            inv.ips[address_id] = (network.version, first + offset)
        elif pointer_id is not None:
            pointers[address_id] = pointer_id
        inv.addresses.append(
            (
                address_id,
                found[5],
                found[4],
                found[6],
                found[7] or "",
                found[8],
                bool(found[9]),
                block_id,
            )
        )
    if pointers:
        await _follow_pointers(session, inv, pointers)
    inv.entries = list(
        (await session.execute(select(Entry).order_by(Entry.zone_id, Entry.name, Entry.id)))
        .scalars()
        .all()
    )
    return inv


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
) -> tuple[ZoneData | None, list[str]]:
    servers, email = _inherited(inv, params)
    if not servers:
        return None, [
            f"zone {params.fqdn!r} has no name servers: set nameservers on it or on a parent zone"
        ]
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


def _finish(name: str, kind: Kind, data: ZoneData | None, problems: Sequence[str]) -> DnsZone:
    if problems or data is None:
        return DnsZone(name, kind, None, None, tuple(problems))
    return DnsZone(name, kind, data, bindgen.content_hash(data))


def _site_zone(inv: _Inventory, site_id: int) -> int | None:
    """The zone of a site, or of its nearest ancestor that has one."""
    current: int | None = site_id
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        zone_id = inv.site_zone.get(current)
        if zone_id is not None:
            return zone_id
        current = inv.site_parent.get(current)
    return None


def _ns_targets(inv: _Inventory) -> set[str]:
    """Every name server host name (without the trailing dot) any zone may need glue for."""
    targets = {name for zone in inv.zones.values() for name in zone.nameservers}
    for entry in inv.entries:
        if entry.type == "NS" and entry.target:
            zone = inv.zones[entry.zone_id]
            target = entry.target
            targets.add(target[:-1] if target.endswith(".") else f"{target}.{zone.fqdn}")
    return targets


async def build_zones(session: AsyncSession) -> list[DnsZone]:
    """Every forward and reverse zone, by name, from the current inventory (reads only)."""
    # A few objects per address and none in cycles: without the cyclic collector rescanning
    # the growing heap, this takes half the time.
    with gc_paused():
        inventory = await _read(session)
        # CPU work for a second at 100,000 hosts: off the event loop, so a server stays
        # responsive (the GIL still lets it run between slices).
        return await anyio.to_thread.run_sync(_assemble, inventory)


def _assemble(inv: _Inventory) -> list[DnsZone]:
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
                target.problems.append(
                    f"hostname {hostname!r} (structure in site {inv.site_name[site_id]!r}) is "
                    f"also the name of child zone {child_names[zone_id][hostname]!r}; rename "
                    "the structure or the zone"
                )
        clash = labels_seen.setdefault((structure_id, label), key)
        if clash != key:
            target.problems.append(
                f"structure {hostname!r}: addresses on {clash[0]!r} (alias {clash[1] or 0}) "
                f"and {interface_name!r} (alias {alias_index or 0}) are both named "
                f"{owner}.{zone.fqdn}; rename an interface"
            )
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
    for zone_id, zone in inv.zones.items():
        target = forward[zone_id]
        delegated: list[str] = []
        for child_id in zone.children:
            child = inv.zones[child_id]
            servers, _ = _inherited(inv, child)
            if not servers:
                target.problems.append(
                    f"child zone {child.fqdn!r} has no name servers to delegate to"
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

    zones.extend(_reverse_zones(inv, ptrs))
    return sorted(zones, key=lambda z: (z.kind, z.name))


def _reverse_zones(inv: _Inventory, ptrs: list[tuple[int, int, str]]) -> list[DnsZone]:
    block_zone: dict[bindgen.IPNetwork, int] = {}
    for site_id, network, _first in inv.blocks.values():
        zone_id = _site_zone(inv, site_id)
        if zone_id is not None:
            known = block_zone.get(network)
            block_zone[network] = zone_id if known is None else min(known, zone_id)
    plan = bindgen.plan_reverse_zones(block_zone)
    records: dict[str, list[Record]] = {name: [] for name in plan.zones}
    for version, value, target in ptrs:
        zone = plan.locate(version, value)
        if zone is not None:
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
        data, problems = _zone_data(inv, name, params[name], records[name])
        result.append(_finish(name, "reverse", data, problems))
    return result


# -- serials -----------------------------------------------------------------------------


# The advisory lock key publishers take turns on ("bindgen" as a number).
_PUBLISH_LOCK = int.from_bytes(b"bindgen", "big")


async def publish_zones(session: AsyncSession, *, now: int | None = None) -> list[DnsZone]:
    """Every zone with its serial: kept while its content hash is unchanged, else the next
    one (Unix time when that is larger). Zones that cannot be generated keep their last
    serial. Writes ``published_zone`` rows; the caller commits.

    Publishers take turns (on PostgreSQL a transaction-scoped advisory lock; SQLite's
    writers already do): two processes publishing a zone for the first time would otherwise
    both insert its row, and the later one would fail on the unique name."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_PUBLISH_LOCK)))
    zones = await build_zones(session)
    clock = int(time.time()) if now is None else now
    rows = {
        row.name: row
        for row in (
            await session.execute(
                select(PublishedZone).with_for_update().order_by(PublishedZone.id)
            )
        ).scalars()
    }
    published = []
    for zone in zones:
        row = rows.get(zone.name)
        if zone.content_hash is None:
            published.append(replace(zone, serial=row.serial if row else None))
            continue
        if row is None:
            row = PublishedZone(
                name=zone.name,
                serial=bindgen.next_serial(None, clock),
                content_hash=zone.content_hash,
            )
            session.add(row)
            published.append(replace(zone, serial=row.serial, changed=True))
        elif row.content_hash != zone.content_hash:
            row.serial = bindgen.next_serial(row.serial, clock)
            row.content_hash = zone.content_hash
            published.append(replace(zone, serial=row.serial, changed=True))
        else:
            published.append(replace(zone, serial=row.serial))
    await session.flush()
    return published


async def find_published_zone(session: AsyncSession, name: str) -> DnsZone:
    """One published zone by name (``example.com`` or ``2.0.192.in-addr.arpa``)."""
    wanted = name.strip().lower().rstrip(".")
    for zone in await publish_zones(session):
        if zone.name == wanted:
            return zone
    raise NotFound(f"zone {name!r} does not exist", field="name")


# -- files -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What ``export_zones`` did: zone names written, unchanged, removed, and the invalid
    ones with their reasons (their previous file, if any, was kept)."""

    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    invalid: dict[str, str]
    conf_written: bool

    @property
    def ok(self) -> bool:
        return not self.invalid


def named_checkzone() -> str | None:
    """The ``named-checkzone`` program, if installed."""
    return shutil.which("named-checkzone") or next(
        (p for p in ("/usr/bin/named-checkzone", "/usr/sbin/named-checkzone") if os.path.exists(p)),
        None,
    )


def _first_line(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return handle.readline(512).decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` beside ``path`` (not yet in place); returns the temporary file."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(name, 0o644)
    return Path(name)


def _check(program: str | None, zone: DnsZone, path: Path) -> str | None:
    """named-checkzone's complaint about the file, or None when it is valid."""
    if program is None:
        return None
    # -k fail: refuse bad host names as named does for primary zones; -i local: check
    # integrity without looking up names outside the zone.
    result = subprocess.run(
        [program, "-k", "fail", "-i", "local", zone.name, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    lines = [
        line.replace(str(path), zone.file_name).strip()
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "not loaded due to errors" not in line
    ]
    return "named-checkzone: " + " | ".join(lines[:5])


def _write_and_check(program: str | None, zone: DnsZone, path: Path, text: str) -> str | None:
    """Put ``text`` in place of ``path`` if named-checkzone accepts it; else the complaint."""
    temporary = _write_atomic(path, text)
    try:
        problem = _check(program, zone, temporary)
        if problem is None:
            os.replace(temporary, path)
        return problem
    finally:
        temporary.unlink(missing_ok=True)


def _render_all(todo: list[DnsZone], processes: int) -> Iterator[str | bindgen.ZoneError]:
    """Each zone's text (or why it has none), in order; in worker processes when asked.

    Workers run ``bindgen.render_zone`` itself (they import only bindgen and dnspython).
    """

    def attempt(zone: DnsZone) -> str | bindgen.ZoneError:
        try:
            return zone_text(zone)
        except bindgen.ZoneError as error:
            return error

    if processes <= 1 or len(todo) < 2:
        yield from (attempt(zone) for zone in todo)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bindgen"])
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [
            pool.submit(bindgen.render_zone, zone.data, zone.serial, header=_file_header(zone))
            if zone.data is not None and zone.serial is not None
            else None
            for zone in todo
        ]
        for zone, future in zip(todo, futures, strict=True):
            if future is None:
                yield attempt(zone)
                continue
            try:
                yield future.result()
            except bindgen.ZoneError as error:
                yield error


def export_zones(
    zones: Iterable[DnsZone],
    directory: Path,
    *,
    check: bool = True,
    conf_directory: Path | None = None,
    processes: int | None = None,
) -> ExportResult:
    """Write ``zones`` (from ``publish_zones``) and ``named.conf`` into ``directory``.

    A zone file whose first line already names the zone's serial and content hash is left
    alone; any other zone is rendered, checked with named-checkzone (``check`` and
    installed) and moved into place atomically. An invalid zone keeps its previous file.
    Files this function wrote for zones that no longer exist are removed. ``named.conf``
    lists every zone with a file, by absolute path (under ``conf_directory`` if given).

    Rendering is CPU work: with ``processes`` > 1 (by default: one per CPU once more than
    ``PARALLEL_RECORDS`` records are to be written) zones are rendered in worker processes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    program = named_checkzone() if check else None
    zones = list(zones)
    invalid: dict[str, str] = {}
    unchanged: list[str] = []
    todo: list[DnsZone] = []
    for zone in zones:
        if zone.data is None:
            invalid[zone.name] = "; ".join(zone.problems)
        elif _first_line(directory / zone.file_name) == "; " + zone.header:
            unchanged.append(zone.name)
        else:
            todo.append(zone)
    if processes is None:
        records = sum(len(zone.data.records) for zone in todo if zone.data is not None)
        processes = (os.cpu_count() or 1) if records > PARALLEL_RECORDS and len(todo) > 1 else 1
    # Biggest first, so the last zone to finish is a small one.
    todo.sort(key=lambda z: -len(z.data.records) if z.data is not None else 0)
    texts = _render_all(todo, processes)
    written: list[str] = []
    # named-checkzone (a process of its own) runs while the next zones render.
    with ThreadPoolExecutor(max_workers=2) as checkers:
        checks: list[tuple[DnsZone, Future[str | None]]] = []
        for zone, text in zip(todo, texts, strict=True):
            if isinstance(text, bindgen.ZoneError):
                invalid[zone.name] = "; ".join(text.problems)
                continue
            path = directory / zone.file_name
            checks.append((zone, checkers.submit(_write_and_check, program, zone, path, text)))
        for zone, pending in checks:
            problem = pending.result()
            if problem is None:
                written.append(zone.name)
            else:
                invalid[zone.name] = problem
    current = {zone.file_name for zone in zones}
    removed: list[str] = []
    for path in sorted(directory.glob("*.zone")):
        if path.name not in current and (_first_line(path) or "").startswith(f"; {_MARK} zone "):
            path.unlink()
            removed.append(path.name.removesuffix(".zone"))
    base = (conf_directory or directory).absolute()
    listed = [
        (zone.name, str(base / zone.file_name))
        for zone in zones
        if (directory / zone.file_name).exists()
    ]
    conf = bindgen.render_named_conf(
        listed, header=f"{_MARK}: zones generated from the inventory; include this file"
    )
    conf_path = directory / CONF_NAME
    conf_written = False
    if not conf_path.exists() or conf_path.read_text() != conf:
        temporary = _write_atomic(conf_path, conf)
        os.replace(temporary, conf_path)
        conf_written = True
    return ExportResult(
        written=tuple(sorted(written)),
        unchanged=tuple(sorted(unchanged)),
        removed=tuple(removed),
        invalid=dict(sorted(invalid.items())),
        conf_written=conf_written,
    )
