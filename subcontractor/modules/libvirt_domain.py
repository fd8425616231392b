"""The domains of the ``libvirt`` module: the shape a ``create`` task asks for, checked;
the domain XML libvirt is given; and what is read back from a domain's XML (its NICs' MACs,
its disks). Plain XML, no connection: ``subcontractor.modules.libvirt`` does the calls.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from subcontractor.module import TaskFailed, require

__all__ = [
    "BOOT",
    "NAME",
    "Shape",
    "Target",
    "disk_paths",
    "domain_xml",
    "interface_map",
    "set_boot_order",
    "volume_name",
]

NAME = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]{0,62}\Z")
DEVICE_NAME = re.compile(r"[A-Za-z0-9.\-_:]{1,64}\Z")
BOOT = {"network": "network", "disk": "hd"}


@dataclass(frozen=True)
class Target:
    """The host a task is for, and who it is for (in every message)."""

    foundation: str
    member: str
    endpoint: str
    username: str | None
    password: str | None = dataclasses.field(repr=False)  # never in a printed Target

    def where(self, field: str) -> str:
        on = f"member {self.member!r}" if self.member else f"libvirt host {self.endpoint}"
        if not self.foundation:  # a task about the host itself (host_capacity)
            return f"{on} ({field})"
        if self.member:
            return f"foundation {self.foundation!r} on {on} ({field})"
        return f"foundation {self.foundation!r} ({field})"


@dataclass(frozen=True)
class Shape:
    """A create task's ``domain``, checked (``Shape.of``)."""

    name: str
    cpu_count: int
    memory_mb: int
    disks: tuple[int, ...]
    pool: str
    network: str | None
    bridge: str | None
    interfaces: tuple[str, ...]
    boot_order: tuple[str, ...]

    @classmethod
    def of(cls, target: Target, domain: dict[str, Any]) -> Shape:
        def number(name: str, low: int, high: int) -> int:
            value = require(domain, name, int)
            if not low <= value <= high:
                raise TaskFailed(f"{target.where(name)}: must be {low} to {high}, got {value}")
            return int(value)

        def named(name: str, value: Any, pattern: re.Pattern[str]) -> str:
            if not isinstance(value, str) or not pattern.match(value):
                raise TaskFailed(f"{target.where(name)}: {value!r} is not a name")
            return value

        name = named("name", domain.get("name"), NAME)
        disks = require(domain, "disks", list)
        if not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 65536 for d in disks
        ):
            raise TaskFailed(f"{target.where('disks')}: each disk is 1 to 65536 GB")
        network, bridge = domain.get("network"), domain.get("bridge")
        if (network is None) == (bridge is None):
            raise TaskFailed(f"{target.where('network, bridge')}: give exactly one of them")
        interfaces = require(domain, "interfaces", list)
        if not all(isinstance(i, str) for i in interfaces):
            raise TaskFailed(f"{target.where('interfaces')}: must be physical locations")
        boot = domain.get("boot_order", ["network", "disk"])
        if not isinstance(boot, list) or not boot or not all(b in BOOT for b in boot):
            raise TaskFailed(f"{target.where('boot_order')}: a list of network and disk")
        return cls(
            name=name,
            cpu_count=number("cpu_count", 1, 256),
            memory_mb=number("memory_mb", 64, 4 * 2**20),
            disks=tuple(disks),
            pool=named("pool", domain.get("pool"), NAME),
            network=None if network is None else named("network", network, DEVICE_NAME),
            bridge=None if bridge is None else named("bridge", bridge, DEVICE_NAME),
            interfaces=tuple(interfaces),
            boot_order=tuple(boot),
        )


def volume_name(shape: Shape, domain_uuid: str, index: int) -> str:
    """A disk's volume: named after the domain and its uuid (so a destroy finds the ones a
    failed create left)."""
    return f"{shape.name}-{domain_uuid}-disk{index}"


def domain_xml(
    kind: str, domain_uuid: str, shape: Shape, paths: list[str], volume_format: str
) -> str:
    """The definition of the domain: the shape, its disks (virtio, at ``paths``) and NICs
    (virtio, MACs left to libvirt), ACPI for a clean shutdown, off when the guest powers
    off."""
    domain = ET.Element("domain", type=kind)
    ET.SubElement(domain, "name").text = shape.name
    ET.SubElement(domain, "uuid").text = domain_uuid
    ET.SubElement(domain, "memory", unit="MiB").text = str(shape.memory_mb)
    ET.SubElement(domain, "vcpu").text = str(shape.cpu_count)
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64").text = "hvm"
    set_boot_order(os_, list(shape.boot_order))
    ET.SubElement(ET.SubElement(domain, "features"), "acpi")  # for the ACPI shutdown
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    devices = ET.SubElement(domain, "devices")
    for index, path in enumerate(paths):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=volume_format)
        ET.SubElement(disk, "source", file=path)
        ET.SubElement(disk, "target", dev=f"vd{chr(ord('a') + index)}", bus="virtio")
    for _ in shape.interfaces:
        if shape.network is not None:
            nic = ET.SubElement(devices, "interface", type="network")
            ET.SubElement(nic, "source", network=shape.network)
        else:
            nic = ET.SubElement(devices, "interface", type="bridge")
            ET.SubElement(nic, "source", bridge=shape.bridge or "")
        ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(devices, "serial", type="pty")
    return ET.tostring(domain, encoding="unicode")


def set_boot_order(os_: ET.Element | None, order: list[str]) -> None:
    assert os_ is not None
    for boot in os_.findall("boot"):
        os_.remove(boot)
    for device in order:
        ET.SubElement(os_, "boot", dev=BOOT[device])


def interface_map(target: Target, domain: Any, locations: Sequence[str]) -> dict[str, str]:
    """The domain's NICs' MACs in order, paired with ``locations`` (a failure when it has
    fewer NICs)."""
    tree = ET.fromstring(domain.XMLDesc(0))
    macs = [mac.get("address", "").lower() for mac in tree.findall("devices/interface/mac")]
    if len(macs) < len(locations):
        raise TaskFailed(
            f"{target.where('physical_locations')}: the domain has {len(macs)} NICs, not "
            f"{len(locations)}"
        )
    return dict(zip(locations, macs, strict=False))


def disk_paths(xml: str) -> list[str]:
    """The files of a domain's disks (from its XML)."""
    tree = ET.fromstring(xml)
    return [
        source.get("file", "")
        for source in tree.findall("devices/disk/source")
        if source.get("file")
    ]
