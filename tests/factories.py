"""Small typed factories for a realistic inventory in tests."""

from __future__ import annotations

import itertools
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import (
    PXE,
    Address,
    AddressBlock,
    Foundation,
    FoundationBluePrint,
    Site,
    Structure,
    StructureBluePrint,
)
from contractor.services import addresses, building, interfaces, network
from contractor.services import blueprint as bp_service
from contractor.services import site as site_service

_counter = itertools.count(1)
_macs = itertools.count(1)
CHEAP = PasswordHasher(memory_cost=64, time_cost=1)  # hashing cost is not under test


def new_mac(prefix: str = "52:54:00") -> str:
    """A MAC no other call of the run gives: ``prefix`` (one to five octets), then a count."""
    number = next(_macs)
    free = 5 - prefix.count(":")
    return ":".join([prefix, *(f"{number >> 8 * i & 255:02x}" for i in reversed(range(free)))])


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


async def make_site(
    session: AsyncSession, name: str | None = None, parent: Site | None = None, **kwargs: Any
) -> Site:
    return await site_service.create_site(
        session, name=name or unique("site"), parent=parent, **kwargs
    )


async def make_foundation_blueprint(
    session: AsyncSession, name: str | None = None, **kwargs: Any
) -> FoundationBluePrint:
    kwargs.setdefault("foundation_types", ["manual", "simulated"])
    return await bp_service.create_foundation_blueprint(
        session, name=name or unique("fbp"), **kwargs
    )


async def make_structure_blueprint(
    session: AsyncSession,
    name: str | None = None,
    foundation_blueprints: list[FoundationBluePrint] | None = None,
    **kwargs: Any,
) -> StructureBluePrint:
    return await bp_service.create_structure_blueprint(
        session,
        name=name or unique("sbp"),
        foundation_blueprints=foundation_blueprints or [],
        **kwargs,
    )


async def make_foundation(
    session: AsyncSession,
    site: Site,
    blueprint: FoundationBluePrint,
    locator: str | None = None,
    type: str = "manual",
    **kwargs: Any,
) -> Foundation:
    return await building.create_foundation(
        session,
        locator=unique("node") if locator is None else locator,
        site=site,
        blueprint=blueprint,
        type=type,
        **kwargs,
    )


async def make_structure(
    session: AsyncSession,
    site: Site,
    foundation: Foundation,
    blueprint: StructureBluePrint,
    hostname: str | None = None,
    **kwargs: Any,
) -> Structure:
    return await building.create_structure(
        session,
        hostname=unique("host") if hostname is None else hostname,
        site=site,
        blueprint=blueprint,
        foundation=foundation,
        **kwargs,
    )


async def make_block(
    session: AsyncSession, site: Site, subnet: str = "10.0.0.0/24", **kwargs: Any
) -> AddressBlock:
    kwargs.setdefault("name", unique("block"))
    return await network.create_address_block(session, site=site, subnet=subnet, **kwargs)


async def make_stack(session: AsyncSession) -> tuple[Site, Foundation, Structure]:
    """A site with one manual foundation carrying one structure."""
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    foundation = await make_foundation(session, site, fbp)
    structure = await make_structure(session, site, foundation, sbp)
    return site, foundation, structure


async def make_reserved_machine(
    session: AsyncSession,
    site: Site,
    block: AddressBlock,
    mac: str,
    *,
    offset: int | None = None,
    pxe: PXE | None = None,
) -> tuple[Foundation, Structure, Address]:
    """A machine the boot services reserve an address for: a foundation whose provisioning
    interface ``eth0`` has ``mac`` (and ``pxe``), carrying a structure with its primary
    address in ``block`` (at ``offset``, else the next free one)."""
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    foundation = await make_foundation(session, site, fbp)
    await interfaces.add_interface(
        session,
        foundation=foundation,
        physical_location="eth0",
        mac=mac,
        is_provisioning=True,
        pxe=pxe,
    )
    structure = await make_structure(session, site, foundation, sbp)
    address = await addresses.create_address(
        session,
        structure=structure,
        block=block,
        interface_name="eth0",
        offset=offset,
        is_primary=True,
    )
    return foundation, structure, address
