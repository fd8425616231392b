"""Changes that would make a DNS zone unexportable, or wrong, are refused when they are made.

A change wrapped in ``kept_exportable(session, field=...)`` is checked against the zones
themselves: they are built before and after it by ``build_zones`` (what the export and the
pusher build), and every zone whose content changed is checked by ``zone_problems``, the
renderer's own checks (``bindgen.check_zone`` is what ``bindgen.render_zone`` refuses), and
for what would load but be wrong (``record_problems``):

* two hosts with one name (two ``A`` or two ``AAAA`` records at one owner), or two owners
  for one address in a reverse zone (two ``PTR`` records at one owner);
* a ``CNAME`` entry whose target lies in a zone Contractor publishes and does not exist
  there.

A problem a zone did not have before the change makes it a ``Conflict`` naming the field,
the zone and the clash, and the change is undone (it ran in a savepoint). A zone's older problems
(from data stored before these checks) do not block changes that leave them as they are;
while a zone cannot be built at all, only what keeps it from being built is compared (its
records are not there to check until that is fixed).
A zone that is new, or not exported yet, may be incomplete (``incomplete``: an in-zone name
server whose address comes later, since its host needs the zone first); a zone that is being
exported may not become so: delegate a child zone to name servers inside it only once they
have addresses (create it with inherited name servers, then set its own).

The cost is two builds of the zones per change and a check of the zones whose content
changed (docs/dns.md has measurements). A caller that knows which zones its change can reach
says so (``touched``: the same ``Touched`` a publish builds from the event log, and by the
same rules, ``services.dns_touched``), and only those zones are built, before and after:
a change that only adds records (a new address, a TXT, MX or SRV entry) reaches the forward
zone of its site or zone, the reverse zones of its blocks and the zones taking glue from
them, and cannot give any other zone a problem (no record elsewhere changes; a CNAME
elsewhere can only find the new name). Anything that removes or renames names, or adds a
CNAME (whose target may lie in any zone), builds every zone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from contractor.errors import Conflict
from contractor.models import Zone
from contractor.services.dns_zones import DnsZone, Touched, build_zones

__all__ = ["INCOMPLETE", "incomplete", "kept_exportable", "record_problems", "zone_problems"]

_UNIQUE_TYPES = ("A", "AAAA", "PTR")
_SHOWN = 3  # problems quoted in one refusal


def zone_problems(zone: DnsZone) -> list[str]:
    """Why the export would refuse ``zone``: what kept it from being built, else what
    ``bindgen.render_zone`` refuses (the same checks, ``bindgen.check_zone``)."""
    if zone.data is None:
        return list(zone.problems)
    return bindgen.check_zone(zone.data)


# The problems of a zone that is not finished yet rather than wrong (bindgen's and
# build_zones' wording; tests/services/test_dns_guard.py holds them to it).
INCOMPLETE = ("is inside the zone but has no", "has no name servers")


def incomplete(problem: str) -> bool:
    """``problem`` is a name server without an address (or no name server at all)."""
    return any(words in problem for words in INCOMPLETE)


def _absolute(name: str, origin: str) -> str:
    """A record's owner or target as an absolute name, lower case, without the final dot."""
    if name == "@":
        return origin
    if name.endswith("."):
        return name[:-1].lower()
    return f"{name}.{origin}".lower()


def record_problems(zone: DnsZone) -> list[str]:
    """What a zone would load with but answer wrongly: one name or address with two
    owners (two A, two AAAA or two PTR records at one name)."""
    if zone.data is None:
        return []
    seen: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for record in zone.data.records:
        if record.type not in _UNIQUE_TYPES:
            continue
        owner = _absolute(record.name, zone.name)
        first = seen.setdefault((owner, record.type), record.data)
        if first != record.data:
            if record.type == "PTR":
                problems.append(
                    f"{owner}. would name two hosts: PTR {first} and PTR {record.data}; an "
                    "address of the reverse zone is held twice (blocks of two sites overlap)"
                )
            else:
                problems.append(
                    f"{owner}. would have two {record.type} records, {first} and "
                    f"{record.data}: two hosts take that name"
                )
    return problems


def _dangling_cnames(zones: Mapping[str, DnsZone]) -> dict[str, list[str]]:
    """Per zone, its CNAMEs whose target lies in a published zone where no such name is."""
    names: dict[str, set[str]] = {}

    def owners(zone: DnsZone) -> set[str]:
        if zone.name not in names:
            assert zone.data is not None
            names[zone.name] = {_absolute(r.name, zone.name) for r in zone.data.records}
        return names[zone.name]

    found: dict[str, list[str]] = {}
    for zone in zones.values():
        # Reverse zones' CNAMEs are RFC 2317's, for every address of a block, held or not.
        if zone.data is None or zone.kind != "forward":
            continue
        for record in zone.data.records:
            if record.type != "CNAME":
                continue
            target = _absolute(record.data.strip(), zone.name)
            holder = _holding_zone(zones, target)
            if holder is None or holder.data is None or _exists(target, holder, owners(holder)):
                continue
            found.setdefault(zone.name, []).append(
                f"{_absolute(record.name, zone.name)}. CNAME {target}.: no such name in zone "
                f"{holder.name!r}"
            )
    return found


def _holding_zone(zones: Mapping[str, DnsZone], name: str) -> DnsZone | None:
    """The published zone with the longest name that ``name`` lies in."""
    labels = name.split(".")
    for start in range(len(labels)):
        zone = zones.get(".".join(labels[start:]))
        if zone is not None:
            return zone
    return None


def _exists(name: str, zone: DnsZone, owners: set[str]) -> bool:
    """``name`` has records in ``zone``, is an empty non-terminal, matches a wildcard, or
    lies below a delegation (another server answers for it)."""
    if name == zone.name or name in owners:
        return True
    suffix = "." + name
    if any(owner.endswith(suffix) for owner in owners):
        return True
    labels = name.split(".")
    depth = len(zone.name.split("."))
    for start in range(1, len(labels) - depth + 1):
        above = ".".join(labels[start:])
        if "*." + above in owners:
            return True
    assert zone.data is not None
    cuts = {_absolute(r.name, zone.name) for r in zone.data.records if r.type == "NS"}
    return any(name.endswith("." + cut) for cut in cuts - {zone.name})


def _all_problems(zone: DnsZone) -> list[str]:
    return zone_problems(zone) + record_problems(zone)


def _new_problems(before: Mapping[str, DnsZone], after: Mapping[str, DnsZone]) -> list[str]:
    """Each problem of ``after`` that ``before`` did not have, as ``zone: problem``."""
    new: list[str] = []
    for name, zone in after.items():
        old = before.get(name)
        same = zone.content_hash is not None and old is not None
        if same and old is not None and old.content_hash == zone.content_hash:
            continue  # the same data: the same problems
        problems = _all_problems(zone)
        if not problems:
            continue
        known = set(_all_problems(old)) if old is not None else set()
        if old is None or zone_problems(old):
            # A zone that is new, or was not being exported, may still be incomplete: its
            # name servers get their addresses after the zones exist.
            problems = [p for p in problems if not incomplete(p)]
        new.extend(f"zone {name!r}: {p}" for p in problems if p not in known)
    dangling_before = _dangling_cnames(before)
    for name, dangling in _dangling_cnames(after).items():
        new.extend(
            f"zone {name!r}: {p}" for p in dangling if p not in dangling_before.get(name, [])
        )
    return new


async def _zones(session: AsyncSession, touched: Touched | None) -> dict[str, DnsZone] | None:
    """Every zone by name (or those ``touched`` reaches); None (nothing to check) while there
    are no zones at all."""
    if (await session.execute(select(Zone.id).limit(1))).first() is None:
        return None
    return {zone.name: zone for zone in await build_zones(session, touched)}


@asynccontextmanager
async def kept_exportable(
    session: AsyncSession, *, field: str, touched: Touched | None = None
) -> AsyncIterator[None]:
    """Refuse (``Conflict`` on ``field``) the change made inside the block when it would give
    some zone a problem it did not have; the change is rolled back (a savepoint). With
    ``touched`` (the zones the change can reach: see above), only those zones are built."""
    before = await _zones(session, touched)
    # A savepoint: a refused change is undone here, whatever the caller does next.
    async with session.begin_nested():
        yield
        await session.flush()
        after = await _zones(session, touched)
        new = [] if after is None else _new_problems(before or {}, after)
        if not new:
            return
        more = f" (and {len(new) - _SHOWN} more)" if len(new) > _SHOWN else ""
        raise Conflict(
            "refused: DNS would be wrong or could not be exported after this change: "
            + "; ".join(new[:_SHOWN])
            + more,
            field=field,
        )
