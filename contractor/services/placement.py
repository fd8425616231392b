"""Placement: which member of a typed Complex carries a hosted Foundation (a VM on a libvirt
host, a container on a Docker host), within the members' capacity.

A member has room for a demand when, for CPUs, memory and disk alike, its capacity times the
Complex's over-commit ratio, less what the Foundations already placed on it take, is at least
the demand. ``place`` picks, among the members whose capacity is known, the one with the most
room (the largest free share of its tightest resource after the placement; ties go to the
hostname first in order), or the pinned member, and records the placement; it serialises on the
Complex's row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every writer holds the
database's write lock) so two creates never fill one member past its room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import Complex, ComplexMember, Foundation, FoundationPlacement, Structure

__all__ = [
    "HOSTING_FIELDS",
    "Demand",
    "MemberAccess",
    "MemberRoom",
    "Placed",
    "check_demand",
    "host",
    "member_access",
    "member_rooms",
    "member_rooms_by_complex",
    "place",
    "placements_by_foundation",
    "release",
]

# The fields every hosted type takes at creation (not stored on its row): the Complex and,
# optionally, the member (its Structure's hostname) to pin the Foundation to.
HOSTING_FIELDS = ("complex", "member")
# Demands and capacities are bounded so sums stay far inside 64-bit integers.
_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Demand:
    """What a hosted Foundation takes of its member."""

    cpus: int
    memory_mb: int
    disk_gb: int


@dataclass(frozen=True)
class MemberAccess:
    """What a hosted type's job functions send in their tasks to reach the member carrying
    the Foundation. ``password`` is a secret: it goes only inside task parameters."""

    complex: str
    complex_type: str
    structure: str  # the member Structure's hostname
    endpoint: str
    username: str
    password: str

    def __repr__(self) -> str:  # never the password, wherever the object is printed
        return (
            f"MemberAccess(complex={self.complex!r}, complex_type={self.complex_type!r}, "
            f"structure={self.structure!r}, endpoint={self.endpoint!r}, "
            f"username={self.username!r}, password=***)"
        )


@dataclass(frozen=True)
class MemberRoom:
    """A member's capacity (None: not read yet), its effective capacity (times the
    over-commit ratios), what its placements take, and what is free."""

    member_id: int
    structure_id: int
    hostname: str
    capacity: Demand | None
    effective: Demand | None
    allocated: Demand
    free: Demand | None

    def fits(self, demand: Demand) -> bool:
        free = self.free
        return free is not None and (
            free.cpus >= demand.cpus
            and free.memory_mb >= demand.memory_mb
            and free.disk_gb >= demand.disk_gb
        )

    def room_after(self, demand: Demand) -> float:
        """The free share of the tightest resource once ``demand`` is placed (higher: more
        room); -inf when the capacity is unknown."""
        if self.free is None or self.effective is None:
            return -math.inf
        shares = []
        for name in ("cpus", "memory_mb", "disk_gb"):
            total = getattr(self.effective, name)
            left = getattr(self.free, name) - getattr(demand, name)
            shares.append(left / total if total else (0.0 if left >= 0 else -1.0))
        return min(shares)


def check_demand(values: Mapping[str, Any], *, names: Mapping[str, str] | None = None) -> Demand:
    """A Demand from ``values`` (``cpus``, ``memory_mb``, ``disk_gb``; or the keys ``names``
    maps them to), each a whole number from 0; ``InvalidInput`` names the field."""
    names = names or {}
    found: dict[str, int] = {}
    for name in ("cpus", "memory_mb", "disk_gb"):
        key = names.get(name, name)
        value = values.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _LIMIT:
            raise InvalidInput(
                f"{key} must be a whole number from 0 to {_LIMIT}, got {value!r}", field=key
            )
        found[name] = value
    return Demand(**found)


def _effective(capacity: int, ratio: float) -> int:
    return math.floor(capacity * ratio + 1e-9)


async def member_rooms(session: AsyncSession, complex_: Complex) -> list[MemberRoom]:
    """Every member of the Complex with its capacity, allocation and free room, by
    hostname (one aggregate query)."""
    return (await member_rooms_by_complex(session, [complex_.id]))[0]


async def member_rooms_by_complex(
    session: AsyncSession, ids: Sequence[int]
) -> list[list[MemberRoom]]:
    """``member_rooms`` of each Complex named by id, in one query for them all (the
    members' own allocation sums: no placement row is read)."""
    rows = await session.execute(
        select(
            ComplexMember.complex_id,
            Complex.cpu_overcommit,
            Complex.memory_overcommit,
            Complex.disk_overcommit,
            ComplexMember.id,
            ComplexMember.structure_id,
            Structure.hostname,
            ComplexMember.cpu_count,
            ComplexMember.memory_mb,
            ComplexMember.disk_gb,
            ComplexMember.allocated_cpus,
            ComplexMember.allocated_memory_mb,
            ComplexMember.allocated_disk_gb,
        )
        .join(Complex, Complex.id == ComplexMember.complex_id)
        .join(Structure, Structure.id == ComplexMember.structure_id)
        .where(ComplexMember.complex_id.in_(ids))
        .order_by(Structure.hostname)
    )
    found: dict[int, list[MemberRoom]] = {key: [] for key in ids}
    for row in rows:
        complex_id, ratios = row[0], tuple(float(r) for r in row[1:4])
        member_id, structure_id, hostname, cpus, memory, disk = row[4:10]
        taken = Demand(int(row[10]), int(row[11]), int(row[12]))
        capacity = effective = free = None
        if cpus is not None and memory is not None and disk is not None:
            capacity = Demand(cpus, memory, disk)
            effective = Demand(
                *(_effective(c, r) for c, r in zip((cpus, memory, disk), ratios, strict=True))
            )
            free = Demand(
                effective.cpus - taken.cpus,
                effective.memory_mb - taken.memory_mb,
                effective.disk_gb - taken.disk_gb,
            )
        found[complex_id].append(
            MemberRoom(member_id, structure_id, hostname, capacity, effective, taken, free)
        )
    return [found[key] for key in ids]


def _wanted(demand: Demand) -> str:
    parts = [
        f"{demand.cpus} CPUs" if demand.cpus else "",
        f"{demand.memory_mb} MB memory" if demand.memory_mb else "",
        f"{demand.disk_gb} GB disk" if demand.disk_gb else "",
    ]
    return ", ".join(p for p in parts if p) or "nothing"


def _short(room: MemberRoom, demand: Demand) -> str:
    """What the member lacks for the demand, as what it has free."""
    assert room.free is not None
    free = room.free
    parts = []
    if free.cpus < demand.cpus:
        parts.append(f"{max(free.cpus, 0)} CPUs free")
    if free.memory_mb < demand.memory_mb:
        parts.append(f"{max(free.memory_mb, 0)} MB memory free")
    if free.disk_gb < demand.disk_gb:
        parts.append(f"{max(free.disk_gb, 0)} GB disk free")
    return ", ".join(parts)


async def _lock(session: AsyncSession, complex_: Complex) -> None:
    """Serialise placements on the Complex (SQLite writers already hold the write lock)."""
    query = select(Complex.id).where(Complex.id == complex_.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    await session.execute(query)


async def place(
    session: AsyncSession,
    foundation: Foundation,
    complex_: Complex,
    demand: Demand,
    *,
    pin: Structure | None = None,
) -> ComplexMember:
    """Place the Foundation on the member of the Complex with the most room (or on the
    pinned member) and record it, inside the caller's transaction. ``Conflict`` when no
    member has room (naming what is short); ``InvalidInput`` (field ``member``) for a pin to
    a Structure that is not a member."""
    await _lock(session, complex_)
    existing = await session.get(FoundationPlacement, foundation.id)
    if existing is not None:
        raise Conflict(
            f"foundation {foundation.locator!r} is already placed; release it first",
            field="complex",
        )
    rooms = await member_rooms(session, complex_)
    name = complex_.name
    if pin is not None:
        chosen = next((r for r in rooms if r.structure_id == pin.id), None)
        if chosen is None:
            members = ", ".join(r.hostname for r in rooms) or "none"
            raise InvalidInput(
                f"structure {pin.hostname!r} is not a member of complex {name!r} "
                f"(members: {members})",
                field="member",
            )
        if chosen.free is None:
            raise Conflict(
                f"member {chosen.hostname} of complex {name} has no known capacity "
                "(refreshComplexCapacity or setComplexMemberCapacity)",
                field="member",
            )
        if not chosen.fits(demand):
            raise Conflict(
                f"member {chosen.hostname} of complex {name} does not have "
                f"{_wanted(demand)} free: it has {_short(chosen, demand)}",
                field="member",
            )
    else:
        if not rooms:
            raise Conflict(f"complex {name} has no members", field="complex")
        known = [r for r in rooms if r.free is not None]
        if not known:
            raise Conflict(
                f"complex {name} has no member whose capacity is known "
                "(refreshComplexCapacity or setComplexMemberCapacity)",
                field="complex",
            )
        # rooms are in hostname order and max keeps the first of equals: ties go to it
        fitting = [r for r in known if r.fits(demand)]
        if not fitting:
            best = max(known, key=lambda r: r.room_after(demand))
            raise Conflict(
                f"complex {name} has no member with {_wanted(demand)} free: best is "
                f"{best.hostname} with {_short(best, demand)}",
                field="complex",
            )
        chosen = max(fitting, key=lambda r: r.room_after(demand))
    await _allocate(session, chosen.member_id, demand, 1)
    session.add(
        FoundationPlacement(
            foundation_id=foundation.id,
            complex_id=complex_.id,
            member_id=chosen.member_id,
            cpus=demand.cpus,
            memory_mb=demand.memory_mb,
            disk_gb=demand.disk_gb,
            pinned=pin is not None,
        )
    )
    await session.flush()
    return await session.get_one(ComplexMember, chosen.member_id)


async def release(session: AsyncSession, foundation: Foundation) -> None:
    """Forget where the Foundation is placed (nothing when it is not)."""
    placement = await session.get(FoundationPlacement, foundation.id)
    if placement is not None:
        demand = Demand(placement.cpus, placement.memory_mb, placement.disk_gb)
        await _allocate(session, placement.member_id, demand, -1)
        await session.delete(placement)
        await session.flush()


async def _allocate(session: AsyncSession, member_id: int, demand: Demand, sign: int) -> None:
    """Add (``sign`` 1) or take back (-1) a placement's demand in its member's sums."""
    await session.execute(
        update(ComplexMember)
        .where(ComplexMember.id == member_id)
        .values(
            allocated_cpus=ComplexMember.allocated_cpus + sign * demand.cpus,
            allocated_memory_mb=ComplexMember.allocated_memory_mb + sign * demand.memory_mb,
            allocated_disk_gb=ComplexMember.allocated_disk_gb + sign * demand.disk_gb,
        )
        .execution_options(synchronize_session="fetch")
    )


async def member_access(session: AsyncSession, foundation: Foundation) -> MemberAccess | None:
    """How to reach the member carrying the Foundation, or None when it is not placed."""
    row = (
        await session.execute(
            select(
                Complex.name,
                Complex.type,
                Structure.hostname,
                ComplexMember.endpoint,
                ComplexMember.username,
                ComplexMember.password,
            )
            .select_from(FoundationPlacement)
            .join(ComplexMember, ComplexMember.id == FoundationPlacement.member_id)
            .join(Complex, Complex.id == FoundationPlacement.complex_id)
            .join(Structure, Structure.id == ComplexMember.structure_id)
            .where(FoundationPlacement.foundation_id == foundation.id)
        )
    ).one_or_none()
    if row is None:
        return None
    return MemberAccess(*row)


async def host(
    session: AsyncSession,
    foundation: Foundation,
    *,
    foundation_type: str,
    complex_type: str,
    values: Mapping[str, Any],
    demand: Demand,
) -> ComplexMember:
    """Place a new hosted Foundation as its creator asked: ``values["complex"]`` names a
    Complex of ``complex_type``, ``values.get("member")`` the hostname of a member to pin it
    to. Errors name the field."""
    complex_name = values.get("complex")
    if not isinstance(complex_name, str) or not complex_name:
        raise InvalidInput(
            f"foundation type {foundation_type!r} is hosted on a {complex_type} complex: "
            "give its name as typeFields.complex",
            field="complex",
        )
    complex_ = (
        await session.execute(select(Complex).where(Complex.name == complex_name))
    ).scalar_one_or_none()
    if complex_ is None:
        raise InvalidInput(f"complex {complex_name!r} does not exist", field="complex")
    if complex_.type != complex_type:
        raise InvalidInput(
            f"complex {complex_name!r} is a {complex_.type} complex; foundation type "
            f"{foundation_type!r} is hosted on {complex_type} complexes",
            field="complex",
        )
    pin: Structure | None = None
    member = values.get("member")
    if member is not None:
        if not isinstance(member, str) or not member:
            raise InvalidInput(
                f"member must be the hostname of a member of complex {complex_name!r}, "
                f"got {member!r}",
                field="member",
            )
        _, pin = await member_by_hostname(session, complex_, member, field="member")
    return await place(session, foundation, complex_, demand, pin=pin)


async def member_by_hostname(
    session: AsyncSession, complex_: Complex, hostname: str, *, field: str
) -> tuple[ComplexMember, Structure]:
    """The member of the Complex whose Structure is called ``hostname``, and the Structure;
    ``InvalidInput`` (``field``) when there is none."""
    found = (
        await session.execute(
            select(ComplexMember, Structure)
            .join(Structure, Structure.id == ComplexMember.structure_id)
            .where(ComplexMember.complex_id == complex_.id, Structure.hostname == hostname)
        )
    ).one_or_none()
    if found is None:
        raise InvalidInput(
            f"{hostname!r} is not the hostname of a member of complex {complex_.name!r}",
            field=field,
        )
    member, structure = found
    return member, structure


@dataclass(frozen=True)
class Placed:
    """Where a Foundation is placed, as shown: the Complex's and member's names."""

    complex: str
    member: str
    demand: Demand
    pinned: bool


async def placements_by_foundation(
    session: AsyncSession, ids: Sequence[int]
) -> list[Placed | None]:
    """The placement of each Foundation named by id (None: not placed), in one query."""
    rows = await session.execute(
        select(
            FoundationPlacement.foundation_id,
            Complex.name,
            Structure.hostname,
            FoundationPlacement.cpus,
            FoundationPlacement.memory_mb,
            FoundationPlacement.disk_gb,
            FoundationPlacement.pinned,
        )
        .join(Complex, Complex.id == FoundationPlacement.complex_id)
        .join(ComplexMember, ComplexMember.id == FoundationPlacement.member_id)
        .join(Structure, Structure.id == ComplexMember.structure_id)
        .where(FoundationPlacement.foundation_id.in_(ids))
    )
    found = {
        fid: Placed(name, host, Demand(cpus, memory, disk), pinned)
        for fid, name, host, cpus, memory, disk, pinned in rows
    }
    return [found.get(key) for key in ids]
