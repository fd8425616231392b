"""DNS zones published: each zone's serial, its file text, and the files themselves.

* ``build_zones`` (``contractor.services.dns_zones``) reads the inventory and returns every
  forward and reverse zone as plain ``bindgen.ZoneData`` with its content hash, or the
  problems that keep it from being generated.
* ``publish_zones`` is what every view of the zones reads (GraphQL, REST, the export, the
  RFC 2136 pusher): each zone with its problems, and its serial: unchanged while the
  content hash is, a new one (``bindgen.next_serial``) when it changes and the new version
  renders, kept with that version's text in ``published_zone``. A zone that turns invalid
  keeps its last good serial and text.
* ``export_zones`` writes the zone files and a ``named.conf`` fragment into a directory:
  only zones whose serial or content differs from the file are rendered, each new file is
  checked with ``named-checkzone`` (when installed) before it atomically replaces the old.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from contractor.errors import NotFound
from contractor.models.directory import PublishedZone, PublishedZoneList
from contractor.models.events import Event, EventHorizon
from contractor.services.dns_touched import DNS_OBJECT_TYPES, dns_events, touched_since
from contractor.services.dns_zones import FILE_MARK as _MARK
from contractor.services.dns_zones import DnsZone, Touched, build_zones
from contractor.services.events import has_pending_events, latest_cursor

__all__ = [
    "CONF_NAME",
    "DNS_OBJECT_TYPES",
    "PARALLEL_RECORDS",
    "DnsZone",
    "ExportResult",
    "build_zones",
    "dns_changed_after",
    "dns_events",
    "export_zones",
    "find_published_zone",
    "publish_zones",
    "served_text",
    "zone_text",
]

CONF_NAME = "named.conf"
PARALLEL_RECORDS = 50_000  # more records than this to write: render in worker processes


def zone_text(zone: DnsZone) -> str:
    """The zone file text rendered from its data (raises ``bindgen.ZoneError`` naming what is
    wrong)."""
    if zone.data is None or zone.details:
        raise bindgen.ZoneError(zone.name, list(zone.details))
    if zone.serial is None:
        raise ValueError(f"zone {zone.name} has no serial yet: publish_zones gives it one")
    return bindgen.render_zone(zone.data, zone.serial, header=_file_header(zone))


def served_text(zone: DnsZone) -> str | None:
    """The text served for a published zone: its current file, or for an invalid zone the
    file of its last good version (None when it never had one)."""
    if zone.text is not None:
        return zone.text
    return zone_text(zone) if zone.valid and zone.serial is not None else None


def _file_header(zone: DnsZone) -> str:
    return f"{zone.header}\ngenerated from the inventory; edits are overwritten"


# -- serials -----------------------------------------------------------------------------


# The advisory lock key publishers take turns on ("bindgen" as a number).
_PUBLISH_LOCK = int.from_bytes(b"bindgen", "big")


async def publish_zones(
    session: AsyncSession, *, now: int | None = None, rebuild: bool = False
) -> list[DnsZone]:
    """Every zone with its problems and serial, the one answer every view gives.

    A zone whose content hash is unchanged keeps its serial. A new or changed zone is
    rendered now (``bindgen.render_zone`` checks everything BIND would refuse): when it
    renders it gets the next serial (Unix time when that is larger) and its text is stored;
    when it does not, or the inventory cannot make it at all, it keeps its last good serial
    and text (``text`` is set for it) and its ``details`` say why. Writes ``published_zone``
    rows; the caller commits.

    When no event that can change a zone (``DNS_OBJECT_TYPES``, any address) was written
    since the last full publish and this transaction changed nothing, the answer is read
    back from what that publish stored (``published_zone_list``, ``published_zone``): no
    inventory read, no hashing. Those zones have no ``data`` but always their ``text``;
    ``rebuild`` reads the inventory regardless (a caller that needs ``data``). When such
    events were written, only the zones they touched are built again
    (``dns_touched.touched_since``), the others answered from the stored rows; events that
    cannot say precisely what they touched make it build every zone.

    Publishers take turns (on PostgreSQL a transaction-scoped advisory lock; SQLite's
    writers already do): two processes publishing a zone for the first time would otherwise
    both insert its row, and the later one would fail on the unique name."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_PUBLISH_LOCK)))
    await session.flush()  # this transaction's own changes noted by the outbox
    listing = (
        await session.execute(select(PublishedZoneList).order_by(PublishedZoneList.id).limit(1))
    ).scalar()
    # Read before the inventory: a change committed after this has a later event.
    newest = await latest_cursor(session)
    unchanged = (
        not rebuild
        and listing is not None
        and not has_pending_events(session)
        and not await dns_changed_after(session, listing.cursor)
    )
    if unchanged and listing is not None:
        stored = await _stored_zones(session, listing.zones)
        if stored is not None:
            if newest - listing.cursor > _ADVANCE:  # keep the next look short
                listing.cursor = newest
                await session.flush()
            return stored
    zones: list[DnsZone] | None = None
    if listing is not None and not rebuild and not has_pending_events(session):
        touched = await touched_since(session, listing.cursor, newest)
        if touched is not None:
            zones = await _publish_touched(session, listing.zones, touched, now)
    if zones is None:
        zones = await _publish(session, await build_zones(session), now)
    entries = [_entry(zone) for zone in zones]
    if listing is None:
        session.add(PublishedZoneList(cursor=newest, zones=entries))
    else:
        listing.cursor, listing.zones = newest, entries
    await session.flush()
    return zones


async def _publish_touched(
    session: AsyncSession, entries: Sequence[dict[str, Any]], touched: Touched, now: int | None
) -> list[DnsZone] | None:
    """``publish_zones`` after the changes ``touched`` names: those zones built and
    published again, the others as the last publish stored them; None when that cannot be
    (the zones are not the last publish's, or their stored rows do not match it)."""
    built = await build_zones(session, touched) if touched.zones or touched.blocks else []
    listed = {entry["name"]: entry for entry in entries}
    if not {zone.name for zone in built} <= listed.keys():
        return None  # (a change of the set of zones is never touched: a full build)
    again = {zone.name for zone in built}
    kept = await _stored_zones(session, [e for e in entries if e["name"] not in again])
    if kept is None:
        return None
    fresh = {zone.name: zone for zone in await _publish(session, built, now)}
    stored = {zone.name: zone for zone in kept}
    return [fresh.get(name) or stored[name] for name in listed]


# A publish that skips moves the list's cursor past this many unrelated events.
_ADVANCE = 1000


async def dns_changed_after(session: AsyncSession, cursor: int) -> bool:
    """Whether an event after ``cursor`` can have changed a zone, or the log no longer says
    (events after ``cursor`` were pruned)."""
    query = select(Event.id).where(Event.id > cursor, dns_events()).limit(1)
    if (await session.execute(query)).scalar() is not None:
        return True
    pruned = select(EventHorizon.cursor).where(EventHorizon.cursor > cursor).limit(1)
    return (await session.execute(pruned)).scalar() is not None


def _entry(zone: DnsZone) -> dict[str, Any]:
    return {
        "name": zone.name,
        "kind": zone.kind,
        "hash": zone.content_hash,
        "problems": [[p.code, p.message, p.record] for p in zone.details],
    }


async def _stored_zones(
    session: AsyncSession, entries: Sequence[dict[str, Any]]
) -> list[DnsZone] | None:
    """The zones of the last full publish from its stored rows; None when those rows no
    longer match it (a good zone without its row or text: publish it again)."""
    names = [entry["name"] for entry in entries]
    query = select(
        PublishedZone.name, PublishedZone.serial, PublishedZone.content_hash, PublishedZone.text
    ).where(PublishedZone.name.in_(names))
    rows = {row.name: row for row in await session.execute(query)}
    zones: list[DnsZone] = []
    for entry in entries:
        name, kind, digest = entry["name"], entry["kind"], entry["hash"]
        details = tuple(bindgen.Problem(*problem) for problem in entry["problems"])
        row = rows.get(name)
        valid = digest is not None and not details  # its row must hold this very version
        if valid and (row is None or row.content_hash != digest or row.text is None):
            return None
        zone = DnsZone(name, kind, None, digest, details)
        if row is not None:
            zone = replace(zone, serial=row.serial, published_hash=row.content_hash, text=row.text)
        zones.append(zone)
    return zones


async def _publish(session: AsyncSession, zones: list[DnsZone], now: int | None) -> list[DnsZone]:
    """``zones`` as just built, published: serials, texts and ``published_zone`` rows."""
    clock = int(time.time()) if now is None else now
    rows = {
        row.name: row
        for row in (
            await session.execute(
                select(PublishedZone).with_for_update().order_by(PublishedZone.id)
            )
        ).scalars()
    }
    untexted = set(
        (
            await session.execute(select(PublishedZone.name).where(PublishedZone.text.is_(None)))
        ).scalars()
    )
    # Each zone as it stands without this publish: its last good serial and content hash.
    published: dict[str, DnsZone] = {
        zone.name: replace(zone, serial=row.serial, published_hash=row.content_hash)
        if (row := rows.get(zone.name)) is not None
        else zone
        for zone in zones
    }
    todo: list[DnsZone] = []  # to render: new or changed, or good but stored without text
    for zone in zones:
        row = rows.get(zone.name)
        if not zone.valid:
            continue
        if row is not None and row.content_hash == zone.content_hash:
            if zone.name in untexted:
                todo.append(published[zone.name])
        else:
            serial = bindgen.next_serial(row.serial if row else None, clock)
            todo.append(replace(zone, serial=serial, published_hash=zone.content_hash))
    texts = await anyio.to_thread.run_sync(_render_list, todo)
    for zone, text in zip(todo, texts, strict=True):
        if isinstance(text, bindgen.ZoneError):
            published[zone.name] = replace(published[zone.name], details=tuple(text.details))
            continue
        number, digest = zone.serial, zone.content_hash
        assert number is not None  # every zone to render has both
        assert digest is not None
        row = rows.get(zone.name)
        changed = row is None or (row.serial, row.content_hash) != (number, digest)
        if row is None:
            row = PublishedZone(name=zone.name, serial=number, content_hash=digest)
            session.add(row)
        row.serial, row.content_hash, row.text = number, digest, text
        published[zone.name] = replace(zone, text=text, changed=changed)
    await session.flush()
    await _load_kept_texts(session, published)
    return [published[zone.name] for zone in zones]


async def _load_kept_texts(session: AsyncSession, zones: dict[str, DnsZone]) -> None:
    """Give each invalid zone the text of its last good version (few zones, if any)."""
    names = [name for name, zone in zones.items() if not zone.valid and zone.serial is not None]
    if names:
        query = select(PublishedZone.name, PublishedZone.text).where(PublishedZone.name.in_(names))
        for name, text in await session.execute(query):
            zones[name] = replace(zones[name], text=text)


def _render_list(todo: list[DnsZone]) -> list[str | bindgen.ZoneError]:
    return list(_render_all(todo, _processes(todo, None)))


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


def _processes(todo: list[DnsZone], processes: int | None) -> int:
    """Worker processes to render ``todo`` with: one per CPU once more than
    ``PARALLEL_RECORDS`` records are to be rendered, unless ``processes`` says."""
    if processes is not None:
        return processes
    records = sum(len(zone.data.records) for zone in todo if zone.data is not None)
    return (os.cpu_count() or 1) if records > PARALLEL_RECORDS and len(todo) > 1 else 1


def _render_all(todo: list[DnsZone], processes: int) -> Iterator[str | bindgen.ZoneError]:
    """Each zone's text (or why it has none), in order; in worker processes when asked.

    Workers run ``bindgen.render_zone`` itself (they import only bindgen and dnspython).
    """

    def attempt(zone: DnsZone) -> str | bindgen.ZoneError:
        if zone.text is not None:
            return zone.text
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
            if zone.data is not None
            and not zone.details
            and zone.serial is not None
            and zone.text is None
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
    allow_transfer: Sequence[str] = (),
    also_notify: Sequence[str] = (),
) -> ExportResult:
    """Write ``zones`` (from ``publish_zones``) and ``named.conf`` into ``directory``.

    A zone file whose first line already names the zone's serial and content hash is left
    alone; any other zone is rendered (unless ``publish_zones`` just did), checked with
    named-checkzone (``check`` and installed) and moved into place atomically. An invalid
    zone is reported and keeps its last good file (written again from its stored text when
    the directory lacks it). Files this function wrote for zones that no longer exist are
    removed. ``named.conf`` lists every zone with a file, by absolute path (under
    ``conf_directory`` if given), with ``allow_transfer`` and ``also_notify`` (for the
    secondaries) in every zone when given.

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
        up_to_date = _first_line(directory / zone.file_name) == "; " + zone.header
        if not zone.valid:
            invalid[zone.name] = "; ".join(zone.problems)
            if zone.text is not None and not up_to_date:
                todo.append(zone)  # its last good file, which the directory lacks
        elif up_to_date:
            unchanged.append(zone.name)
        else:
            todo.append(zone)
    processes = _processes([zone for zone in todo if zone.text is None], processes)
    # Biggest first, so the last zone to finish is a small one.
    todo.sort(key=lambda z: -len(z.data.records) if z.data is not None else 0)
    texts = _render_all(todo, processes)
    written: list[str] = []
    kept = set(invalid)
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
            elif zone.name not in kept:
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
        listed,
        header=f"{_MARK}: zones generated from the inventory; include this file",
        allow_transfer=allow_transfer,
        also_notify=also_notify,
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
