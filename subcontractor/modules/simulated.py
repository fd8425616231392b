"""``simulated``: answers the ``simulated`` foundation type's power and boot tasks.

It also answers ``get_interface_map`` (made-up MACs, the same for a machine every time) and
``destroy``. Each call waits the foundation's ``delay_seconds`` (scaled by the ``delay_scale``
option, 0 for benchmarks) and fails with its ``fail_likelihood`` percent (a retryable failure,
as a flaky BMC would). Power states are kept per locator in memory, starting ``off``.

A machine powered on to boot from the network (``pxe``/``network``, next boot only, as a BMC
does) runs a simulated installer: it powers itself off ``install_seconds`` later (scaled by
``delay_scale`` too), as a real installer does when it has finished, so scripts that wait for
the power-off (``foundation.wait_for_poweroff()``) go on.

``host_capacity`` answers a simulated Complex member's capacity refresh: the numbers in its
endpoint's query (``simulated://host3?cpus=16&memory_mb=65536&disk_gb=500``), or else the
``host_cpus``, ``host_memory_mb`` and ``host_disk_gb`` options.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require

__all__ = ["SimulatedModule"]

STATES = {"on": "on", "off": "off", "soft_off": "off", "cycle": "on", "reset": "on"}
NETWORK_BOOT = ("pxe", "network")


class SimulatedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_scale: float = Field(default=1.0, ge=0, description="Multiplies every delay.")
    install_seconds: float = Field(
        default=5.0, ge=0, description="How long a network boot's installer runs."
    )
    host_cpus: int = Field(default=8, ge=0, description="A simulated host's CPUs.")
    host_memory_mb: int = Field(default=32768, ge=0, description="Its memory (MB).")
    host_disk_gb: int = Field(default=500, ge=0, description="Its disk (GB).")


class SimulatedModule(Module):
    Options = SimulatedOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, SimulatedOptions)
        self.scale = options.delay_scale
        self.install_seconds = options.install_seconds * options.delay_scale
        self.power: dict[str, str] = {}
        self.boot: dict[str, str] = {}
        self.installed_at: dict[str, float] = {}  # when a running installer powers off
        self.host_capacity_default = {
            "cpus": options.host_cpus,
            "memory_mb": options.host_memory_mb,
            "disk_gb": options.host_disk_gb,
        }

    def functions(self) -> Mapping[str, Function]:
        return {
            "set_power": self.set_power,
            "power_state": self.power_state,
            "set_boot_device": self.set_boot_device,
            "get_interface_map": self.get_interface_map,
            "destroy": self.destroy,
            "host_capacity": self.host_capacity,
        }

    async def _machine(self, parameters: dict[str, Any]) -> str:
        connection = require(parameters, "connection", dict)
        locator: str = require(connection, "locator", str)
        delay = connection.get("delay_seconds", 0)
        fail = connection.get("fail_likelihood", 0)
        if isinstance(delay, int | float) and delay > 0 and self.scale > 0:
            await asyncio.sleep(delay * self.scale)
        if isinstance(fail, int | float) and fail > 0 and random.uniform(0, 100) < fail:
            raise TaskFailed(f"simulated machine {locator!r} did not answer", retryable=True)
        return locator

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        want = require(parameters, "state", str)
        if want not in STATES:
            raise TaskFailed(f"parameter 'state' must be one of {', '.join(STATES)}, got {want!r}")
        locator = await self._machine(parameters)
        self._installer(locator)
        was = self.power.get(locator, "off")
        self.power[locator] = STATES[want]
        self.installed_at.pop(locator, None)
        booted = self.power[locator] == "on" and (was == "off" or want in ("cycle", "reset"))
        if booted and self.boot.pop(locator, "") in NETWORK_BOOT:
            self.installed_at[locator] = time.monotonic() + self.install_seconds
        return {"state": self.power[locator]}

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        locator = await self._machine(parameters)
        self._installer(locator)
        return {"state": self.power.get(locator, "off")}

    def _installer(self, locator: str) -> None:
        """A finished installer has powered its machine off."""
        done = self.installed_at.get(locator)
        if done is not None and time.monotonic() >= done:
            del self.installed_at[locator]
            self.power[locator] = "off"

    async def set_boot_device(self, parameters: dict[str, Any]) -> dict[str, Any]:
        device = require(parameters, "device", str)
        locator = await self._machine(parameters)
        self.boot[locator] = device
        return {"device": device}

    async def get_interface_map(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The simulated machine's MACs: one per physical location asked for, the same for
        the same machine every time (locally administered, from the locator and location)."""
        locations = require(parameters, "physical_locations", list)
        if not all(isinstance(location, str) for location in locations):
            raise TaskFailed("parameter 'physical_locations' must be a list of strings")
        locator = await self._machine(parameters)
        return {"interface_map": {location: _mac(locator, location) for location in locations}}

    async def destroy(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The simulated machine is gone: its power, boot device and installer forgotten."""
        locator = await self._machine(parameters)
        for state in (self.power, self.boot, self.installed_at):
            state.pop(locator, None)
        return {"done": True}

    async def host_capacity(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """A simulated host's capacity, from its endpoint's query or the options."""
        endpoint = require(parameters, "endpoint", str)
        found = dict(self.host_capacity_default)
        query = urllib.parse.urlsplit(endpoint).query if endpoint else ""
        for name, values in urllib.parse.parse_qs(query).items():
            if name not in found:
                raise TaskFailed(f"endpoint {endpoint!r}: unknown capacity {name!r}")
            value = values[-1]
            if not value.isdigit():
                raise TaskFailed(f"endpoint {endpoint!r}: {name} must be a whole number")
            found[name] = int(value)
        return found


def _mac(locator: str, location: str) -> str:
    digest = hashlib.sha256(f"{locator}/{location}".encode()).digest()
    return ":".join(f"{byte:02x}" for byte in (0x02, *digest[:5]))
