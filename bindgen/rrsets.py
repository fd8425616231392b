"""A zone as record sets, and the difference between two such sets: what an RFC 2136
dynamic update must delete and add to turn a server's zone from one into the other.

``zone_rrsets(zone, serial)`` gives every record set of a ``ZoneData`` (the SOA with
``serial`` included) keyed by absolute owner name and type, each with its TTL and its RDATA
texts (absolute names, sorted); ``zone_rrsets_of(dns_zone)`` does the same for a zone read
by dnspython (an AXFR). ``diff_rrsets(old, new)`` lists the ``Change`` s between two of them.
The texts are JSON-ready: a set can be stored and compared later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.zone

from bindgen.zone import ZoneData, ZoneError, _build

__all__ = [
    "Change",
    "RRset",
    "RRsetKey",
    "RRsets",
    "apply_changes",
    "diff_rrsets",
    "zone_rrsets",
    "zone_rrsets_of",
]

RRsetKey = tuple[str, str]  # (absolute owner name, type), e.g. ("web1.example.", "A")


@dataclass(frozen=True, slots=True)
class RRset:
    ttl: int
    rdatas: tuple[str, ...]  # presentation format, absolute names, sorted, no duplicates


RRsets = dict[RRsetKey, RRset]


def zone_rrsets(zone: ZoneData, serial: int) -> RRsets:
    """Every record set of ``zone`` with ``serial`` in its SOA (raises ``ZoneError`` naming
    every problem, as ``render_zone`` does). A set's TTL is the lowest of its records'."""
    origin, groups, problems = _build(zone, serial)
    if problems:
        raise ZoneError(zone.origin, problems)
    result: RRsets = {}
    for key, types in groups.items():
        name = groups.name(key).derelativize(origin).to_text()
        for rdtype, entries in types.items():
            ttl = min(entry_ttl for _rdata, entry_ttl in entries)
            texts = {rdata.to_text(origin=origin, relativize=False) for rdata, _ttl in entries}
            result[(name, dns.rdatatype.to_text(rdtype))] = RRset(ttl, tuple(sorted(texts)))
    return result


def zone_rrsets_of(zone: dns.zone.Zone) -> RRsets:
    """The record sets of a zone dnspython holds (e.g. ``dns.zone.from_xfr``)."""
    origin = zone.origin
    assert origin is not None
    result: RRsets = {}
    for owner, node in zone.nodes.items():
        name = owner.derelativize(origin).to_text()
        for rdataset in node.rdatasets:
            texts = {rdata.to_text(origin=origin, relativize=False) for rdata in rdataset}
            result[(name, dns.rdatatype.to_text(rdataset.rdtype))] = RRset(
                rdataset.ttl, tuple(sorted(texts))
            )
    return result


@dataclass(frozen=True, slots=True)
class Change:
    """One record set to change: ``old`` None means it is new, ``new`` None that it goes."""

    name: str
    type: str
    old: RRset | None
    new: RRset | None

    @property
    def key(self) -> RRsetKey:
        return (self.name, self.type)

    def describe(self) -> list[str]:
        """Human-readable lines: ``+ web1.example. 300 A 10.0.0.1`` / ``- ...``."""
        lines = []
        old = set(self.old.rdatas) if self.old else set()
        new = set(self.new.rdatas) if self.new else set()
        ttl_changed = self.old is not None and self.new is not None and self.old.ttl != self.new.ttl
        for text in sorted(old - new if not ttl_changed else old):
            assert self.old is not None
            lines.append(f"- {self.name} {self.old.ttl} {self.type} {text}")
        for text in sorted(new - old if not ttl_changed else new):
            assert self.new is not None
            lines.append(f"+ {self.name} {self.new.ttl} {self.type} {text}")
        return lines


def diff_rrsets(old: Mapping[RRsetKey, RRset], new: Mapping[RRsetKey, RRset]) -> list[Change]:
    """What turns ``old`` into ``new``, one ``Change`` per record set that differs, sorted by
    owner and type with the SOA last (an update sends the new serial after the data)."""
    changes = [
        Change(key[0], key[1], old.get(key), new.get(key))
        for key in set(old) | set(new)
        if old.get(key) != new.get(key)
    ]
    changes.sort(key=lambda c: (c.type == "SOA", _name_order(c.name), c.type))
    return changes


def _name_order(name: str) -> tuple[str, ...]:
    return tuple(reversed(dns.name.from_text(name).to_text().lower().split(".")))


def apply_changes(rrsets: Mapping[RRsetKey, RRset], changes: Iterable[Change]) -> RRsets:
    """``rrsets`` with ``changes`` made (what the server holds once it took them)."""
    result = dict(rrsets)
    for change in changes:
        if change.new is None:
            result.pop(change.key, None)
        else:
            result[change.key] = change.new
    return result
