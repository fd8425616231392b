"""Complexes: named groups of Structures, built when enough of their members are (the
state is derived, never set)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import Complex, ComplexMember, Site, Structure, complex_state
from contractor.services.common import added, get_by
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.validation import check_int, check_name


async def get_complex(session: AsyncSession, name: str) -> Complex:
    return await get_by(session, Complex, Complex.name, name, what="complex")


async def create_complex(
    session: AsyncSession,
    *,
    name: str,
    site: Site,
    description: str = "",
    built_percentage: int = 90,
) -> Complex:
    check_name(name, field="name", what="complex name")
    check_int(built_percentage, field="built_percentage", low=1, high=100)
    if (await session.execute(select(Complex.id).where(Complex.name == name))).first():
        raise Conflict(f"complex {name!r} already exists", field="name")
    complex_ = Complex(
        name=name, site_id=site.id, description=description, built_percentage=built_percentage
    )
    return await added(session, complex_)


async def add_complex_member(
    session: AsyncSession, complex_: Complex, structure: Structure
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
    member = ComplexMember(complex_id=complex_.id, structure_id=structure.id)
    session.add(member)
    return await config_changed(session, member)


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
    """Delete the complex; its memberships go with it (the member structures stay)."""
    await session.delete(complex_)
    config_sources_changed(session)
    await session.flush()
