"""Complexes: named groups of Structures, built when enough of their members are (the
state is derived, never set).

A Complex has a type (``COMPLEX_TYPES``: generic, libvirt, docker, simulated; any case is
accepted, the lower-case name stored) and over-commit ratios for CPUs, memory and disk (at
least 1). Its members have an ``endpoint`` checked per type (a libvirt URI, a Docker
endpoint), a ``username`` and a ``password`` (a secret: never returned, logged or
configured), and a capacity (null until read from the host or set by hand)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InUse, InvalidInput, InvalidState
from contractor.models import (
    COMPLEX_TYPES,
    Complex,
    ComplexMember,
    Foundation,
    FoundationPlacement,
    Job,
    Site,
    Structure,
    complex_state,
    utcnow,
)
from contractor.services import jobs
from contractor.services.common import UNSET, added, get_by, set_given
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.placement import member_by_hostname, member_rooms
from contractor.services.validation import check_description, check_int, check_name

# What a member's endpoint looks like, per Complex type (empty: the module's default).
_ENDPOINTS: dict[str, tuple[re.Pattern[str], str]] = {
    "libvirt": (
        re.compile(r"[a-z][a-z0-9]*(\+[a-z][a-z0-9]*)?://[^\s/]*(/[^\s]*)?\Z"),
        "a libvirt URI like qemu:///system or qemu+ssh://root@host3/system",
    ),
    "docker": (
        re.compile(r"(unix://(/[^\s]+)|(tcp|http|https|ssh)://[^\s/]+(/[^\s]*)?)\Z"),
        "a Docker endpoint like unix:///run/podman/podman.sock or tcp://host3:2375",
    ),
    "simulated": (
        re.compile(r"simulated://[A-Za-z0-9.\-]*(\?[A-Za-z0-9_=&]*)?\Z"),
        "simulated://NAME, optionally ?cpus=N&memory_mb=N&disk_gb=N",
    ),
    "generic": (re.compile(r"[^\s]*\Z"), "text without spaces"),
}
_OVERCOMMIT_LIMIT = 100.0
_CAPACITY_LIMIT = 2**31 - 1


async def get_complex(session: AsyncSession, name: str) -> Complex:
    return await get_by(session, Complex, Complex.name, name, what="complex")


def check_complex_type(value: Any, *, field: str = "type") -> str:
    """A known Complex type in any case, as its lower-case name."""
    folded = value.casefold() if isinstance(value, str) else None
    if folded not in COMPLEX_TYPES:
        raise InvalidInput(
            f"{field} must be one of {', '.join(COMPLEX_TYPES)}, got {value!r}", field=field
        )
    return folded


def check_overcommit(value: Any, *, field: str) -> float:
    """An over-commit ratio: a number from 1 to 100."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 1 <= value <= _OVERCOMMIT_LIMIT
    ):
        raise InvalidInput(
            f"{field} must be a number from 1 to {_OVERCOMMIT_LIMIT:g}, got {value!r}",
            field=field,
        )
    return float(value)


def check_endpoint(complex_type: str, value: Any, *, field: str = "endpoint") -> str:
    """A member's endpoint as its Complex's type wants it (empty: the module's default)."""
    pattern, what = _ENDPOINTS[complex_type]
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidInput(f"{field} must be text of at most 255 characters", field=field)
    if value and not pattern.match(value):
        raise InvalidInput(
            f"{field} of a {complex_type} complex's member must be {what}, got {value!r}",
            field=field,
        )
    return value


def _check_credential(value: Any, *, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        # never the value: it may be a password
        raise InvalidInput(f"{field} must be text of at most {limit} characters", field=field)
    return value


async def create_complex(
    session: AsyncSession,
    *,
    name: str,
    site: Site,
    description: str = "",
    built_percentage: int = 90,
    type: str = "generic",
    cpu_overcommit: float = 1.0,
    memory_overcommit: float = 1.0,
    disk_overcommit: float = 1.0,
) -> Complex:
    check_name(name, field="name", what="complex name")
    check_description(description)
    check_int(built_percentage, field="built_percentage", low=1, high=100)
    kind = check_complex_type(type)
    ratios = {
        field: check_overcommit(value, field=field)
        for field, value in (
            ("cpu_overcommit", cpu_overcommit),
            ("memory_overcommit", memory_overcommit),
            ("disk_overcommit", disk_overcommit),
        )
    }
    if (await session.execute(select(Complex.id).where(Complex.name == name))).first():
        raise Conflict(f"complex {name!r} already exists", field="name")
    complex_ = Complex(
        name=name,
        site_id=site.id,
        description=description,
        built_percentage=built_percentage,
        type=kind,
        **ratios,
    )
    return await added(session, complex_)


async def update_complex(
    session: AsyncSession,
    complex_: Complex,
    *,
    description: str = UNSET,
    built_percentage: int = UNSET,
    type: str = UNSET,
    cpu_overcommit: float = UNSET,
    memory_overcommit: float = UNSET,
    disk_overcommit: float = UNSET,
) -> Complex:
    """Change the given fields. The type changes only while nothing is placed on the
    Complex and its members' endpoints suit the new type; lowering a ratio below what is
    placed is refused (it would over-fill a member)."""
    checked: dict[str, Any] = {}
    if description is not UNSET:
        checked["description"] = check_description(description)
    if built_percentage is not UNSET:
        checked["built_percentage"] = check_int(
            built_percentage, field="built_percentage", low=1, high=100
        )
    for field, value in (
        ("cpu_overcommit", cpu_overcommit),
        ("memory_overcommit", memory_overcommit),
        ("disk_overcommit", disk_overcommit),
    ):
        if value is not UNSET:
            checked[field] = check_overcommit(value, field=field)
    if type is not UNSET:
        kind = check_complex_type(type)
        if kind != complex_.type:
            placed = await _placed_count(session, complex_)
            if placed:
                raise InUse(
                    f"complex {complex_.name!r} carries {placed} placed foundations; its "
                    "type cannot change",
                    field="type",
                )
            endpoints = await session.execute(
                select(ComplexMember.endpoint).where(ComplexMember.complex_id == complex_.id)
            )
            for (endpoint,) in endpoints:
                try:
                    check_endpoint(kind, endpoint)
                except InvalidInput:
                    what = _ENDPOINTS[kind][1]
                    raise InvalidInput(
                        f"complex {complex_.name!r} has a member at {endpoint!r}, which is not "
                        f"{what}; change the members' endpoints before the type",
                        field="type",
                    ) from None
        checked["type"] = kind
    old = {field: getattr(complex_, field) for field in checked}
    for field, value in checked.items():
        setattr(complex_, field, value)
    if any(checked[f] < old[f] for f in _RATIOS if f in checked):
        await _refuse_overfull(session, complex_, old)
    return await config_changed(session, complex_)


_RATIOS = ("cpu_overcommit", "memory_overcommit", "disk_overcommit")


async def _placed_count(session: AsyncSession, complex_: Complex) -> int:
    query = select(func.count()).where(FoundationPlacement.complex_id == complex_.id)
    return int((await session.execute(query)).scalar_one())


async def _refuse_overfull(session: AsyncSession, complex_: Complex, old: dict[str, Any]) -> None:
    """Lowered ratios must still hold every member's placements; else they are put back."""
    await session.flush()  # the rooms are computed with the ratios the database holds
    for room in await member_rooms(session, complex_):
        free = room.free
        if free is None:
            continue
        short = [
            label
            for label, left in (
                ("CPUs", free.cpus),
                ("memory", free.memory_mb),
                ("disk", free.disk_gb),
            )
            if left < 0
        ]
        if short:
            for field, value in old.items():
                setattr(complex_, field, value)
            raise InUse(
                f"member {room.hostname} of complex {complex_.name!r} would have more "
                f"{' and '.join(short)} placed than the lowered over-commit allows",
                field=next(f for f in _RATIOS if f in old),
            )


async def add_complex_member(
    session: AsyncSession,
    complex_: Complex,
    structure: Structure,
    *,
    endpoint: str = "",
    username: str = "",
    password: str = "",
) -> ComplexMember:
    query = (
        select(Complex.name)
        .join(ComplexMember, ComplexMember.complex_id == Complex.id)
        .where(ComplexMember.structure_id == structure.id)
    )
    current = (await session.execute(query)).scalar_one_or_none()
    if current is not None:
        raise Conflict(
            f"structure {structure.hostname!r} is already a member of complex {current!r}",
            field="structure",
        )
    member = ComplexMember(
        complex_id=complex_.id,
        structure_id=structure.id,
        endpoint=check_endpoint(complex_.type, endpoint),
        username=_check_credential(username, field="username", limit=64),
        password=_check_credential(password, field="password", limit=255),
    )
    session.add(member)
    return await config_changed(session, member)


async def get_member(
    session: AsyncSession, complex_: Complex, hostname: str, *, field: str = "member"
) -> ComplexMember:
    """The member of the Complex whose Structure is called ``hostname``."""
    member, _ = await member_by_hostname(session, complex_, hostname, field=field)
    return member


async def update_complex_member(
    session: AsyncSession,
    complex_: Complex,
    member: ComplexMember,
    *,
    endpoint: str = UNSET,
    username: str = UNSET,
    password: str = UNSET,
) -> ComplexMember:
    set_given(
        member,
        endpoint=(endpoint, lambda v: check_endpoint(complex_.type, v)),
        username=(username, lambda v: _check_credential(v, field="username", limit=64)),
        password=(password, lambda v: _check_credential(v, field="password", limit=255)),
    )
    return await config_changed(session, member)


def check_capacity(values: dict[str, Any], *, what: str) -> dict[str, int]:
    """``cpus``, ``memory_mb`` and ``disk_gb``, whole numbers from 0; ``InvalidInput`` names
    the field and ``what`` (the member)."""
    found: dict[str, int] = {}
    for name in ("cpus", "memory_mb", "disk_gb"):
        value = values.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= _CAPACITY_LIMIT
        ):
            raise InvalidInput(
                f"{what}: {name} must be a whole number from 0 to {_CAPACITY_LIMIT}, got {value!r}",
                field=name,
            )
        found[name] = value
    return found


async def set_member_capacity(
    session: AsyncSession, member: ComplexMember, *, cpus: int, memory_mb: int, disk_gb: int
) -> ComplexMember:
    """Record the member's capacity (read from the host, or given by an operator whose host
    nothing can read)."""
    checked = check_capacity(
        {"cpus": cpus, "memory_mb": memory_mb, "disk_gb": disk_gb},
        what=f"member {member.id}",
    )
    member.cpu_count = checked["cpus"]
    member.memory_mb = checked["memory_mb"]
    member.disk_gb = checked["disk_gb"]
    member.capacity_read_at = utcnow()
    await session.flush()
    return member


async def remove_complex_member(
    session: AsyncSession, complex_: Complex, structure: Structure
) -> None:
    member = (
        await session.execute(
            select(ComplexMember).where(
                ComplexMember.complex_id == complex_.id,
                ComplexMember.structure_id == structure.id,
            )
        )
    ).scalar_one_or_none()
    if member is None:
        raise InvalidInput(
            f"structure {structure.hostname!r} is not a member of complex {complex_.name!r}",
            field="structure",
        )
    carried = (
        (
            await session.execute(
                select(Foundation.locator)
                .join(FoundationPlacement, FoundationPlacement.foundation_id == Foundation.id)
                .where(FoundationPlacement.member_id == member.id)
                .order_by(Foundation.locator)
                .limit(6)
            )
        )
        .scalars()
        .all()
    )
    if carried:
        shown = ", ".join(carried[:5]) + (", ..." if len(carried) > 5 else "")
        raise InUse(
            f"member {structure.hostname!r} of complex {complex_.name!r} carries foundations "
            f"({shown}); delete them first",
            field="structure",
        )
    await session.delete(member)
    config_sources_changed(session)
    await session.flush()


async def complex_states(session: AsyncSession, complexes: Sequence[Complex]) -> dict[int, str]:
    """The derived state of each complex, from one aggregate query."""
    ids = [c.id for c in complexes]
    rows = await session.execute(
        select(
            ComplexMember.complex_id,
            func.count(),
            func.sum(case((Structure.built_at.is_not(None), 1), else_=0)),
        )
        .join(Structure, Structure.id == ComplexMember.structure_id)
        .where(ComplexMember.complex_id.in_(ids))
        .group_by(ComplexMember.complex_id)
    )
    counts = {cid: (int(total), int(built or 0)) for cid, total, built in rows}
    return {c.id: complex_state(*counts.get(c.id, (0, 0)), c.built_percentage) for c in complexes}


async def delete_complex(session: AsyncSession, complex_: Complex) -> None:
    """Delete the complex; its memberships go with it (the member structures stay). A
    Complex carrying placed foundations is not deleted."""
    placed = await _placed_count(session, complex_)
    if placed:
        raise InUse(
            f"complex {complex_.name!r} carries {placed} placed foundations; delete them first",
            field="name",
        )
    await session.delete(complex_)
    config_sources_changed(session)
    await session.flush()


# -- capacity ------------------------------------------------------------------------------

# The subcontractor module that reads a member's capacity, per Complex type (its function
# ``host_capacity`` answers ``{"cpus", "memory_mb", "disk_gb"}``).
CAPACITY_MODULES = {"libvirt": "libvirt", "docker": "docker", "simulated": "simulated"}
# The built-in utility script a refresh runs on each member Structure.
CAPACITY_SCRIPT_NAME = "refresh_capacity"
CAPACITY_SCRIPT = "# read this host's capacity for its Complex\ncomplex.refresh_capacity()\n"


async def refresh_capacity(
    session: AsyncSession, complex_: Complex, *, creator: str, member: str | None = None
) -> list[Job]:
    """Start, for each member (or the one ``member`` names), a job reading its capacity
    from the host: a task for the Complex type's module whose answer is recorded on the
    member. Members must be built and free of other jobs; nothing is started otherwise."""
    module = CAPACITY_MODULES.get(complex_.type)
    if module is None:
        raise InvalidInput(
            f"complex {complex_.name!r} is {complex_.type}: no module reads its members' "
            "capacity; set it with setComplexMemberCapacity",
            field="complex",
        )
    query = (
        select(Structure)
        .join(ComplexMember, ComplexMember.structure_id == Structure.id)
        .where(ComplexMember.complex_id == complex_.id)
        .order_by(Structure.hostname)
    )
    if member is not None:
        query = query.where(Structure.hostname == member)
    structures = list((await session.execute(query)).scalars())
    if not structures:
        if member is not None:
            await get_member(session, complex_, member)  # raises, naming the member
        raise InvalidState(f"complex {complex_.name!r} has no members")
    unbuilt = [s.hostname for s in structures if s.state != "built"]
    if unbuilt:
        raise InvalidState(
            f"complex {complex_.name!r}: members {', '.join(unbuilt)} are not built; their "
            "capacity cannot be read (set it with setComplexMemberCapacity)"
        )
    return [
        await jobs.create_job(
            session,
            target=structure,
            script_name=CAPACITY_SCRIPT_NAME,
            creator=creator,
            source=CAPACITY_SCRIPT,
        )
        for structure in structures
    ]
