"""What a Foundation job's script records of the machine it built, with the original's
function names: ``foundation.set_interface_macs( interface_list=... )`` (a list of
``{name, mac}``, matched by interface name, as a cloud reports its network interfaces) and
``foundation.set_ip_addresses( ip_address_map=... )`` (interface name to IP, or ``none`` to
release the interface's address), recorded in IPAM on the foundation's structure.

Each IP is checked against the site's address blocks while the script runs (a refusal names
the interface and the IP); the addresses are written with the step
(``services.recorded_addresses``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.models import RealNetworkInterface, Structure
from contractor.services.recorded_addresses import BlockIndex, record_interface_address
from contractor.services.validation import normalise_mac
from tscript import ParameterError

__all__ = ["AddressPlan", "checked_macs", "macs_of_interface_list"]


def macs_of_interface_list(
    interface_list: Any, interfaces: Sequence[RealNetworkInterface]
) -> dict[str, Any]:
    """``[{name, mac}, ...]`` as a map of physical location to MAC."""
    param = "interface_list"
    if not isinstance(interface_list, list):
        raise ParameterError(param, "must be a list of {name, mac} maps")
    by_name = {i.name: i for i in interfaces}
    macs: dict[str, Any] = {}
    for index, item in enumerate(interface_list):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ParameterError(param, f"item {index} must be a map with a name and a mac")
        interface = by_name.get(item["name"])
        if interface is None:
            have = ", ".join(sorted(by_name)) or "none"
            raise ParameterError(param, f"no interface named {item['name']!r} (have: {have})")
        macs[interface.physical_location] = item.get("mac")
    return macs


def checked_macs(
    macs: Any,
    param: str,
    interfaces: Sequence[RealNetworkInterface],
    earlier: Mapping[int, str],
) -> dict[int, str]:
    """A map of physical location to MAC, checked (known locations, valid MACs, none on two
    interfaces, counting the ``earlier`` changes of the step), as interface id → MAC."""
    if not isinstance(macs, dict):
        raise ParameterError(param, "must be a map of physical location to MAC address")
    by_location = {i.physical_location: i for i in interfaces}
    changes: dict[int, str] = {}
    for location, mac in macs.items():
        interface = by_location.get(location) if isinstance(location, str) else None
        if interface is None:
            have = ", ".join(sorted(by_location)) or "none"
            raise ParameterError(
                param, f"no interface at physical location {location!r} (have: {have})"
            )
        if mac is None or mac == "":
            raise ParameterError(param, f"{location!r}: a MAC address is needed")
        try:
            normalised = normalise_mac(mac)
        except InvalidInput as error:
            raise ParameterError(param, f"{location!r}: {error.message}") from None
        assert normalised is not None
        changes[interface.id] = normalised
    after = {i.id: changes.get(i.id, earlier.get(i.id, i.mac)) for i in interfaces}
    for interface in interfaces:
        if interface.id not in changes:
            continue
        for other in interfaces:
            if other.id != interface.id and after[other.id] == changes[interface.id]:
                raise ParameterError(
                    param,
                    f"{interface.physical_location!r}: MAC {changes[interface.id]} would "
                    f"also be on {other.physical_location!r}",
                )
    return changes


@dataclass
class AddressPlan:
    """The addresses a step's script recorded: interface name → (block id, offset) or None."""

    structure: Structure | None
    blocks: BlockIndex
    interface_names: Sequence[str]
    changes: dict[str, tuple[int, int] | None] = field(default_factory=dict)

    def set_ip_addresses(self, *, ip_address_map: Any) -> bool:
        param = "ip_address_map"
        if not isinstance(ip_address_map, dict):
            raise ParameterError(param, "must be a map of interface name to IP address (or none)")
        if self.structure is None:
            raise ParameterError(
                param, "the foundation has no structure to record its addresses on"
            )
        planned: dict[str, tuple[int, int] | None] = {}
        for name, ip in ip_address_map.items():
            if name not in self.interface_names:
                have = ", ".join(self.interface_names) or "none"
                raise ParameterError(param, f"no interface named {name!r} (have: {have})")
            if ip is None:
                planned[name] = None
                continue
            if not isinstance(ip, str):
                raise ParameterError(param, f"{name!r}: {ip!r} is not an IP address")
            try:
                block, offset = self.blocks.holding(ip)
            except ValueError as error:
                raise ParameterError(param, f"{name!r}: {error}") from None
            planned[name] = (block.id, offset)
        self.changes.update(planned)
        return True

    async def apply(self, session: AsyncSession) -> bool:
        """Write the recorded addresses; whether anything was to write."""
        if not self.changes or self.structure is None:
            return False
        for name, place in self.changes.items():
            await record_interface_address(
                session,
                structure=self.structure,
                interface_name=name,
                block_id=place[0] if place else None,
                offset=place[1] if place else None,
            )
        return True
