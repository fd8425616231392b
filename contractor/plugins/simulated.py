"""The ``simulated`` foundation type: a machine that exists only in Contractor.

It lets demos and tests run whole create/destroy jobs with no hardware: its TScript power and
boot functions, ``destroy()`` and ``get_interface_map()`` are tasks for a ``simulated``
subcontractor module, which answers after the foundation's ``delay_seconds`` and fails with its
``fail_likelihood`` (percent).

``simulated-vm`` is the same machine hosted on a ``simulated`` Complex (a hosted type): it is
created with ``complex`` (and optionally ``member``) and its demand, ``cpus``, ``memory_mb``
and ``disk_gb`` (kept in its placement), and its tasks name the member carrying it
(``host``), so demos and tests show placement without libvirt or podman.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import destroy_call, interface_map_call, power_functions
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins import FoundationType, JobAccess
from contractor.plugins.hosted import HostedFoundationType
from contractor.services.placement import Demand, check_demand
from tscript import FunctionFactory


class SimulatedFoundation(Foundation):
    __tablename__ = "simulated_foundation"
    __table_args__ = (
        CheckConstraint("fail_likelihood BETWEEN 0 AND 100", name="fail_likelihood_percent"),
        CheckConstraint("delay_seconds >= 0", name="delay_not_negative"),
        CheckConstraint("power_state IN ('off', 'on')", name="power_state_known"),
    )

    id: Mapped[int] = key_of("foundation")
    power_state: Mapped[str] = mapped_column(String(3), default="off")
    delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    fail_likelihood: Mapped[int] = mapped_column(Integer, default=0)

    __mapper_args__ = {"polymorphic_identity": "simulated"}


class SimulatedVmFoundation(SimulatedFoundation):
    """A simulated machine on a member of a ``simulated`` Complex (its placement says
    which); it shares the ``simulated`` type's table."""

    __mapper_args__ = {"polymorphic_identity": "simulated-vm"}


class SimulatedFoundationType(FoundationType):
    name = "simulated"
    model = SimulatedFoundation
    class_list: ClassVar[tuple[str, ...]] = ("Metal", "VM", "Container", "Switch", "Simulated")
    description = "a machine simulated inside Contractor, for demos and tests"
    fields: ClassVar[tuple[str, ...]] = ("delay_seconds", "fail_likelihood")
    settable_fields = ("delay_seconds", "fail_likelihood")

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        for name, low, high in (("delay_seconds", 0, 86400), ("fail_likelihood", 0, 100)):
            if name in checked:
                value = checked[name]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not low <= value <= high
                ):
                    raise InvalidInput(
                        f"{name} must be a whole number from {low} to {high}, got {value!r}",
                        field=name,
                    )
        return checked

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, SimulatedFoundation)
        return {"_simulated_power_state": foundation.power_state}

    def tscript_functions(self, foundation: Foundation) -> Mapping[str, FunctionFactory]:
        connection = _connection(foundation)
        functions = power_functions("simulated", connection, soft_off=False)
        functions["destroy"] = destroy_call("simulated", connection)
        return functions

    def interface_map_reader(
        self, foundation: Foundation, locations: Sequence[str]
    ) -> FunctionFactory | None:
        return interface_map_call("simulated", _connection(foundation), locations)


DEMAND_FIELDS = ("cpus", "memory_mb", "disk_gb")


class SimulatedVmFoundationType(HostedFoundationType, SimulatedFoundationType):
    name = "simulated-vm"
    model = SimulatedVmFoundation
    class_list: ClassVar[tuple[str, ...]] = ("VM", "Simulated")
    description = "a virtual machine simulated on a member of a simulated Complex"
    fields: ClassVar[tuple[str, ...]] = ("delay_seconds", "fail_likelihood", *DEMAND_FIELDS)
    complex_type = "simulated"
    placement_fields = (*HostedFoundationType.placement_fields, *DEMAND_FIELDS)

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        check_demand({k: v for k, v in checked.items() if k in DEMAND_FIELDS})
        return checked

    def demand(self, foundation: Foundation, values: Mapping[str, Any]) -> Demand:
        return check_demand(values)

    def job_functions(
        self, foundation: Foundation, job: JobAccess
    ) -> Mapping[str, FunctionFactory]:
        member = job.member
        base = _connection(foundation)

        def connection() -> dict[str, Any]:
            if member is None:
                raise ValueError(
                    f"foundation {foundation.locator!r} is not placed on a member of a complex"
                )
            return {**base(), "host": member.structure}

        functions = power_functions("simulated", connection, soft_off=False)
        functions["destroy"] = destroy_call("simulated", connection)
        return functions


def _connection(foundation: Foundation) -> Callable[[], dict[str, Any]]:
    assert isinstance(foundation, SimulatedFoundation)
    locator = foundation.locator
    delay, fail = foundation.delay_seconds, foundation.fail_likelihood
    return lambda: {"locator": locator, "delay_seconds": delay, "fail_likelihood": fail}
