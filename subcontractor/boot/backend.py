"""What every DHCP backend of the boot services shares: the boot data as the subcontractor
holds it (``BootData``, read from Contractor's boot data answers, ``docs/boot.md``), the
settings a backend serves with, the ``DhcpBackend`` protocol, and ``make_backend``.

``BootData.from_json`` is the one gate between Contractor's JSON (or the copy on disk) and
the backends: it checks every value's type and form and raises ``ValueError`` naming the
key (``reservations[3].mac``), never another exception, so a backend only ever renders
checked values into its configuration.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "BACKENDS",
    "BootData",
    "DhcpBackend",
    "Lease",
    "Pool",
    "Reservation",
    "ServeSettings",
    "make_backend",
]

BACKENDS = ("dnsmasq", "kea")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# a DNS label run: what goes into a server's configuration file unquoted
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*$")
# Contractor's ids, "reservation:17", "pool:3"
ENTRY_ID = re.compile(r"^[a-z]+:[0-9]{1,19}$")
UUID = re.compile(r"^[0-9a-fA-F-]{1,64}$")
# a boot file: a TFTP path or a URL, no white space, quotes or commas (dnsmasq's separator)
BOOT_FILE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!$&()*+;=%${}-]{1,255}$")
SCRIPT_PATH = re.compile(r"^/[A-Za-z0-9._~/?&=%:-]{0,255}$")
BIOS_BOOT_FILE = "undionly.kpxe"
MAX_LIST = 8  # dns_servers, dns_search: Contractor sends at most so many


@dataclass(frozen=True)
class Reservation:
    """One machine Contractor knows: its provisioning MAC, its address and what it boots."""

    id: str
    mac: str
    address: str
    subnet: str
    prefix: int
    netmask: str
    gateway: str | None
    hostname: str
    domain: str | None
    dns_servers: tuple[str, ...]
    dns_search: tuple[str, ...]
    config_uuid: str
    boot_file: str | None
    boot_script: str


@dataclass(frozen=True)
class Pool:
    """An address range leased to machines with no reservation (discovery)."""

    id: str
    start: str
    end: str
    subnet: str
    prefix: int
    netmask: str
    gateway: str | None
    domain: str | None
    dns_servers: tuple[str, ...]
    dns_search: tuple[str, ...]


class _Reader:
    """Reads one JSON object's keys, each checked, naming ``where.key`` on failure."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where or 'boot data'}: expected an object, got {_kind(raw)}")
        self.raw = raw
        self.where = where

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, *, optional: bool = False) -> object:
        if key not in self.raw:
            if optional:
                return None
            raise ValueError(f"{self.name(key)}: missing")
        return self.raw[key]

    def text(self, key: str, pattern: re.Pattern[str] | None = None, *, limit: int = 255) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ValueError(f"{self.name(key)}: expected a string, got {_kind(value)}")
        if len(value) > limit or (pattern is not None and not pattern.match(value)):
            raise ValueError(f"{self.name(key)}: {value[:80]!r} is not allowed here")
        return value

    def optional_text(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        if self._get(key, optional=True) is None:
            return None
        return self.text(key, pattern)

    def integer(self, key: str, low: int, high: int) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.name(key)}: expected an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"{self.name(key)}: {value} is not in {low}..{high}")
        return value

    def ipv4(self, key: str) -> str:
        value = self.text(key, limit=15)
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{self.name(key)}: {value!r} is not an IPv4 address") from None

    def optional_ipv4(self, key: str) -> str | None:
        if self._get(key, optional=True) is None:
            return None
        return self.ipv4(key)

    def network(self, key: str) -> ipaddress.IPv4Network:
        value = self.text(key, limit=18)
        try:
            return ipaddress.IPv4Network(value)
        except ValueError:
            raise ValueError(f"{self.name(key)}: {value!r} is not an IPv4 network") from None

    def strings(self, key: str, check: re.Pattern[str] | None, ipv4: bool) -> tuple[str, ...]:
        value = self._get(key, optional=True)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ValueError(f"{self.name(key)}: expected a list of at most {MAX_LIST} strings")
        out = []
        for index, item in enumerate(value):
            where = f"{self.name(key)}[{index}]"
            if not isinstance(item, str) or len(item) > 253:
                raise ValueError(f"{where}: expected a string, got {_kind(item)}")
            if ipv4:
                try:
                    item = str(ipaddress.IPv4Address(item))
                except ValueError:
                    raise ValueError(f"{where}: {item[:80]!r} is not an IPv4 address") from None
            elif check is not None and not check.match(item):
                raise ValueError(f"{where}: {item[:80]!r} is not allowed here")
            out.append(item)
        return tuple(out)

    def subnet(self) -> tuple[str, int, str, ipaddress.IPv4Network]:
        network = self.network("subnet")
        prefix = self.integer("prefix", 0, 32)
        netmask = self.ipv4("netmask")
        if prefix != network.prefixlen:
            raise ValueError(f"{self.name('prefix')}: {prefix} is not the subnet's prefix")
        if netmask != str(network.netmask):
            raise ValueError(f"{self.name('netmask')}: {netmask} is not the subnet's netmask")
        return str(network), prefix, netmask, network

    def inside(self, key: str, network: ipaddress.IPv4Network) -> str:
        address = self.ipv4(key)
        if ipaddress.IPv4Address(address) not in network:
            raise ValueError(f"{self.name(key)}: {address} is not in {network}")
        return address


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _entries(raw: Mapping[str, Any], key: str) -> list[object]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, got {_kind(value)}")
    return value


def _reservation(raw: object, where: str) -> Reservation:
    read = _Reader(raw, where)
    subnet, prefix, netmask, network = read.subnet()
    mac = read.text("mac", limit=17).lower().replace("-", ":")
    if not MAC.match(mac):
        raise ValueError(f"{read.name('mac')}: {mac!r} is not a MAC address")
    return Reservation(
        id=read.text("id", ENTRY_ID),
        mac=mac,
        address=read.inside("address", network),
        subnet=subnet,
        prefix=prefix,
        netmask=netmask,
        gateway=read.optional_ipv4("gateway"),
        hostname=read.text("hostname", HOSTNAME),
        domain=read.optional_text("domain", HOSTNAME),
        dns_servers=read.strings("dns_servers", None, ipv4=True),
        dns_search=read.strings("dns_search", HOSTNAME, ipv4=False),
        config_uuid=read.text("config_uuid", UUID),
        boot_file=read.optional_text("boot_file", BOOT_FILE),
        boot_script=read.text("boot_script", SCRIPT_PATH),
    )


def _pool(raw: object, where: str) -> Pool:
    read = _Reader(raw, where)
    subnet, prefix, netmask, network = read.subnet()
    start = read.inside("start", network)
    end = read.inside("end", network)
    if ipaddress.IPv4Address(end) < ipaddress.IPv4Address(start):
        raise ValueError(f"{read.name('end')}: {end} is before start {start}")
    return Pool(
        id=read.text("id", ENTRY_ID),
        start=start,
        end=end,
        subnet=subnet,
        prefix=prefix,
        netmask=netmask,
        gateway=read.optional_ipv4("gateway"),
        domain=read.optional_text("domain", HOSTNAME),
        dns_servers=read.strings("dns_servers", None, ipv4=True),
        dns_search=read.strings("dns_search", HOSTNAME, ipv4=False),
    )


@dataclass(frozen=True)
class BootData:
    """A site's reservations and pools at one version of Contractor's boot data."""

    site: str
    version: int
    reservations: tuple[Reservation, ...]
    pools: tuple[Pool, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BootData:
        """Checked boot data from JSON as Contractor answers it (keys beyond the ones held
        are ignored); ``ValueError`` naming the key for anything malformed."""
        read = _Reader(data, "")
        site = read.text("site", limit=40)
        version = read.integer("version", 0, 2**63 - 1)
        reservations = tuple(
            _reservation(raw, f"reservations[{index}]")
            for index, raw in enumerate(_entries(data, "reservations"))
        )
        pools = tuple(
            _pool(raw, f"pools[{index}]") for index, raw in enumerate(_entries(data, "pools"))
        )
        _unique(reservations, pools)
        return cls(site=site, version=version, reservations=reservations, pools=pools)

    def to_json(self) -> dict[str, Any]:
        """JSON that ``from_json`` reads back to an equal ``BootData``."""
        return {
            "site": self.site,
            "version": self.version,
            "reservations": [_plain(entry) for entry in self.reservations],
            "pools": [_plain(entry) for entry in self.pools],
        }

    def reservation_for(self, mac: str) -> Reservation | None:
        """The reservation of ``mac`` (any case, ``:`` or ``-``), or None."""
        wanted = mac.lower().replace("-", ":")
        for reservation in self.reservations:
            if reservation.mac == wanted:
                return reservation
        return None

    def reservation_by_uuid(self, config_uuid: str) -> Reservation | None:
        for reservation in self.reservations:
            if reservation.config_uuid == config_uuid:
                return reservation
        return None


def _unique(reservations: Sequence[Reservation], pools: Sequence[Pool]) -> None:
    seen: dict[str, str] = {}
    for index, reservation in enumerate(reservations):
        where = f"reservations[{index}]"
        for key, value in (("id", reservation.id), ("mac", reservation.mac)):
            if f"{key}={value}" in seen:
                raise ValueError(f"{where}.{key}: {value} is also {seen[f'{key}={value}']}'s")
            seen[f"{key}={value}"] = where
    for index, pool in enumerate(pools):
        if f"id={pool.id}" in seen:
            raise ValueError(f"pools[{index}].id: {pool.id} is also {seen[f'id={pool.id}']}'s")
        seen[f"id={pool.id}"] = f"pools[{index}]"


def _plain(entry: Reservation | Pool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(entry).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True)
class Lease:
    """A lease the DHCP server holds (``expires`` None: never)."""

    mac: str
    address: str
    expires: datetime | None
    hostname: str | None


@dataclass(frozen=True)
class ServeSettings:
    """What every backend needs besides the data."""

    interfaces: tuple[str, ...]
    server_address: str  # this host's address on the provisioning network
    http_base: str  # e.g. "http://198.18.7.1:8067": the base of iPXE's chain URL
    tftp_root: Path  # holds undionly.kpxe, ipxe.efi, snponly.efi
    state_dir: Path
    proxy: bool  # proxy DHCP beside another DHCP server, which gives the addresses
    lease_seconds: int
    # the iPXE x86-64 UEFI firmware gets (snponly.efi uses the firmware's own NIC driver;
    # ipxe.efi carries iPXE's drivers)
    uefi_boot_file: str = "snponly.efi"


class DhcpBackend(Protocol):
    """A DHCP (and TFTP) server serving ``BootData``."""

    name: str

    async def start(self, data: BootData) -> None:
        """Launch the server for ``data`` and supervise it (restarted when it dies)."""

    async def apply(self, data: BootData) -> None:
        """Make ``data``'s reservations and pools live, dropping no lease."""

    async def leases(self) -> list[Lease]:
        """The leases the server holds now."""

    def alive(self) -> bool:
        """The server runs now."""

    async def stop(self) -> None:
        """Stop every process the backend started."""


def make_backend(kind: str, settings: ServeSettings) -> DhcpBackend:
    """The backend ``kind`` ("dnsmasq" or "kea") serving with ``settings``."""
    if kind == "dnsmasq":
        from subcontractor.boot.dnsmasq import DnsmasqBackend

        return DnsmasqBackend(settings)
    if kind == "kea":
        # written apart; imported only when asked for
        from subcontractor.boot import kea  # type: ignore[attr-defined,unused-ignore]

        backend: DhcpBackend = kea.KeaBackend(settings)
        return backend
    raise ValueError(f"backend: {kind!r} is not one of {', '.join(BACKENDS)}")
