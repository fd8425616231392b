"""What the demo's parts (``demo``, ``demo_redfish``, ``demo_aws``) share to create their
inventory, so that a second run reuses what the first made: look-ups falling back to
creation, the demo's foundations, and a scratch directory for an emulator."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import NotFound
from contractor.models import Foundation, FoundationBluePrint, Site
from contractor.services import building, interfaces, jobs

__all__ = ["demo_foundation", "found_or_created", "scratch_directory"]

T = TypeVar("T")


async def found_or_created(
    find: Callable[[], Awaitable[T]], create: Callable[[], Awaitable[T]]
) -> tuple[T, bool]:
    """What ``find`` returns, or (when it raises ``NotFound``) what ``create`` does; and
    whether it was created."""
    try:
        return await find(), False
    except NotFound:
        return await create(), True


async def demo_foundation(
    session: AsyncSession,
    *,
    locator: str,
    site: Site,
    blueprint: FoundationBluePrint,
    type: str,
    fields: dict[str, Any],
    nics: Mapping[str, str | None],
    refresh: bool = True,
) -> tuple[Foundation, bool]:
    """The demo's foundation ``locator``: created with ``fields`` and an interface per
    physical location in ``nics`` (with its MAC, if known; the first provisions), or, when
    it exists, given this run's ``fields`` (unless not ``refresh``); located unless it is
    built or has a job. Whether it was created."""

    async def create() -> Foundation:
        made = await building.create_foundation(
            session, locator=locator, site=site, blueprint=blueprint, type=type, fields=fields
        )
        for number, (location, mac) in enumerate(nics.items()):
            await interfaces.add_interface(
                session,
                foundation=made,
                physical_location=location,
                mac=mac,
                is_provisioning=number == 0,
            )
        return made

    foundation, created = await found_or_created(
        lambda: building.get_foundation(session, locator), create
    )
    if not created and refresh:
        await building.update_foundation(session, foundation, fields=fields)
    if foundation.state == "planned" and await jobs.job_for_target(session, foundation) is None:
        await building.set_located(session, foundation)
    return foundation, created


def scratch_directory(stack: contextlib.ExitStack[bool | None], prefix: str) -> Path:
    """A new temporary directory, removed when ``stack`` closes."""
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
