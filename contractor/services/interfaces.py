"""Network interfaces: the real ones of a Foundation (MAC, provisioning, PXE) and the
abstract ones of a Structure."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import (
    PXE,
    AbstractNetworkInterface,
    Foundation,
    Network,
    RealNetworkInterface,
    Structure,
)
from contractor.services.common import UNSET, id_or_none, set_given
from contractor.services.config import config_changed
from contractor.services.dns_names import interface_label
from contractor.services.validation import check_name, normalise_mac

# -- real network interfaces (on foundations) ---------------------------------------------


async def check_mac_free(
    session: AsyncSession, mac: str | None, interface_id: int | None, *, wanted_by: str = ""
) -> None:
    """Conflict when another interface has ``mac``; the message names both sides (the
    holder, and ``wanted_by``: the interface that asked for it)."""
    if mac is None:
        return
    query = (
        select(RealNetworkInterface.physical_location, Foundation.locator)
        .join(Foundation, Foundation.id == RealNetworkInterface.foundation_id)
        .where(RealNetworkInterface.mac == mac)
    )
    if interface_id is not None:
        query = query.where(RealNetworkInterface.id != interface_id)
    holder = (await session.execute(query)).first()
    if holder is not None:
        asked = f", so it cannot go on {wanted_by}" if wanted_by else ""
        raise Conflict(
            f"MAC {mac} is already on interface {holder[0]!r} of foundation {holder[1]!r}{asked}",
            field="mac",
        )


async def _check_provisioning_free(
    session: AsyncSession, foundation: Foundation, interface_id: int | None
) -> None:
    query = select(RealNetworkInterface.physical_location).where(
        RealNetworkInterface.foundation_id == foundation.id,
        RealNetworkInterface.is_provisioning.is_(True),
    )
    if interface_id is not None:
        query = query.where(RealNetworkInterface.id != interface_id)
    other = (await session.execute(query)).scalar_one_or_none()
    if other is not None:
        raise Conflict(
            f"foundation {foundation.locator!r} already provisions through {other!r}; "
            "a foundation has one provisioning interface",
            field="is_provisioning",
        )


async def add_interface(
    session: AsyncSession,
    *,
    foundation: Foundation,
    physical_location: str,
    name: str | None = None,
    mac: str | None = None,
    is_provisioning: bool = False,
    network: Network | None = None,
    link_name: str | None = None,
    pxe: PXE | None = None,
) -> RealNetworkInterface:
    check_name(
        physical_location, field="physical_location", max_length=100, what="physical location"
    )
    name = physical_location if name is None else name
    check_name(name, field="name", max_length=20, what="interface name")
    mac = normalise_mac(mac)
    clash = select(RealNetworkInterface.id).where(
        RealNetworkInterface.foundation_id == foundation.id,
        RealNetworkInterface.physical_location == physical_location,
    )
    if (await session.execute(clash)).first():
        raise Conflict(
            f"foundation {foundation.locator!r} already has an interface at {physical_location!r}",
            field="physical_location",
        )
    if is_provisioning:
        await _check_provisioning_free(session, foundation, None)
    wanted_by = f"interface {physical_location!r} of foundation {foundation.locator!r}"
    await check_mac_free(session, mac, None, wanted_by=wanted_by)
    if link_name is not None and (not isinstance(link_name, str) or len(link_name) > 100):
        raise InvalidInput("link_name must be text of at most 100 characters", field="link_name")
    interface = RealNetworkInterface(
        foundation_id=foundation.id,
        name=name,
        physical_location=physical_location,
        mac=mac,
        is_provisioning=is_provisioning,
        network_id=network.id if network else None,
        link_name=link_name,
        pxe_id=pxe.id if pxe else None,
    )
    session.add(interface)
    return await config_changed(session, interface)


async def update_interface(
    session: AsyncSession,
    interface: RealNetworkInterface,
    *,
    mac: str | None = UNSET,
    is_provisioning: bool = UNSET,
    network: Network | None = UNSET,
    pxe: PXE | None = UNSET,
) -> RealNetworkInterface:
    foundation = await session.get_one(Foundation, interface.foundation_id)
    if mac is not UNSET:
        normalised = normalise_mac(mac)
        wanted_by = (
            f"interface {interface.physical_location!r} of foundation {foundation.locator!r}"
        )
        await check_mac_free(session, normalised, interface.id, wanted_by=wanted_by)
        interface.mac = normalised
    if is_provisioning is not UNSET:
        if is_provisioning:
            await _check_provisioning_free(session, foundation, interface.id)
        interface.is_provisioning = bool(is_provisioning)
    set_given(interface, network_id=(network, id_or_none), pxe_id=(pxe, id_or_none))
    return await config_changed(session, interface)


async def foundation_interfaces(
    session: AsyncSession, foundation: Foundation
) -> Sequence[RealNetworkInterface]:
    query = (
        select(RealNetworkInterface)
        .where(RealNetworkInterface.foundation_id == foundation.id)
        .order_by(RealNetworkInterface.physical_location)
    )
    return (await session.execute(query)).scalars().all()


async def delete_interface(session: AsyncSession, interface: RealNetworkInterface) -> None:
    """Remove a foundation's interface."""
    await session.delete(interface)
    await session.flush()


# -- abstract network interfaces (on structures) -------------------------------------------


async def add_abstract_interface(
    session: AsyncSession, *, structure: Structure, name: str, network: Network | None = None
) -> AbstractNetworkInterface:
    check_name(name, field="name", max_length=20, what="interface name")
    names = select(AbstractNetworkInterface.name).where(
        AbstractNetworkInterface.structure_id == structure.id
    )
    for other in (await session.execute(names)).scalars():
        if other == name:
            raise Conflict(
                f"structure {structure.hostname!r} already has an interface {name!r}",
                field="name",
            )
        if interface_label(other) == interface_label(name):
            raise Conflict(
                f"structure {structure.hostname!r}: interface {name!r} would have the DNS "
                f"name {interface_label(name)}.{structure.hostname} of its interface "
                f"{other!r}; rename one of them",
                field="name",
            )
    interface = AbstractNetworkInterface(
        structure_id=structure.id, name=name, network_id=network.id if network else None
    )
    session.add(interface)
    return await config_changed(session, interface)
