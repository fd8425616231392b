"""The demo's Redfish machine (``contractor demo --with redfish``).

A ``sushy-emulator --fake`` BMC (``contractor.redfish_emulator``, the ``redfish`` extra) runs
for the demo; a foundation ``east-rf01`` of the shipped ``redfish-foundation`` blueprint
points at it (on a second run, at the new emulator) and its create job runs on the demo-east
subcontractor's ``redfish`` module: power off, MACs recorded, PXE boot, power on, wait for
the installer to power off. ``installer`` plays that installer: it powers the machine off a
few seconds after it came on.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.demo_inventory import demo_foundation, scratch_directory
from contractor.models import Foundation, Site
from contractor.redfish_emulator import RedfishBmc, sushy_emulator
from contractor.services import blueprint as bps

__all__ = [
    "AGENT_OPTIONS",
    "LOCATOR",
    "installer",
    "prepare_redfish",
    "start_emulator",
]

LOCATOR = "east-rf01"
# quick to see the emulator's power changes (it takes 1 to 11 s for each)
AGENT_OPTIONS = {"confirm_interval": 0.5, "soft_off_wait": 5.0}


def _fields(bmc: RedfishBmc) -> dict[str, object]:
    return {
        "bmc_address": "127.0.0.1",
        "bmc_port": bmc.port,
        "username": bmc.username,
        "password": bmc.password,
        "ca_bundle": bmc.tls.ca,
    }


async def prepare_redfish(session: AsyncSession, bmc: RedfishBmc, site: Site) -> Foundation:
    """The demo's Redfish foundation (created, or pointed at this run's emulator), located
    unless it is built or has a job."""
    foundation, _ = await demo_foundation(
        session,
        locator=LOCATOR,
        site=site,
        blueprint=await bps.get_foundation_blueprint(session, "redfish-foundation"),
        type="RedFish",
        fields=_fields(bmc),
        nics={"eth0": None, "eth1": None},
    )
    return foundation


async def installer(bmc: RedfishBmc, seconds: float) -> None:
    """Until cancelled: whenever the machine comes on, power it off ``seconds`` later (the
    installer finishing)."""
    was = await asyncio.to_thread(bmc.power)
    while True:
        await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):  # the emulator busy or going away
            now = await asyncio.to_thread(bmc.power)
            if now == "On" and was != "On":
                await asyncio.sleep(seconds)
                await asyncio.to_thread(
                    bmc.post,
                    f"{bmc.system}/Actions/ComputerSystem.Reset",
                    {"ResetType": "ForceOff"},
                )
            was = now


def start_emulator(stack: contextlib.ExitStack[bool | None]) -> RedfishBmc:
    """The demo's emulated BMC (the ``redfish`` extra installed), stopped (and its
    directory removed) when ``stack`` closes."""
    directory = scratch_directory(stack, "contractor-bmc-")
    password = secrets.token_urlsafe(12)
    return stack.enter_context(sushy_emulator(directory, power="On", password=password))
