"""The foundation types ``contractor demo --with TYPES`` adds, each against an emulator it
starts: ``redfish`` (``demo_redfish``: a sushy-emulator BMC) and ``aws`` (``demo_aws``: a
moto_server EC2). Everything the demo does per type goes through ``Emulators``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contractor import aws_emulator, demo_aws, demo_redfish, redfish_emulator
from contractor.models import Foundation, Site, Structure
from contractor.redfish_emulator import RedfishBmc
from subcontractor.config import ModuleConfig

__all__ = ["WITH", "EmulatorError", "Emulators", "start_emulators"]

WITH = ("aws", "redfish")  # foundation types the demo can add, each against its emulator
# what each type's emulator needs (its extra): a check that it is installed, and its name
NEEDS = {
    "aws": (aws_emulator, "boto3 and moto[server], the EC2 emulator"),
    "redfish": (redfish_emulator, "sushy-tools, the Redfish emulator"),
}


class MissingEmulator(Exception):
    """An emulator ``--with`` asks for is not installed; the message says what to install."""


EmulatorError = (MissingEmulator, redfish_emulator.EmulatorError, aws_emulator.EmulatorError)


@dataclass(frozen=True)
class Emulators:
    """The emulators of this run (None: that type is not in the demo)."""

    redfish: RedfishBmc | None = None
    aws: demo_aws.Cloud | None = None

    @property
    def module_names(self) -> list[str]:
        """The subcontractor modules the demo's agent token allows beyond ``simulated``."""
        return [name for name in WITH if getattr(self, name) is not None]

    async def targets(self, session: AsyncSession, site: Site) -> list[Foundation | Structure]:
        """Each type's demo targets in ``site`` (created, or pointed at this run's
        emulators)."""
        found: list[Foundation | Structure] = []
        if self.redfish is not None:
            found.append(await demo_redfish.prepare_redfish(session, self.redfish, site))
        if self.aws is not None:
            found += await demo_aws.prepare_aws(session, self.aws, site)
        return found

    def agent_modules(
        self, simulated: dict[str, Any]
    ) -> tuple[dict[str, ModuleConfig], dict[str, dict[str, Any]]]:
        """The modules of the agent of the site holding these targets, and their options:
        ``simulated`` (with ``simulated``) and one per emulator."""
        modules = {"simulated": ModuleConfig(concurrency=16, task_timeout=120)}
        options: dict[str, dict[str, Any]] = {"simulated": simulated}
        if self.redfish is not None:
            modules["redfish"] = ModuleConfig(concurrency=4, task_timeout=300)
            options["redfish"] = dict(demo_redfish.AGENT_OPTIONS)
        if self.aws is not None:
            modules["aws"] = ModuleConfig(concurrency=4, task_timeout=120)
            options["aws"] = dict(demo_aws.AGENT_OPTIONS)
        return modules, options

    def announcements(self) -> list[str]:
        lines = []
        if self.redfish is not None:
            lines.append(
                "Redfish BMC (sushy-emulator) for the RedFish foundation: "
                f"https://{self.redfish.label}"
            )
        if self.aws is not None:
            lines.append(f"EC2 (moto_server) for the AWS foundation: {self.aws.url}")
        return lines

    def background(self, install_seconds: float) -> list[asyncio.Task[None]]:
        """What plays along while the jobs run (cancel the tasks at the end)."""
        if self.redfish is None:
            return []
        return [asyncio.create_task(demo_redfish.installer(self.redfish, install_seconds))]

    def example_queries(self, site: str) -> list[tuple[str, str]]:
        return [demo_aws.example_query(site)] if self.aws is not None else []


def start_emulators(stack: contextlib.ExitStack[bool | None], types: tuple[str, ...]) -> Emulators:
    """The emulators of ``types`` (some of ``WITH``), each stopped when ``stack`` closes; an
    ``EmulatorError`` says what is missing or did not start."""
    for name in types:
        emulator, what = NEEDS[name]
        if not emulator.installed():
            raise MissingEmulator(f"--with {name} needs {what}: pip install 'contractor[{name}]'")
    return Emulators(
        redfish=demo_redfish.start_emulator(stack) if "redfish" in types else None,
        aws=demo_aws.start_emulator(stack) if "aws" in types else None,
    )
