"""Which reverse zones hold the PTR records of a set of address blocks, and their names.

* IPv4 blocks of /24 or shorter get octet-aligned zones: the block's prefix is rounded up to
  the next multiple of 8, so a /22 gives four ``c.b.a.in-addr.arpa`` zones and a /16 one
  ``b.a.in-addr.arpa`` zone. Nothing outside the block is ever claimed.
* IPv4 blocks longer than /24 use RFC 2317 classless delegation: the block gets a zone named
  ``<first>-<prefix>.c.b.a.in-addr.arpa`` holding its PTR records, and the enclosing /24 zone
  holds, for every address of the block, a CNAME ``<last octet>`` →
  ``<last octet>.<first>-<prefix>.c.b.a.in-addr.arpa.`` plus the NS delegation. A longer
  block inside an octet-aligned zone or inside another classless block needs no zone of its
  own: its addresses go to the enclosing zone.
* IPv6 blocks get nibble zones: the prefix is rounded up to a multiple of 4.

Zones may nest (blocks of different sites may overlap); a PTR record always goes to the most
specific zone, and ``parent_of`` names the zone that must delegate to a nested one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from bindgen.zone import Record

__all__ = [
    "IPAddress",
    "IPNetwork",
    "ReversePlan",
    "ReverseZone",
    "plan_reverse_zones",
    "reverse_zone_name",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALIGNED = "aligned"
CLASSLESS = "classless"
CLASSLESS_PARENT = "classless-parent"

_Key = tuple[int, int, int]  # (version, prefix, network address as an integer)
# The bit shifts of the octets below an aligned IPv4 zone of 0, 1, 2 or 3 octets, last first.
_V4_SHIFTS = {0: (0, 8, 16, 24), 1: (0, 8, 16), 2: (0, 8), 3: (0,), 4: ()}


@dataclass(frozen=True, slots=True)
class ReverseZone:
    """A reverse zone: ``kind`` is ``aligned``, ``classless`` (an RFC 2317 child zone) or
    ``classless-parent`` (a /24 holding only the CNAMEs and delegations of classless
    children); ``sources`` are the blocks that called for it."""

    name: str
    network: IPNetwork
    kind: str
    sources: tuple[IPNetwork, ...]


def reverse_zone_name(network: IPNetwork) -> str:
    """``2.0.192.in-addr.arpa`` for 192.0.2.0/24, ``64-26.2.0.192.in-addr.arpa`` for
    192.0.2.64/26, ``8.b.d.0.1.0.0.2.ip6.arpa`` for 2001:db8::/32.

    IPv4 prefixes must be a multiple of 8 or longer than 24; IPv6 prefixes a multiple of 4.
    """
    prefix = network.prefixlen
    if network.version == 4:
        octets = str(network.network_address).split(".")
        if prefix > 24:
            return f"{octets[3]}-{prefix}." + _suffix(octets[:3][::-1], "in-addr.arpa")
        if prefix % 8:
            raise ValueError(f"{network}: IPv4 reverse zones are octet-aligned or longer than /24")
        return _suffix(octets[: prefix // 8][::-1], "in-addr.arpa")
    if prefix % 4:
        raise ValueError(f"{network}: IPv6 reverse zones are nibble-aligned")
    nibbles = network.network_address.exploded.replace(":", "")
    return _suffix(list(nibbles[: prefix // 4])[::-1], "ip6.arpa")


def _suffix(labels: list[str], tail: str) -> str:
    return ".".join([*labels, tail])


def _key(network: IPNetwork) -> _Key:
    return (network.version, network.prefixlen, int(network.network_address))


def _zone_networks(block: IPNetwork) -> list[IPNetwork]:
    """The aligned zone networks covering ``block`` (a v4 block longer than /24: itself)."""
    step = 8 if block.version == 4 else 4
    if block.version == 4 and block.prefixlen > 24:
        return [block]
    rounded = -(-block.prefixlen // step) * step
    if rounded == block.prefixlen:
        return [block]
    return list(block.subnets(new_prefix=rounded))


class ReversePlan:
    """The reverse zones of a set of blocks (see the module docstring for the rules)."""

    def __init__(self, zones: Iterable[ReverseZone]) -> None:
        self.zones: dict[str, ReverseZone] = {z.name: z for z in sorted(zones, key=_sort_key)}
        self._by_key = {_key(z.network): z for z in self.zones.values()}
        holding = [z for z in self.zones.values() if z.kind != CLASSLESS_PARENT]
        self._holding = {_key(z.network) for z in holding}
        self._holding_prefixes = {
            version: sorted({z.network.prefixlen for z in holding if z.network.version == version})[
                ::-1
            ]
            for version in (4, 6)
        }
        self._all_prefixes = {
            version: sorted(
                {z.network.prefixlen for z in self.zones.values() if z.network.version == version}
            )[::-1]
            for version in (4, 6)
        }

    def zone_for(self, address: IPAddress) -> ReverseZone | None:
        """The most specific zone that holds ``address``'s PTR record (None: not ours)."""
        return self.locate(address.version, int(address))

    def locate(self, version: int, value: int) -> ReverseZone | None:
        """``zone_for`` an address given as its IP version and integer value."""
        bits = 32 if version == 4 else 128
        for prefix in self._holding_prefixes[version]:
            shift = bits - prefix
            key = (version, prefix, value >> shift << shift)
            if key in self._holding:
                return self._by_key[key]
        return None

    def parent_of(self, zone: ReverseZone) -> ReverseZone | None:
        """The most specific other zone of the plan that contains ``zone`` (it delegates)."""
        version, prefix, value = _key(zone.network)
        bits = 32 if version == 4 else 128
        for shorter in self._all_prefixes[version]:
            if shorter >= prefix:
                continue
            shift = bits - shorter
            parent = self._by_key.get((version, shorter, value >> shift << shift))
            if parent is not None:
                return parent
        return None

    @staticmethod
    def ptr_owner(address: IPAddress | str | int, zone: ReverseZone) -> str:
        """``address`` (an address, its text, or its integer value) as a PTR owner name
        relative to ``zone`` (``@`` at the zone apex)."""
        if zone.network.version == 4:
            if isinstance(address, int):
                if zone.kind == CLASSLESS:
                    return str(address & 255)
                shifts = _V4_SHIFTS[zone.network.prefixlen // 8]
                return ".".join([str(address >> shift & 255) for shift in shifts]) or "@"
            octets = str(address).split(".")
            if zone.kind == CLASSLESS:
                return octets[3]
            kept = octets[zone.network.prefixlen // 8 :]
            return ".".join(reversed(kept)) if kept else "@"
        if isinstance(address, int):
            address = ipaddress.IPv6Address(address)
        parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
        pointer = parsed.reverse_pointer
        if len(pointer) == len(zone.name):
            return "@"
        return pointer[: len(pointer) - len(zone.name) - 1]

    def delegation_owner(self, child: ReverseZone, parent: ReverseZone) -> str:
        """The owner name of ``child``'s NS records inside ``parent``."""
        return child.name[: len(child.name) - len(parent.name) - 1]

    @staticmethod
    def classless_cnames(child: ReverseZone) -> list[Record]:
        """The RFC 2317 CNAMEs the enclosing /24 zone holds for a classless ``child``."""
        if child.kind != CLASSLESS:
            return []
        records = []
        for address in child.network:
            last = str(address).rsplit(".", 1)[1]
            records.append(Record(last, "CNAME", f"{last}.{child.name}."))
        return records


def _sort_key(zone: ReverseZone) -> tuple[int, int, int]:
    return _key(zone.network)


def plan_reverse_zones(blocks: Iterable[IPNetwork]) -> ReversePlan:
    """Plan the reverse zones of ``blocks`` (duplicates and overlaps allowed)."""
    aligned: dict[_Key, tuple[IPNetwork, list[IPNetwork]]] = {}
    long_blocks: list[IPNetwork] = []
    for block in blocks:
        if block.version == 4 and block.prefixlen > 24:
            long_blocks.append(block)
            continue
        for network in _zone_networks(block):
            aligned.setdefault(_key(network), (network, []))[1].append(block)

    aligned_prefixes = sorted({key[1] for key in aligned if key[0] == 4})

    def inside_aligned(block: IPNetwork) -> tuple[IPNetwork, list[IPNetwork]] | None:
        value = int(block.network_address)
        for prefix in aligned_prefixes:
            shift = 32 - prefix
            found = aligned.get((4, prefix, value >> shift << shift))
            if found is not None:
                return found
        return None

    classless: dict[_Key, tuple[IPNetwork, list[IPNetwork]]] = {}
    # Shortest first, so a block inside an earlier (larger) one joins it.
    for block in sorted(set(long_blocks), key=lambda b: (b.prefixlen, int(b.network_address))):
        home = inside_aligned(block)
        if home is None:
            home = next(
                (
                    entry
                    for entry in classless.values()
                    if block.subnet_of(entry[0])  # type: ignore[arg-type]
                ),
                None,
            )
        if home is not None:
            home[1].append(block)
            continue
        classless[_key(block)] = (block, [block])
    for block in long_blocks:  # repeated blocks count as sources too
        entry = classless.get(_key(block))
        if entry is not None and block not in entry[1]:
            entry[1].append(block)

    zones = [
        ReverseZone(reverse_zone_name(net), net, ALIGNED, _sources(src))
        for net, src in aligned.values()
    ]
    parents: dict[_Key, tuple[IPNetwork, list[IPNetwork]]] = {}
    for network, sources in classless.values():
        zones.append(ReverseZone(reverse_zone_name(network), network, CLASSLESS, _sources(sources)))
        parent = network.supernet(new_prefix=24)
        parents.setdefault(_key(parent), (parent, []))[1].extend(sources)
    zones.extend(
        ReverseZone(reverse_zone_name(net), net, CLASSLESS_PARENT, _sources(src))
        for net, src in parents.values()
    )
    return ReversePlan(zones)


def _sources(blocks: list[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(
        sorted(set(blocks), key=lambda b: (b.version, int(b.network_address), b.prefixlen))
    )
