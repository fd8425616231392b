"""Zone data (frozen dataclasses), its checks, its content hash and its text through dnspython.

Owner names and name-valued RDATA are relative to the zone origin unless they end with a
dot; ``@`` is the origin itself. The text is deterministic: names in DNSSEC order (dnspython
sorts them), record types in a fixed order per name, and several records of one type in
canonical RDATA order, whatever order the records were given in.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA

from bindgen import plain as plain_rdata
from bindgen.plain import PLAIN_NAME, real

__all__ = [
    "FORMAT_VERSION",
    "RECORD_TYPES",
    "SOA",
    "Problem",
    "Record",
    "ZoneData",
    "ZoneError",
    "check_zone",
    "content_hash",
    "render_zone",
    "zone_problems",
]

# Part of every content hash: bump it when the rendered text changes for the same data, so
# every zone gets a new serial and is rewritten once.
FORMAT_VERSION = 1

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT")

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_NS = dns.rdatatype.NS
_PTR = dns.rdatatype.PTR
_SOA = dns.rdatatype.SOA
_ADDRESS_TYPES = frozenset((_A, _AAAA))
_TYPE_CODES = {name: dns.rdatatype.RdataType.make(name) for name in RECORD_TYPES}
_TYPE_ORDER = {
    code: index for index, code in enumerate(dict.fromkeys([_SOA, _NS, *_TYPE_CODES.values()]))
}
_TYPE_TEXT = {code: dns.rdatatype.to_text(code) for code in _TYPE_ORDER}
_NAME_TARGET = {
    _CNAME: dns.rdtypes.ANY.CNAME.CNAME,
    _NS: dns.rdtypes.ANY.NS.NS,
    _PTR: dns.rdtypes.ANY.PTR.PTR,
}
# Labels of a parsed name that need no escaping (bindgen.plain.PLAIN_NAME, as bytes).
_PLAIN_BYTES = re.compile(rb"[A-Za-z0-9_*-]+(?:\.[A-Za-z0-9_-]+)*")
_MAX_TTL = 2**31 - 1
_plain = plain_rdata.plain  # the RDATA short cut (``bindgen.plain``)


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: ``name`` (relative, ``@`` or absolute), ``type`` (one of
    ``RECORD_TYPES``), ``data`` in presentation format (``"10.0.0.1"``, ``"10 mail"``,
    ``"0 5 80 web"``, ``'"v=spf1 -all"'``) and an optional TTL (default: the zone's)."""

    name: str
    type: str
    data: str
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class SOA:
    """The SOA fields except the serial, which is not content (``render_zone`` takes it)."""

    mname: str
    rname: str
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True, slots=True)
class ZoneData:
    """A whole zone: origin, default TTL, SOA, the apex name servers and the other records."""

    origin: str
    soa: SOA
    nameservers: tuple[str, ...]
    records: tuple[Record, ...] = ()
    ttl: int = 3600


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a zone cannot be made: a stable ``code`` (``CNAME_AND_OTHER_DATA``...), the
    ``message`` for people, and the fully qualified owner of the ``record`` at fault, if one
    is (``w.example.``; for a name server without an address, the server's name)."""

    code: str
    message: str
    record: str | None = None

    def __str__(self) -> str:
        return self.message


class ZoneError(ValueError):
    """The zone data cannot make a valid zone: ``details`` lists each reason as a
    ``Problem``, ``problems`` their messages."""

    def __init__(self, origin: str, details: Sequence[Problem | str]) -> None:
        self.origin = origin
        self.details = [
            problem if isinstance(problem, Problem) else Problem("INVALID", problem)
            for problem in details
        ]
        self.problems = [problem.message for problem in self.details]
        super().__init__(f"zone {origin}: " + "; ".join(self.problems))

    def __reduce__(self) -> tuple[type[ZoneError], tuple[str, Sequence[Problem | str]]]:
        return (ZoneError, (self.origin, self.details))  # survives pickling (worker processes)


def content_hash(zone: ZoneData) -> str:
    """SHA-256 over everything that ends up in the zone text except the serial.

    Records are hashed in sorted order, so the same records in another order hash the same;
    a change of any record, TTL, SOA field or name server changes the hash.
    """
    soa = zone.soa
    digest = hashlib.sha256()
    head = (
        f"bindgen {FORMAT_VERSION}\n{zone.origin}\n{zone.ttl}\n{soa.mname} {soa.rname} "
        f"{soa.refresh} {soa.retry} {soa.expire} {soa.minimum}\n" + " ".join(zone.nameservers)
    )
    digest.update(head.encode())
    lines = sorted({f"\n{r.name}\t{r.type}\t{r.ttl}\t{r.data}" for r in zone.records})
    digest.update("".join(lines).encode())
    return digest.hexdigest()


def check_zone(zone: ZoneData) -> list[str]:
    """Every reason the data cannot make a valid zone (empty when it can)."""
    return [problem.message for problem in zone_problems(zone)]


def zone_problems(zone: ZoneData) -> list[Problem]:
    """``check_zone`` with each reason's code and record (``Problem``)."""
    with _paused_gc():
        return _build(zone, 0)[2]


def render_zone(zone: ZoneData, serial: int, *, header: str | None = None) -> str:
    """The zone file text, with ``serial`` in the SOA; ``header`` becomes leading ``;``
    comment lines. Raises ZoneError naming every problem.

    Every name and RDATA is parsed and printed by dnspython; the lines are those of
    ``dns.zone.Zone.to_text(relativize=True, want_origin=True)`` (names in DNSSEC order),
    assembled here without building the zone's node tree, which is most of dnspython's time.
    """
    if not 0 <= serial < 2**32:
        raise ZoneError(
            zone.origin, [Problem("BAD_SERIAL", f"serial {serial} is not a 32-bit unsigned number")]
        )
    with _paused_gc():
        # (in a function of its own: the records' groups are freed before the collector
        # resumes, so its first collection does not scan them)
        return _render(zone, serial, header)


def _render(zone: ZoneData, serial: int, header: str | None) -> str:
    origin, groups, problems = _build(zone, serial)
    if problems:
        raise ZoneError(zone.origin, problems)
    lines = [f"; {line}".rstrip() for line in (header or "").splitlines()]
    lines.append(f"$ORIGIN {origin}")
    owners = groups.owners
    append = lines.append
    for key in sorted(groups):  # (its key's order is dnspython's order of names)
        types = groups[key]
        owner = owners[key]
        text = owner if isinstance(owner, str) else _owner_text(owner)
        for rdtype in sorted(types, key=_TYPE_ORDER.__getitem__) if len(types) > 1 else types:
            entries = types[rdtype]
            if len(entries) == 1:
                rdata, ttl = entries[0]
                rdtext = rdata.to_text(origin=origin, relativize=True)
                append(f"{text} {ttl} IN {_TYPE_TEXT[rdtype]} {rdtext}")
                continue
            # A record set has one TTL (the lowest given) and no duplicates.
            ttl = min(entry_ttl for _rdata, entry_ttl in entries)
            prefix = f"{text} {ttl} IN {_TYPE_TEXT[rdtype]} "
            unique = dict.fromkeys(real(rdata) for rdata, _ttl in entries)
            for rdata in sorted(unique):
                lines.append(prefix + rdata.to_text(origin=origin, relativize=True))
    lines.append("")
    return "\n".join(lines)


@contextmanager
def _paused_gc() -> Iterator[None]:
    """Building a zone allocates a few objects per record and none in cycles; the cyclic
    collector would otherwise rescan the growing heap many times (a third of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- building ---------------------------------------------------------------------------


def _absolute(text: str, origin: dns.name.Name) -> dns.name.Name:
    if text == "@":
        return origin
    if PLAIN_NAME.fullmatch(text) and ".." not in text:
        if text.endswith("."):
            return dns.name.Name([*text[:-1].encode().split(b"."), b""])
        return dns.name.Name(text.encode().split(b".") + list(origin.labels))
    return dns.name.from_text(text, origin)


def _owner_text(owner: dns.name.Name) -> str:
    """A relative owner name as dnspython prints it; labels of plain characters need no
    escaping, so they are joined directly (most of the names of a big zone)."""
    if not owner.labels:
        return "@"
    joined = b".".join(owner.labels)
    if _PLAIN_BYTES.fullmatch(joined) and joined.count(b".") == len(owner.labels) - 1:
        return joined.decode()
    return owner.to_text()


# An owner name relative to the origin, as a key: its labels lowercased, the last first.
# Two keys are equal exactly when dnspython's names are (which compare their labels
# lowercased), and sort as those names do (DNSSEC order).
_Key = tuple[bytes, ...]


def _key(name: dns.name.Name) -> _Key:
    return tuple(label.lower() for label in reversed(name.labels))


def _plain_key(text: str) -> _Key | None:
    """The key of a plain relative name (most of the owners of a big zone), made without
    dnspython's name; None when a label might be too long (dnspython's name checks it)."""
    return None if len(text) > 63 else tuple(reversed(text.lower().encode().split(b".")))


def _owner(text: str, origin: dns.name.Name) -> tuple[_Key | None, dns.name.Name | str]:
    """An owner name relative to ``origin`` (``@``: empty): its key and the name as first
    given (a plain name's text, else dnspython's name); no key when it is outside the zone
    (the absolute name)."""
    if text != "@" and not text.endswith(".") and PLAIN_NAME.fullmatch(text) and ".." not in text:
        key = _plain_key(text)
        if key is not None:
            return key, text  # (printed as given: its labels need no escaping)
        relative = dns.name.Name(text.encode().split(b"."))
        return _key(relative), relative
    name = _absolute(text, origin)
    if name.is_subdomain(origin):
        relative = name.relativize(origin)
        return _key(relative), relative
    return None, name


def _rdata(rdtype: dns.rdatatype.RdataType, data: str, origin: dns.name.Name) -> dns.rdata.Rdata:
    if rdtype == _A:
        return dns.rdtypes.IN.A.A(_IN, _A, data)  # type: ignore[no-untyped-call]
    if rdtype == _AAAA:
        return dns.rdtypes.IN.AAAA.AAAA(_IN, _AAAA, data)  # type: ignore[no-untyped-call]
    target = _NAME_TARGET.get(rdtype)
    if target is not None:
        return target(_IN, rdtype, _absolute(data.strip(), origin))  # type: ignore[no-untyped-call]
    rdata: dns.rdata.Rdata = dns.rdata.from_text(_IN, rdtype, data, origin=origin, relativize=False)
    return rdata


def _check_ttl(ttl: int, what: str, problems: list[Problem], record: str | None) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= _MAX_TTL:
        message = f"{what}: TTL {ttl!r} is not a number from 0 to {_MAX_TTL}"
        problems.append(Problem("BAD_TTL", message, record))


class Grouped(dict[_Key, dict[dns.rdatatype.RdataType, list[tuple[dns.rdata.Rdata, int]]]]):
    """The zone's records by owner (its ``_Key``) and type; ``owners`` has each owner as
    first given (as dnspython keeps the first of equal names it is given)."""

    def __init__(self) -> None:
        super().__init__()
        self.owners: dict[_Key, dns.name.Name | str] = {}

    def name(self, key: _Key) -> dns.name.Name:
        """The owner as dnspython's name, relative to the origin."""
        owner = self.owners[key]
        return dns.name.Name(owner.encode().split(b".")) if isinstance(owner, str) else owner

    def text(self, key: _Key) -> str:
        """The owner as dnspython prints it relative to the origin."""
        owner = self.owners[key]
        return owner if isinstance(owner, str) else _owner_text(owner)


def _build(zone: ZoneData, serial: int) -> tuple[dns.name.Name, Grouped, list[Problem]]:
    """The zone's records parsed by dnspython, grouped by owner (relative) and type, and
    every problem found."""
    problems: list[Problem] = []
    groups = Grouped()
    try:
        origin = dns.name.from_text(zone.origin.rstrip(".") + ".")
    except dns.exception.DNSException as error:
        return dns.name.root, groups, [Problem("BAD_ORIGIN", f"origin {zone.origin!r}: {error}")]
    apex = origin.to_text()
    _check_ttl(zone.ttl, "zone", problems, None)

    def add(
        key: _Key,
        owner: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType,
        rdata: dns.rdata.Rdata,
        ttl: int,
    ) -> None:
        types = groups.get(key)
        if types is None:
            types = groups[key] = {}
            groups.owners[key] = owner
        types.setdefault(rdtype, []).append((rdata, ttl))

    soa = zone.soa
    try:
        add(
            (),
            dns.name.empty,
            _SOA,
            dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
                _IN,
                _SOA,
                _absolute(soa.mname, origin),
                _absolute(soa.rname, origin),
                serial,
                soa.refresh,
                soa.retry,
                soa.expire,
                soa.minimum,
            ),
            zone.ttl,
        )
    except (dns.exception.DNSException, ValueError, TypeError) as error:
        problems.append(Problem("BAD_SOA", f"SOA: {error}", apex))
    if not zone.nameservers:
        message = "no name servers: a zone needs at least one NS record at its apex"
        problems.append(Problem("NO_NAMESERVERS", message, apex))
    for server in zone.nameservers:
        try:
            add((), dns.name.empty, _NS, _rdata(_NS, server, origin), zone.ttl)
        except (dns.exception.DNSException, ValueError) as error:
            message = f"name server {server!r}: {error}"
            problems.append(Problem("BAD_NAMESERVER", message, apex))

    owners: dict[str, tuple[_Key | None, dns.name.Name | str]] = {}
    plain_name = PLAIN_NAME.fullmatch
    plain_key, shortcut = _plain_key, _plain  # (read here: a test turns the short cuts off)
    zone_ttl = zone.ttl
    for record in zone.records:
        name, data = record.name, record.data
        rdtype = _TYPE_CODES.get(record.type)
        if rdtype is None:
            message = f"{_what(record)}: type must be one of {', '.join(RECORD_TYPES)}"
            problems.append(Problem("BAD_RECORD", message, _shown(name, origin)))
            continue
        ttl = zone_ttl if record.ttl is None else record.ttl
        if ttl is not zone_ttl:
            _check_ttl(ttl, _what(record), problems, _shown(name, origin))
        try:
            found = owners.get(name)
            if found is None:
                # (``_owner``'s common case inline: a plain relative name)
                key = None
                if name != "@" and not name.endswith(".") and ".." not in name:
                    key = plain_key(name) if plain_name(name) else None
                found = owners[name] = (key, name) if key is not None else _owner(name, origin)
            # (a Plain prints and orders as dnspython's RDATA: see its docstring)
            fast = shortcut(rdtype, data, origin, apex)
            rdata: Any = _rdata(rdtype, data, origin) if fast is None else fast
        except (dns.exception.DNSException, ValueError) as error:
            message = f"{_what(record)}: {error}"
            problems.append(Problem("BAD_RECORD", message, _shown(name, origin)))
            continue
        key, owner = found
        if key is None:
            message = f"{_what(record)}: {owner} is outside the zone {origin}"
            problems.append(Problem("OUTSIDE_ZONE", message, str(owner)))
            continue
        types = groups.get(key)
        if types is None:
            types = groups[key] = {rdtype: [(rdata, ttl)]}
            groups.owners[key] = owner
            continue
        entries = types.get(rdtype)
        if entries is None:
            types[rdtype] = [(rdata, ttl)]
        else:
            entries.append((rdata, ttl))

    problems.extend(_structure_problems(groups, origin))
    return origin, groups, problems


def _what(record: Record) -> str:
    return f"record {record.name} {record.type} {record.data}"


def _shown(text: str, origin: dns.name.Name) -> str:
    """A record's owner as given, fully qualified (as given when it does not parse)."""
    try:
        return _absolute(text, origin).to_text()
    except (dns.exception.DNSException, ValueError):
        return text


def _structure_problems(groups: Grouped, origin: dns.name.Name) -> list[Problem]:
    """CNAMEs beside other data, data hidden below a delegation, name servers without
    addresses: each is refused by BIND or silently wrong, so each is named here."""
    problems: list[Problem] = []

    def problem(code: str, key: _Key, message: str) -> None:
        problems.append(Problem(code, f"{show(key)}: {message}", show(key)))

    def show(key: _Key) -> str:
        return groups.name(key).derelativize(origin).to_text()

    cuts = {key for key, types in groups.items() if key and _NS in types}
    glue_names: set[_Key] = set()
    for cut in ((), *cuts):
        for rdata, _ttl in groups.get(cut, {}).get(_NS, []):
            target = rdata.target  # type: ignore[attr-defined]
            if target.is_subdomain(origin):
                glue_names.add(_key(target.relativize(origin)))
    for key, types in groups.items():
        if _CNAME in types:
            if not key:
                problem("CNAME_AT_APEX", key, "a CNAME cannot be at the zone apex")
            elif len(types) > 1:
                others = ", ".join(dns.rdatatype.to_text(t) for t in types if t != _CNAME)
                problem("CNAME_AND_OTHER_DATA", key, f"CNAME and other data ({others}) at one name")
            if len({rdata for rdata, _ in types[_CNAME]}) > 1:
                problem("CNAME_TARGETS", key, "more than one CNAME target")
        if not cuts or not key:
            continue
        if key in cuts:
            hidden = [dns.rdatatype.to_text(t) for t in types if t != _NS]
            if hidden:
                problem(
                    "DATA_AT_DELEGATION",
                    key,
                    f"{', '.join(hidden)} at a delegation point (only NS records may be there)",
                )
            continue
        above = _cut_above(key, cuts)
        if above is None:
            continue
        if key in glue_names and set(types) <= _ADDRESS_TYPES:
            continue
        names = ", ".join(dns.rdatatype.to_text(t) for t in types)
        # (the delegation spelled as in this owner's name)
        spelled = dns.name.Name(groups.name(key).labels[len(key) - len(above) :])
        shown = spelled.derelativize(origin).to_text()
        problem("DATA_BELOW_DELEGATION", key, f"{names} below the delegation {shown} is not served")

    servers: list[tuple[_Key, dns.rdata.Rdata]] = [
        ((), rdata) for rdata, _ in groups.get((), {}).get(_NS, [])
    ]
    servers += [(cut, rdata) for cut in sorted(cuts) for rdata, _ in groups[cut][_NS]]
    for where, rdata in servers:
        target = rdata.target  # type: ignore[attr-defined]
        if not target.is_subdomain(origin):
            continue
        relative = _key(target.relativize(origin))
        if not _ADDRESS_TYPES & set(groups.get(relative, {})):
            kind = "glue " if _cut_above(relative, cuts) is not None or relative in cuts else ""
            message = (
                f"name server {target} (NS of {show(where)}) is inside the zone but has no "
                f"{kind}A or AAAA record"
            )
            problems.append(Problem("NAMESERVER_WITHOUT_ADDRESS", message, target.to_text()))
    return problems


def _cut_above(key: _Key, cuts: set[_Key]) -> _Key | None:
    """The delegation point strictly above the owner ``key``, if any (the nearest)."""
    for length in range(len(key) - 1, 0, -1):
        if key[:length] in cuts:
            return key[:length]
    return None
