"""kea-dhcp4's configuration for the boot data (the Kea backend, ``subcontractor.boot.kea``).

``render_config`` answers the whole ``{"Dhcp4": ...}`` document:

* one ``subnet4`` per subnet of the pools and reservations, its ``id`` derived from the
  network (so it stays the same from one version of the data to the next: Kea keys its
  leases by subnet id), its ``pools``, the options 3 (routers), 6 (DNS servers),
  15 (domain name) and 119 (domain search) of its first entry, and its host
  ``reservations`` (MAC → address, hostname; a reservation whose options differ from its
  subnet's carries its own; a reservation's ``boot_file`` goes to its firmware and to its
  iPXE alike, as in the dnsmasq backend: Kea lets a reservation's ``boot-file-name`` win
  over the classes');
* three client classes, evaluated in order: ``contractor-ipxe`` (iPXE's own requests: user
  class "iPXE", option 77, or iPXE's option 175) gets the HTTP chain URL; the others are
  PXE firmware, told to load iPXE over TFTP from ``server_address`` by option 93
  (``contractor-uefi``: 6, 7, 9 → ``uefi_boot_file``; ``contractor-bios``: the rest →
  ``undionly.kpxe``);
* a unix control socket and a memfile lease database (``persist``, so leases outlive the
  process), both in the backend's directory, and a log file there.

Everything rendered comes from ``BootData`` (checked by ``BootData.from_json``) and
``ServeSettings``; what Kea would refuse that those checks cannot see (two reservations of
one address, overlapping subnets, a boot file longer than the 128 bytes of the DHCP
``file`` field) is refused here with a ``ValueError`` naming the entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subcontractor.boot.backend import BIOS_BOOT_FILE, BootData, Pool, Reservation, ServeSettings

__all__ = [
    "BIOS_CLASS",
    "IPXE_CLASS",
    "UEFI_ARCHITECTURES",
    "UEFI_CLASS",
    "KeaPaths",
    "chain_url",
    "render_config",
    "subnet_id",
]

# option 93 (client system architecture, RFC 4578): 6 IA32 UEFI, 7 and 9 x86-64 UEFI
UEFI_ARCHITECTURES = (6, 7, 9)
IPXE_CLASS = "contractor-ipxe"
UEFI_CLASS = "contractor-uefi"
BIOS_CLASS = "contractor-bios"
FILE_FIELD = 128  # bytes of the BOOTP "file" field Kea fills from boot-file-name
# Kea's subnet ids: 0 means "global", 2**32 - 1 "unused"
_SUBNET_ID_MAX = 2**32 - 2


@dataclass(frozen=True)
class KeaPaths:
    """Where kea-dhcp4 keeps its files (all in one directory of the backend)."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "kea-dhcp4.json"

    @property
    def socket(self) -> Path:
        return self.directory / "kea4.sock"

    @property
    def leases(self) -> Path:
        return self.directory / "leases4.csv"

    @property
    def log(self) -> Path:
        return self.directory / "kea-dhcp4.log"


def subnet_id(subnet: str) -> int:
    """Kea's id of ``subnet``: its network address as a number (1..2**32-2), the same for
    the same network whatever else changes."""
    number = int(ipaddress.IPv4Network(subnet).network_address)
    return min(max(number, 1), _SUBNET_ID_MAX)


def chain_url(settings: ServeSettings) -> str:
    """What iPXE is told to chain to: the boot endpoint, naming its MAC."""
    return f"{settings.http_base}/ipxe?mac=${{net0/mac}}"


@dataclass(frozen=True)
class _Options:
    gateway: str | None
    domain: str | None
    dns_servers: tuple[str, ...]
    dns_search: tuple[str, ...]

    @classmethod
    def of(cls, entry: Reservation | Pool) -> _Options:
        return cls(entry.gateway, entry.domain, entry.dns_servers, entry.dns_search)

    def option_data(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = []
        if self.gateway:
            data.append({"name": "routers", "code": 3, "data": self.gateway})
        if self.dns_servers:
            servers = ", ".join(self.dns_servers)
            data.append({"name": "domain-name-servers", "code": 6, "data": servers})
        if self.domain:
            data.append({"name": "domain-name", "code": 15, "data": self.domain})
        if self.dns_search:
            search = ", ".join(self.dns_search)
            data.append({"name": "domain-search", "code": 119, "data": search})
        return data


def _check(data: BootData, settings: ServeSettings) -> None:
    """What Kea refuses that ``BootData.from_json`` does not check, named by entry."""
    if len(chain_url(settings).encode()) > FILE_FIELD:
        raise ValueError(
            f"http_base: {settings.http_base!r} makes an iPXE chain URL longer than the "
            f"{FILE_FIELD} bytes of the DHCP file field"
        )
    if len(settings.uefi_boot_file.encode()) > FILE_FIELD:
        raise ValueError(f"uefi_boot_file: longer than {FILE_FIELD} bytes")
    networks: dict[ipaddress.IPv4Network, str] = {}
    entries: list[tuple[str, Reservation | Pool]] = [
        *((f"pools[{index}]", pool) for index, pool in enumerate(data.pools)),
        *((f"reservations[{index}]", entry) for index, entry in enumerate(data.reservations)),
    ]
    for where, entry in entries:
        network = ipaddress.IPv4Network(entry.subnet)
        if network in networks:
            continue
        for other, first in networks.items():
            if network.overlaps(other):
                raise ValueError(
                    f"{where}.subnet: {network} overlaps {other} of {first}; kea-dhcp4 "
                    "serves each address from one subnet"
                )
        networks[network] = where
    addresses: dict[str, str] = {}
    for index, reservation in enumerate(data.reservations):
        where = f"reservations[{index}]"
        if reservation.address in addresses:
            raise ValueError(
                f"{where}.address: {reservation.address} is also reserved for "
                f"{addresses[reservation.address]}"
            )
        addresses[reservation.address] = f"{where} ({reservation.mac})"
        if reservation.boot_file and len(reservation.boot_file.encode()) > FILE_FIELD:
            raise ValueError(
                f"{where}.boot_file: longer than the {FILE_FIELD} bytes of the DHCP file field"
            )


def _reservation(reservation: Reservation, subnet: _Options, server: str) -> dict[str, Any]:
    host: dict[str, Any] = {
        "hw-address": reservation.mac,
        "ip-address": reservation.address,
        "hostname": reservation.hostname,
    }
    if reservation.boot_file:
        host["boot-file-name"] = reservation.boot_file
        host["next-server"] = server
    own = _Options.of(reservation)
    if own != subnet:
        host["option-data"] = own.option_data()
    return host


def _classes(settings: ServeSettings) -> list[dict[str, Any]]:
    server = settings.server_address
    uefi = " or ".join(f"option[93].hex == 0x{arch:04x}" for arch in UEFI_ARCHITECTURES)
    return [
        {
            "name": IPXE_CLASS,
            "test": "substring(option[77].hex,0,4) == 'iPXE' or option[175].exists",
            "boot-file-name": chain_url(settings),
        },
        {
            "name": UEFI_CLASS,
            "test": f"not member('{IPXE_CLASS}') and ({uefi})",
            "next-server": server,
            "boot-file-name": settings.uefi_boot_file,
        },
        {
            "name": BIOS_CLASS,
            "test": f"not member('{IPXE_CLASS}') and not member('{UEFI_CLASS}')",
            "next-server": server,
            "boot-file-name": BIOS_BOOT_FILE,
        },
    ]


def render_config(
    data: BootData,
    settings: ServeSettings,
    paths: KeaPaths,
    *,
    hooks: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The ``{"Dhcp4": ...}`` configuration serving ``data``; ``hooks``: the hook
    libraries to load (the lease commands, where Kea's package ships them)."""
    _check(data, settings)
    subnets: dict[str, tuple[_Options, list[Pool], list[Reservation]]] = {}
    entries: list[Reservation | Pool] = [*data.pools, *data.reservations]
    for entry in entries:
        subnets.setdefault(entry.subnet, (_Options.of(entry), [], []))
    for pool in data.pools:
        subnets[pool.subnet][1].append(pool)
    for reservation in data.reservations:
        subnets[reservation.subnet][2].append(reservation)
    subnet4 = []
    for subnet, (options, pools, reservations) in subnets.items():
        subnet4.append(
            {
                "id": subnet_id(subnet),
                "subnet": subnet,
                "pools": [{"pool": f"{pool.start} - {pool.end}"} for pool in pools],
                "option-data": options.option_data(),
                "reservations": [
                    _reservation(reservation, options, settings.server_address)
                    for reservation in reservations
                ],
            }
        )
    return {
        "Dhcp4": {
            "interfaces-config": {
                "interfaces": list(settings.interfaces),
                # raw sockets: clients without an address yet, as every booting machine
                "dhcp-socket-type": "raw",
                # an interface that is down, or a socket Kea cannot bind (another DHCP
                # server holds port 67 there), is tried again every 2 s, not left unserved
                "service-sockets-max-retries": 1_000_000,
                "service-sockets-retry-wait-time": 2000,
            },
            "control-socket": {"socket-type": "unix", "socket-name": str(paths.socket)},
            "lease-database": {
                "type": "memfile",
                "persist": True,
                "name": str(paths.leases),
                "lfc-interval": 3600,
            },
            "hooks-libraries": [{"library": str(hook)} for hook in hooks],
            "authoritative": True,
            "valid-lifetime": settings.lease_seconds,
            "calculate-tee-times": True,
            "client-classes": _classes(settings),
            "subnet4": subnet4,
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [
                        {"output": str(paths.log), "maxsize": 10 * 2**20, "maxver": 2}
                    ],
                    "severity": "INFO",
                }
            ],
        }
    }
