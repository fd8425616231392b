"""The ``complex`` module of a job's script: ``complex.refresh_capacity()``, which a
Complex member's capacity refresh runs (``services.complexes.refresh_capacity``).

The call is a task for the Complex type's subcontractor module (``libvirt``, ``docker``,
``simulated``), function ``host_capacity``, with the member's ``endpoint``, ``username`` and
``password`` (the password only inside the task's parameters, masked wherever they are
shown); its answer, ``{"cpus", "memory_mb", "disk_gb"}`` as whole numbers, is recorded on
the member when the step is written. An answer that is not is a job error naming the
member (reset the job to ask again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall
from contractor.models import Complex, ComplexMember, Structure, utcnow
from contractor.services.complexes import CAPACITY_MODULES, check_capacity
from tscript import ExecutionError, ExternalFunction, FunctionFactory

__all__ = ["CapacityCall", "complex_membership", "record_capacity", "refresh_capacity_function"]


async def complex_membership(
    session: AsyncSession, structure: Structure
) -> tuple[ComplexMember | None, Complex | None]:
    """The structure's membership of a Complex, and the Complex (or two Nones)."""
    found = (
        await session.execute(
            select(ComplexMember, Complex)
            .join(Complex, Complex.id == ComplexMember.complex_id)
            .where(ComplexMember.structure_id == structure.id)
        )
    ).one_or_none()
    return (found[0], found[1]) if found is not None else (None, None)


async def record_capacity(
    session: AsyncSession, member: ComplexMember, capacity: dict[str, int]
) -> None:
    """Write the capacity a refresh read (checked already) on the member."""
    member.cpu_count, member.memory_mb = capacity["cpus"], capacity["memory_mb"]
    member.disk_gb, member.capacity_read_at = capacity["disk_gb"], utcnow()
    await session.flush()


class CapacityCall(RemoteCall):
    """``host_capacity`` on the member; its value is the checked capacity, recorded."""

    def __init__(
        self,
        what: str,
        connection: Callable[[], dict[str, Any]],
        record: Callable[[dict[str, int]], None],
    ) -> None:
        super().__init__("host_capacity", lambda _: connection(), label=f"read capacity of {what}")
        self.what = what
        self.record = record

    @property
    def value(self) -> Any:
        try:
            checked = check_capacity(self.result or {}, what=self.what)
        except InvalidInput as error:
            raise ExecutionError(f"the capacity answer for {error.message}") from None
        self.record(checked)
        return checked


def refresh_capacity_function(
    hostname: str | None,
    complex_: Complex | None,
    member: ComplexMember | None,
    record: Callable[[dict[str, int]], None],
) -> FunctionFactory:
    """``complex.refresh_capacity()`` for a job on ``hostname`` (a Structure), which is
    ``member`` of ``complex_`` or of none."""

    def factory() -> tuple[str, ExternalFunction]:
        if complex_ is None or member is None:
            raise ExecutionError(f"structure {hostname} is not a member of a complex")
        module = CAPACITY_MODULES.get(complex_.type)
        if module is None:
            raise ExecutionError(
                f"complex {complex_.name} is {complex_.type}: no module reads its members' capacity"
            )
        endpoint, username, password = member.endpoint, member.username, member.password

        def connection() -> dict[str, Any]:
            return {"endpoint": endpoint, "username": username, "password": password}

        what = f"member {hostname} of complex {complex_.name}"
        return (module, CapacityCall(what, connection, record))

    return factory
