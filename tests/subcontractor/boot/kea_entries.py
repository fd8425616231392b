"""Boot data and settings for the Kea backend's tests (``test_kea_config.py``,
``test_kea.py``, ``test_kea_service.py``): entries as Contractor's boot data answer holds
them, read through ``BootData.from_json`` as the agent reads them."""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from subcontractor.boot.backend import BootData, ServeSettings
from tests.rigs.netns import free_network, require_namespaces

NET = ipaddress.IPv4Network("198.18.40.0/24")
MAC1, MAC2, MAC3 = "52:54:00:4b:00:01", "52:54:00:4b:00:02", "52:54:00:4b:00:03"


def reservation(
    net: ipaddress.IPv4Network, number: int, mac: str, offset: int, **extra: Any
) -> dict[str, Any]:
    entry = {
        "id": f"reservation:{number}",
        "mac": mac,
        "address": str(net.network_address + offset),
        "subnet": str(net),
        "prefix": net.prefixlen,
        "netmask": str(net.netmask),
        "gateway": str(net.network_address + 1),
        "hostname": f"web{number}",
        "domain": "dc1.example.com",
        "dns_servers": ["198.18.0.53", "198.18.0.54"],
        "dns_search": ["example.com", "dc1.example.com"],
        "config_uuid": f"5b0c0000-0000-0000-0000-00000000000{number}",
        "boot_file": None,
        "boot_script": f"/boot/5b0c0000-0000-0000-0000-00000000000{number}",
    }
    entry.update(extra)
    return entry


def pool(net: ipaddress.IPv4Network, number: int, first: int, last: int) -> dict[str, Any]:
    return {
        "id": f"pool:{number}",
        "start": str(net.network_address + first),
        "end": str(net.network_address + last),
        "subnet": str(net),
        "prefix": net.prefixlen,
        "netmask": str(net.netmask),
        "gateway": str(net.network_address + 1),
        "domain": "dc1.example.com",
        "dns_servers": ["198.18.0.53", "198.18.0.54"],
        "dns_search": ["example.com", "dc1.example.com"],
    }


def boot_data(
    reservations: list[dict[str, Any]], pools: list[dict[str, Any]], version: int = 1
) -> BootData:
    return BootData.from_json(
        {"site": "dc1", "version": version, "reservations": reservations, "pools": pools}
    )


def settings_for(state_dir: Path, **changes: Any) -> ServeSettings:
    settings = ServeSettings(
        interfaces=("br0",),
        server_address=str(NET.network_address + 2),
        http_base="http://198.18.40.1:8067",
        tftp_root=Path("/usr/lib/ipxe"),
        state_dir=state_dir,
        proxy=False,
        lease_seconds=600,
    )
    return replace(settings, **changes)


@contextmanager
def short_directory() -> Iterator[Path]:
    """A directory short enough for a unix socket path under it (pytest's are often not)."""
    path = Path(tempfile.mkdtemp(prefix="kea-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def network_in_198_18() -> ipaddress.IPv4Network:
    """A free /24 of 198.18.0.0/16 for a namespace (the rig's own choice may fall in
    198.19.0.0/16); skips where namespaces cannot be made."""
    require_namespaces()  # (free_network reads the host's routes)
    for _ in range(100):
        network = free_network()
        if network.subnet_of(ipaddress.IPv4Network("198.18.0.0/16")):
            return network
    raise AssertionError("no free /24 in 198.18.0.0/16 on this host")
