"""The discovery report a machine with no reservation posts (``docs/boot.md``, "Discovery"):
checked strictly, every field, before anything is recorded.

``check_report`` answers the report normalised (MACs as ``aa:bb:cc:dd:ee:ff``, PCI ids in
lower case) or raises ``InvalidInput`` whose field is the path of the first bad value, as
``report.disks[2].size_bytes``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from contractor.errors import InvalidInput
from contractor.services.validation import normalise_mac

__all__ = ["MAX_REPORT_BYTES", "check_report", "hardware_identity"]

MAX_REPORT_BYTES: Final = 64 * 1024
MAX_MACS: Final = 64
MAX_DISKS: Final = 256
MAX_PCI: Final = 1024
MAX_TEXT: Final = 200
_TEXT_KEYS: Final = ("manufacturer", "product", "serial", "uuid")
_KEYS: Final = ("mac", "macs", *_TEXT_KEYS, "cpu_count", "memory_mib", "disks", "pci")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_CLASS = re.compile(r"[0-9a-fA-F]{4}([0-9a-fA-F]{2})?")
_DISK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _object(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object", field=where)
    for key in value:
        if key not in keys:
            raise InvalidInput(
                f"unknown key {where}.{key} (it takes {', '.join(keys)})", field=f"{where}.{key}"
            )
    return value


def _mac(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where} must be a MAC address as text", field=where)
    mac = normalise_mac(value, field=where)
    assert mac is not None
    return mac


def _whole(value: Any, where: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where} must be a whole number", field=where)
    if not low <= value <= high:
        raise InvalidInput(f"{where} must be between {low} and {high}, got {value}", field=where)
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be text or null", field=where)
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{where} is longer than {MAX_TEXT} characters", field=where)
    if _CONTROL.search(value):
        raise InvalidInput(f"{where} holds a control character", field=where)
    text = value.strip()
    return text or None


def _list(value: Any, where: str, *, low: int, high: int) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list", field=where)
    if not low <= len(value) <= high:
        raise InvalidInput(
            f"{where} must have {low} to {high} entries, has {len(value)}", field=where
        )
    return value


def _hex(value: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{where} must be {what}, got {value!r}", field=where)
    return value.lower()


def _disk(value: Any, where: str) -> dict[str, Any]:
    disk = _object(value, where, ("name", "size_bytes"))
    name = disk.get("name")
    if not isinstance(name, str) or not _DISK_NAME.fullmatch(name):
        raise InvalidInput(
            f"{where}.name must be a device name (letters, digits, '_.-', at most 64)",
            field=f"{where}.name",
        )
    if "size_bytes" not in disk:
        raise InvalidInput(f"{where}.size_bytes is required", field=f"{where}.size_bytes")
    size = _whole(disk["size_bytes"], f"{where}.size_bytes", low=0, high=2**63 - 1)
    return {"name": name, "size_bytes": size}


def _pci(value: Any, where: str) -> dict[str, Any]:
    device = _object(value, where, ("vendor", "device", "class"))
    checked = {
        "vendor": _hex(device.get("vendor"), f"{where}.vendor", _HEX4, "4 hex digits"),
        "device": _hex(device.get("device"), f"{where}.device", _HEX4, "4 hex digits"),
    }
    if device.get("class") is not None:
        checked["class"] = _hex(device["class"], f"{where}.class", _CLASS, "4 or 6 hex digits")
    return checked


def check_report(value: Any, where: str = "report") -> dict[str, Any]:
    """The report, every field checked (see the module's docstring)."""
    report = _object(value, where, _KEYS)
    if len(json.dumps(report, separators=(",", ":"))) > MAX_REPORT_BYTES:
        raise InvalidInput(f"{where} is larger than {MAX_REPORT_BYTES} bytes", field=where)
    for key in ("mac", "macs"):
        if key not in report:
            raise InvalidInput(f"{where}.{key} is required", field=f"{where}.{key}")
    mac = _mac(report["mac"], f"{where}.mac")
    macs: list[str] = []
    for index, item in enumerate(_list(report["macs"], f"{where}.macs", low=1, high=MAX_MACS)):
        one = _mac(item, f"{where}.macs[{index}]")
        if one in macs:
            raise InvalidInput(
                f"{where}.macs[{index}] repeats {one}", field=f"{where}.macs[{index}]"
            )
        macs.append(one)
    if mac not in macs:
        raise InvalidInput(
            f"{where}.macs must hold the boot MAC {mac} ({where}.mac)", field=f"{where}.macs"
        )
    checked: dict[str, Any] = {"mac": mac, "macs": macs}
    for key in _TEXT_KEYS:
        checked[key] = _text(report.get(key), f"{where}.{key}")
    for key, high in (("cpu_count", 1 << 20), ("memory_mib", 1 << 40)):
        item = report.get(key)
        checked[key] = None if item is None else _whole(item, f"{where}.{key}", low=1, high=high)
    disks = _list(report.get("disks", []), f"{where}.disks", low=0, high=MAX_DISKS)
    checked["disks"] = [_disk(d, f"{where}.disks[{i}]") for i, d in enumerate(disks)]
    pci = _list(report.get("pci", []), f"{where}.pci", low=0, high=MAX_PCI)
    checked["pci"] = [_pci(d, f"{where}.pci[{i}]") for i, d in enumerate(pci)]
    return checked


def hardware_identity(report: dict[str, Any]) -> dict[str, Any]:
    """A checked report as a Foundation's hardware identity (``Foundation.id_map``), the form
    the blueprint's fingerprint requirements are compared with: memory in MiB as
    ``memory_mb``, PCI devices as ``vendor:device``, disks in decimal GB (10^9 bytes),
    largest first."""
    return {
        "serial": report["serial"],
        "manufacturer": report["manufacturer"],
        "product": report["product"],
        "uuid": report["uuid"],
        "cpu_count": report["cpu_count"],
        "memory_mb": report["memory_mib"],
        "pci_devices": sorted({f"{d['vendor']}:{d['device']}" for d in report["pci"]}),
        "disks_gb": sorted((d["size_bytes"] / 10**9 for d in report["disks"]), reverse=True),
        "macs": report["macs"],
    }
