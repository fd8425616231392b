"""DNS zones and their entries: creation, the fully qualified name, the naming of hosts in
DNS, and the rules that keep every generated zone valid.

Host names in a zone (see ``docs/dns.md``): every address of a Structure is
``<interface>.<hostname>`` (``<interface>-<alias>.<hostname>`` for an alias), and the
primary address is also the bare ``<hostname>``. A zone's child zones own their names, so a
hostname, an entry or a child zone never share one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Final, Required, TypedDict, Unpack

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bindgen import is_hostname
from contractor.errors import Conflict, ContractorError, InvalidInput, NotFound
from contractor.models import Site, Structure, Zone
from contractor.models.directory import (
    DEFAULT_EXPIRE,
    DEFAULT_MINIMUM,
    DEFAULT_REFRESH,
    DEFAULT_RETRY,
    DEFAULT_TTL,
    ENTRY_TYPES,
    Entry,
)
from contractor.services.common import UNSET, added, get_by, refuse_if_used
from contractor.services.dns_guard import kept_exportable
from contractor.services.dns_names import MAX_NAME, check_zone_label, entry_data

# Moved to dns_names (which the zone builder imports without this module); still here.
from contractor.services.dns_names import address_label as address_label
from contractor.services.dns_names import interface_label as interface_label
from contractor.services.dns_names import txt_data as txt_data
from contractor.services.dns_zones import Touched
from contractor.services.validation import check_int
from contractor.services.zone_settings import (
    MAX_TTL,
    TIMER_DEFAULTS,
    TIMERS,
    check_bool,
    check_nameservers,
    check_soa_email,
    check_timers,
)

# One label of an entry name: letters, digits, '_' (service labels) and inner '-'.
_ENTRY_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_TXT = 2000


async def get_zone(session: AsyncSession, zone_id: int) -> Zone:
    return await get_by(session, Zone, Zone.id, zone_id, what="zone")


def _parent_is(parent_id: int | None) -> ColumnElement[bool]:
    return Zone.parent_id.is_(None) if parent_id is None else Zone.parent_id == parent_id


async def find_zone(session: AsyncSession, fqdn: str) -> Zone:
    """The zone named by its dotted name (``site1.example``), parents included."""
    zone: Zone | None = None
    for text in reversed(fqdn.lower().rstrip(".").split(".")):
        label = text if text.isascii() else _a_label(text)
        query = select(Zone).where(Zone.name == label, _parent_is(zone.id if zone else None))
        zone = (await session.execute(query)).scalar_one_or_none()
        if zone is None:
            raise NotFound(f"zone {fqdn!r} does not exist", field="zone")
    if zone is None:
        raise NotFound("zone name is empty", field="zone")
    return zone


def _a_label(text: str) -> str:
    """A U-label as its A-label, to find a zone by the name its owner wrote (unchanged
    when it is not a valid one: the look-up then finds nothing and says so)."""
    try:
        return check_zone_label(text, field="zone")
    except InvalidInput:
        return text


async def create_zone(
    session: AsyncSession,
    *,
    name: str,
    parent: Zone | None = None,
    ttl: int = DEFAULT_TTL,
    refresh: int = DEFAULT_REFRESH,
    retry: int = DEFAULT_RETRY,
    expire: int = DEFAULT_EXPIRE,
    minimum: int = DEFAULT_MINIMUM,
    nameservers: Sequence[str] = (),
    soa_email: str | None = None,
    external: bool = False,
) -> Zone:
    """A zone; empty ``nameservers`` and a None ``soa_email`` are inherited from the parent.
    ``external``: delegated to us from a parent we do not serve (the zones above it are not
    generated, so they may hold no sites nor entries).

    A child zone may not take a name the parent zone already uses for a host or an entry.
    """
    name = check_zone_label(name, top_level=parent is None)
    if parent is not None and len(f"{name}.{await zone_fqdn(session, parent)}") > MAX_NAME:
        raise InvalidInput(
            f"zone {name!r} under {await zone_fqdn(session, parent)!r} would have a name "
            f"longer than {MAX_NAME} characters",
            field="name",
        )
    timers = {"ttl": ttl, "refresh": refresh, "retry": retry, "expire": expire, "minimum": minimum}
    # The defaults hold together: an error names a timer the caller changed.
    check_timers(timers, [field for field in TIMERS if timers[field] != TIMER_DEFAULTS[field]])
    servers = check_nameservers(list(nameservers))
    email = check_soa_email(soa_email)
    external = check_bool(external, field="external")
    parent_id = parent.id if parent is not None else None
    clash = select(Zone.id).where(Zone.name == name, _parent_is(parent_id))
    if (await session.execute(clash)).first() is not None:
        where = f"under {await zone_fqdn(session, parent)}" if parent else "at the top level"
        raise Conflict(f"zone {name!r} already exists {where}", field="name")
    if parent is not None:
        await _refuse_name_taken_in_zone(session, parent, name)
        if external:
            await _refuse_content_above(
                session, parent, f"{name}.{await zone_fqdn(session, parent)}"
            )
    zone = Zone(
        name=name,
        parent_id=parent_id,
        nameservers=servers,
        soa_email=email,
        external=external,
        **timers,
    )
    async with kept_exportable(session, field="nameservers" if servers else "name"):
        return await added(session, zone)


async def update_zone(
    session: AsyncSession,
    zone: Zone,
    *,
    ttl: int = UNSET,
    refresh: int = UNSET,
    retry: int = UNSET,
    expire: int = UNSET,
    minimum: int = UNSET,
    nameservers: Sequence[str] = UNSET,
    soa_email: str | None = UNSET,
    external: bool = UNSET,
) -> Zone:
    """Change the given fields, each checked as in ``create_zone`` and the timers together
    (the result must hold, so a change that breaks a relation is refused whole)."""
    given = {"ttl": ttl, "refresh": refresh, "retry": retry, "expire": expire, "minimum": minimum}
    given = {field: value for field, value in given.items() if value is not UNSET}
    timers = {field: given.get(field, getattr(zone, field)) for field in TIMERS}
    check_timers(timers, given)
    servers = UNSET if nameservers is UNSET else check_nameservers(list(nameservers))
    email = UNSET if soa_email is UNSET else check_soa_email(soa_email)
    if external is not UNSET:
        external = check_bool(external, field="external")
        if external and not zone.external and zone.parent_id is not None:
            parent = await get_zone(session, zone.parent_id)
            await _refuse_content_above(session, parent, await zone_fqdn(session, zone))
    async with kept_exportable(session, field="nameservers"):
        for field, value in {**given, "nameservers": servers, "soa_email": email}.items():
            if value is not UNSET:
                setattr(zone, field, value)
        if external is not UNSET:
            zone.external = external
        await session.flush()
    return zone


async def zones_not_generated(session: AsyncSession) -> set[int]:
    """The ids of the zones above an external zone: they only spell its name."""
    parents = {
        zone_id: (parent_id, external)
        for zone_id, parent_id, external in await session.execute(
            select(Zone.id, Zone.parent_id, Zone.external)
        )
    }
    above: set[int] = set()
    for parent_id, external in list(parents.values()):
        while external and parent_id is not None and parent_id not in above:
            above.add(parent_id)
            parent_id = parents[parent_id][0]
    return above


async def check_zone_generated(session: AsyncSession, zone: Zone, *, field: str) -> None:
    """Refuse to put data (a site, an entry) in a zone above an external zone: it is not
    generated, so the data would reach no DNS server."""
    if zone.id in await zones_not_generated(session):
        raise Conflict(
            f"zone {await zone_fqdn(session, zone)!r} is above an external zone and is not "
            "generated (it only spells the external zone's name): use a zone Contractor serves",
            field=field,
        )


async def _refuse_content_above(session: AsyncSession, parent: Zone, fqdn: str) -> None:
    """``fqdn`` is to become external under ``parent``: the zones from ``parent`` up will
    not be generated, so none of them may hold sites or entries."""
    current: Zone | None = parent
    while current is not None:
        found = (
            await session.execute(
                select(Site.name).where(Site.zone_id == current.id).order_by(Site.name).limit(1)
            )
        ).scalar_one_or_none()
        what = f"site {found!r} uses it" if found is not None else None
        if what is None:
            entry = (
                await session.execute(
                    select(Entry.type, Entry.name).where(Entry.zone_id == current.id).limit(1)
                )
            ).first()
            what = None if entry is None else f"its {entry[0]} entry {entry[1]!r} is there"
        if what is not None:
            raise Conflict(
                f"zone {fqdn!r} cannot be external: zone {await zone_fqdn(session, current)!r} "
                f"above it would no longer be generated, but {what}",
                field="external",
            )
        current = await get_zone(session, current.parent_id) if current.parent_id else None


async def zone_fqdn(session: AsyncSession, zone: Zone) -> str:
    """``name.parent.grandparent`` without the trailing dot."""
    labels = [zone.name]
    parent_id = zone.parent_id
    while parent_id is not None:
        parent = await get_zone(session, parent_id)
        labels.append(parent.name)
        parent_id = parent.parent_id
    return ".".join(labels)


async def delete_zone(session: AsyncSession, zone: Zone) -> None:
    """Delete a zone with no child zones and no sites (its entries go with it)."""
    await refuse_if_used(
        session,
        f"zone {await zone_fqdn(session, zone)!r}",
        [
            ("child zones", Zone.name, Zone.parent_id == zone.id),
            ("sites", Site.name, Site.zone_id == zone.id),
        ],
    )
    async with kept_exportable(session, field="fqdn"):
        await session.delete(zone)


# -- host names in DNS -----------------------------------------------------------------


async def zone_host_names(session: AsyncSession, zone: Zone) -> set[str]:
    """The hostnames of the Structures whose site uses ``zone``."""
    query = (
        select(Structure.hostname)
        .join(Site, Site.id == Structure.site_id)
        .where(Site.zone_id == zone.id)
    )
    return set((await session.execute(query)).scalars())


async def _refuse_name_taken_in_zone(session: AsyncSession, parent: Zone, name: str) -> None:
    """A child zone named ``name`` would hide the parent's host or entries of that name."""
    if name in await zone_host_names(session, parent):
        site = (
            await session.execute(
                select(Site.name)
                .join(Structure, Structure.site_id == Site.id)
                .where(Site.zone_id == parent.id, Structure.hostname == name)
                .limit(1)
            )
        ).scalar_one()
        raise Conflict(
            f"zone {name!r} cannot be created under {await zone_fqdn(session, parent)!r}: "
            f"structure {name!r} (site {site!r}) already has that name in the parent zone",
            field="name",
        )
    entries = (
        await session.execute(
            select(Entry.name, Entry.type).where(
                Entry.zone_id == parent.id,
                (Entry.name == name) | Entry.name.endswith("." + name),
            )
        )
    ).all()
    if entries:
        entry_name, entry_type = entries[0]
        raise Conflict(
            f"zone {name!r} cannot be created under {await zone_fqdn(session, parent)!r}: "
            f"its {entry_type} entry {entry_name!r} uses that name; delete the entry first",
            field="name",
        )


async def check_hostname_free_of_zones(session: AsyncSession, zone: Zone, hostname: str) -> None:
    """Refuse ``hostname`` in ``zone`` when a child zone has that name (for the structure
    services: DNS generation refuses such a zone too)."""
    child = select(Zone.id).where(Zone.parent_id == zone.id, Zone.name == hostname)
    if (await session.execute(child)).first() is not None:
        raise Conflict(
            f"hostname {hostname!r} is the name of child zone "
            f"{hostname + '.' + await zone_fqdn(session, zone)!r}",
            field="hostname",
        )


async def check_hostname_free_of_entries(session: AsyncSession, zone: Zone, hostname: str) -> None:
    """Refuse ``hostname`` in ``zone`` when a CNAME or NS entry has that name (a CNAME
    cannot share its name with a host's addresses; an NS entry delegates it elsewhere)."""
    query = select(Entry.type, Entry.name).where(
        Entry.zone_id == zone.id,
        Entry.type.in_(("CNAME", "NS")),
        (Entry.name == hostname) | Entry.name.endswith("." + hostname),
    )
    for type, name in await session.execute(query):
        if type == "NS" or name == hostname:
            raise Conflict(
                f"hostname {hostname!r} is the name of {type} entry {name!r} in zone "
                f"{await zone_fqdn(session, zone)!r}; delete the entry or choose another "
                "hostname",
                field="hostname",
            )


# -- entries ---------------------------------------------------------------------------


async def get_entry(session: AsyncSession, entry_id: int) -> Entry:
    return await get_by(session, Entry, Entry.id, entry_id, what="entry")


async def list_entries(session: AsyncSession, zone: Zone) -> list[Entry]:
    query = select(Entry).where(Entry.zone_id == zone.id).order_by(Entry.name, Entry.type, Entry.id)
    return list((await session.execute(query)).scalars())


def _check_entry_name(name: Any, type: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(
            "entry name must not be empty (use '@' for the zone itself)", field="name"
        )
    text = name.strip().lower()
    if text == "@":
        if type in ("CNAME", "NS"):
            raise InvalidInput(
                f"a {type} entry cannot be at the zone itself ('@'): "
                + (
                    "a CNAME cannot share a name with the zone's SOA and NS records"
                    if type == "CNAME"
                    else "the zone's own name servers are set on the zone (nameservers)"
                ),
                field="name",
            )
        return text
    if len(text) > 253 or text.endswith("."):
        raise InvalidInput(
            f"entry name {name!r} must be relative to the zone (no trailing dot) and at most "
            "253 characters",
            field="name",
        )
    labels = text.split(".")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and type != "NS":
            continue
        if not _ENTRY_LABEL.fullmatch(label):
            raise InvalidInput(
                f"entry name {name!r}: label {label!r} may only hold lower-case letters, "
                "digits, '_' and inner '-' (1 to 63 characters)",
                field="name",
            )
    if type in ("MX", "NS") and not is_hostname(text.removeprefix("*.")):
        raise InvalidInput(f"{type} entry name {name!r} must be a host name (no '_')", field="name")
    return text


def _check_target(target: Any, type: str) -> str:
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput(f"a {type} entry needs a target host name", field="target")
    text = target.strip().lower()
    if text == "." and type in ("MX", "SRV"):
        return text  # RFC 7505 null MX, RFC 2782 "service not available"
    bare = text.rstrip(".")
    if len(bare) > 253 or text.endswith(".."):
        raise InvalidInput(f"target {target!r} is not a valid DNS name", field="target")
    if type == "CNAME":
        if not all(_ENTRY_LABEL.fullmatch(label) for label in bare.split(".")):
            raise InvalidInput(
                f"CNAME target {target!r} is not a valid DNS name (letters, digits, '_' and "
                "inner '-' per label)",
                field="target",
            )
    elif not is_hostname(bare):
        raise InvalidInput(
            f"{type} target {target!r} must be a host name (letters, digits and inner '-' "
            "per label; end it with '.' when it is outside the zone)",
            field="target",
        )
    return text


def _check_text(text: Any) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidInput("a TXT entry needs text", field="text")
    if len(text.encode()) > _MAX_TXT:
        raise InvalidInput(f"TXT text is longer than {_MAX_TXT} bytes", field="text")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput("TXT text must not contain control characters", field="text")
    return text


def _none_or(field: str, value: Any, needed: bool, type: str, high: int) -> int | None:
    if not needed:
        if value is not None:
            raise InvalidInput(f"a {type} entry has no {field}", field=field)
        return None
    if value is None:
        raise InvalidInput(f"a {type} entry needs a {field}", field=field)
    return check_int(value, field=field, low=0, high=high)


class Record(TypedDict, total=False):
    """A zone entry's record as given: its type and owner name always, the other fields as
    its type needs them (``create_entry``)."""

    type: Required[str]
    name: Required[str]
    target: str | None
    text: str | None
    priority: int | None
    weight: int | None
    port: int | None
    ttl: int | None


async def create_entry(session: AsyncSession, *, zone: Zone, **record: Unpack[Record]) -> Entry:
    """A CNAME, MX, NS (delegation to servers Contractor does not manage), SRV or TXT record
    of ``zone``. ``target`` is relative to the zone unless it ends with a dot."""
    entry = await _new_entry(session, zone, record)
    field = "target" if entry.type != "TXT" else "name"
    async with kept_exportable(session, field=field, touched=_reaches([entry.type], zone)):
        return await added(session, entry)


async def create_entries(
    session: AsyncSession, *, zone: Zone, records: Sequence[Record]
) -> list[Entry]:
    """``create_entry`` for each of ``records``, all or none: each is checked as
    ``create_entry`` checks it (against the zone and the entries before it), and the zones
    are checked once for the whole batch, not once per entry (a bulk load of N entries would
    otherwise build and check the zone N times). A refused record is named by its place:
    ``records[3]: ...`` on field ``records[3].name``; nothing of the batch is kept."""
    entries: list[Entry] = []
    reaches = _reaches([str(record.get("type", "")).strip().upper() for record in records], zone)
    async with kept_exportable(session, field="records", touched=reaches):
        for index, record in enumerate(records):
            try:
                entries.append(await added(session, await _new_entry(session, zone, record)))
            except ContractorError as error:
                raise _at(error, f"records[{index}]") from None
    return entries


# Entries that only add records at their own names: their zone is all they can reach (a
# CNAME's target may lie in any zone; an NS entry delegates what lies below it).
_ZONE_LOCAL: Final = frozenset(("TXT", "MX", "SRV"))


def _reaches(kinds: Sequence[str], zone: Zone) -> Touched | None:
    """The zones adding entries of ``kinds`` to ``zone`` can reach (``kept_exportable``);
    None: every zone."""
    return Touched(zones=frozenset((zone.id,))) if set(kinds) <= _ZONE_LOCAL else None


def _at(error: ContractorError, place: str) -> ContractorError:
    """``error`` (of its own class) as raised by the item at ``place`` of a batch."""
    located = copy.copy(error)
    located.message = f"{place}: {error.message}"
    located.args = (located.message,)
    located.field = place if error.field is None else f"{place}.{error.field}"
    return located


async def _new_entry(session: AsyncSession, zone: Zone, record: Record) -> Entry:
    """The entry ``record`` describes, checked (``create_entry``), not added yet."""
    type, target, text = record["type"], record.get("target"), record.get("text")
    kind = type.strip().upper() if isinstance(type, str) else type
    if kind not in ENTRY_TYPES:
        raise InvalidInput(
            f"entry type {type!r} is not one of {', '.join(ENTRY_TYPES)}", field="type"
        )
    owner = _check_entry_name(record["name"], kind)
    await check_zone_generated(session, zone, field="zone")
    ttl = record.get("ttl")
    entry = Entry(
        zone_id=zone.id,
        type=kind,
        name=owner,
        target=_check_target(target, kind) if kind != "TXT" else None,
        text=_check_text(text) if kind == "TXT" else None,
        priority=_none_or("priority", record.get("priority"), kind in ("MX", "SRV"), kind, 65535),
        weight=_none_or("weight", record.get("weight"), kind == "SRV", kind, 65535),
        port=_none_or("port", record.get("port"), kind == "SRV", kind, 65535),
        ttl=None if ttl is None else check_int(ttl, field="ttl", low=0, high=MAX_TTL),
    )
    if kind != "TXT" and target is not None and text is not None:
        raise InvalidInput(f"a {kind} entry has no text", field="text")
    if kind == "TXT" and target is not None:
        raise InvalidInput("a TXT entry has no target (the value goes in text)", field="target")
    await _refuse_entry_clash(session, zone, entry)
    return entry


async def _refuse_entry_clash(session: AsyncSession, zone: Zone, entry: Entry) -> None:
    fqdn = await zone_fqdn(session, zone)
    shown = f"{entry.name} in zone {fqdn!r}"
    same_name = list(
        (
            await session.execute(
                select(Entry).where(Entry.zone_id == zone.id, Entry.name == entry.name)
            )
        ).scalars()
    )
    for other in same_name:
        if entry_data(other) == entry_data(entry) and other.type == entry.type:
            raise Conflict(f"{entry.type} entry {shown} already exists", field="name")
        if entry.type == "CNAME" or other.type == "CNAME":
            raise Conflict(
                f"{shown} already has a {other.type} entry; a CNAME cannot share its name "
                "with any other record",
                field="name",
            )
        if entry.type == "NS" or other.type == "NS":
            raise Conflict(
                f"{shown} already has a {other.type} entry; a delegation (NS) cannot share "
                "its name with other records",
                field="name",
            )
    top = entry.name.rsplit(".", 1)[-1]  # the label right below the zone's own name
    child = (
        await session.execute(
            select(func.count()).where(Zone.parent_id == zone.id, Zone.name == top)
        )
    ).scalar_one()
    if child:
        raise Conflict(
            f"{shown} is inside child zone {top + '.' + fqdn!r}; add it to that zone",
            field="name",
        )
    if entry.type in ("CNAME", "NS"):
        hosts = await zone_host_names(session, zone)
        if entry.name in hosts or (entry.type == "NS" and top in hosts):
            raise Conflict(
                f"{shown} is the name of a structure (or below it); a {entry.type} entry "
                "cannot share its name with a host's addresses",
                field="name",
            )


async def delete_entry(session: AsyncSession, entry: Entry) -> None:
    async with kept_exportable(session, field="id"):
        await session.delete(entry)
