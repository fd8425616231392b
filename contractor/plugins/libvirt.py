"""The ``libvirt`` foundation type (the original's ``LibVirt``): a virtual machine on a libvirt
host, the member of a ``libvirt`` Complex that placement picked for it, run by the
subcontractor's ``libvirt`` module.

The machine's shape is the foundation's own: ``cpu_count``, ``memory_mb``, ``disk_gb`` (one
disk, a volume in the storage pool ``pool``) and where its NICs go, a libvirt ``network`` or a
host ``bridge`` (exactly one), one NIC for each of the foundation's interfaces; the shape is
also what the foundation takes of its member (its demand). The member's endpoint (a libvirt
URI) and credentials come from the placement; the password travels only inside tasks.

``foundation.create()`` defines the domain (not started) with a uuid made of the foundation
and the job, so a task sent again (a lost answer, a subcontractor killed mid-call, a job
reset) finds the domain it defined before instead of defining a second one; its value is
``{uuid, state, interface_list}`` (for ``set_interface_macs( interface_list=... )``) and the
uuid is recorded on the foundation (``domain_uuid``) as the answer is taken. ``destroy()``
stops the domain, undefines it, deletes its volumes and forgets the uuid. ``power_on``,
``power_off`` (an ACPI shutdown, forced off after the module's timeout), ``power_state``,
``wait_for_poweroff``, ``set_power( state=... )``, ``set_boot_device( device=network|disk )``
and ``get_interface_map()`` (the MACs libvirt chose, by physical location, for
``set_interface_macs( interface_map=... )``, so the boot path knows the machine) work on the
defined domain.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall, interface_map_call, power_functions
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins import JobAccess
from contractor.plugins.connections import Connection, member_connection, with_recorded_id
from contractor.plugins.hosted import HostedFoundationType
from contractor.services.placement import Demand
from tscript import ExternalFunction, FunctionFactory, ParameterError

__all__ = ["LibvirtFoundation", "LibvirtFoundationType", "domain_uuid"]

MODULE = "libvirt"
NAME = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]{0,62}\Z")
DEVICE = re.compile(r"[A-Za-z0-9.\-_:]{1,64}\Z")
DOMAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]{0,62}\Z")  # the original's rule, bounded
LIMITS = {"cpu_count": (1, 256), "memory_mb": (64, 4 * 2**20), "disk_gb": (1, 65536)}
BOOT_DEVICES = ("network", "pxe", "disk")
POWER_STATES = ("on", "off", "soft_off")
_NAMESPACE = uuid.UUID("6f1b2c1e-5d0a-4e8c-9a51-3c0d7c4b9e21")


class LibvirtFoundation(Foundation):
    __tablename__ = "libvirt_foundation"

    id: Mapped[int] = key_of("foundation")
    cpu_count: Mapped[int] = mapped_column(Integer, default=1)
    memory_mb: Mapped[int] = mapped_column(Integer, default=1024)
    disk_gb: Mapped[int] = mapped_column(Integer, default=10)  # one disk
    pool: Mapped[str] = mapped_column(String(64), default="default")
    network: Mapped[str | None] = mapped_column(String(64))
    bridge: Mapped[str | None] = mapped_column(String(64))
    domain_uuid: Mapped[str | None] = mapped_column(String(36), unique=True)

    __mapper_args__ = {"polymorphic_identity": "libvirt"}


def domain_uuid(locator: str, foundation_id: int, job_id: int | None) -> str:
    """The uuid of the domain a foundation's create job defines: the same for every attempt
    of one job, another for the next create."""
    return str(uuid.uuid5(_NAMESPACE, f"{locator}/{foundation_id}/{job_id or 0}"))


DEFAULTS = {"cpu_count": 1, "memory_mb": 1024, "disk_gb": 10}


class LibvirtFoundationType(HostedFoundationType):
    name = "libvirt"
    model = LibvirtFoundation
    class_list = ("VM", "LibVirt")
    description = "a virtual machine on a libvirt host (QEMU/KVM)"
    fields = ("cpu_count", "memory_mb", "disk_gb", "pool", "network", "bridge", "domain_uuid")
    complex_type = "libvirt"
    # the shape is what the placement counted on the member
    fixed_fields = ("cpu_count", "memory_mb", "disk_gb")

    def demand(self, foundation: Foundation, values: Mapping[str, Any]) -> Demand:
        """What the VM takes of its host: its shape (the defaults where none is given)."""

        def of(name: str) -> int:
            value = values.get(name)
            if value is None:
                value = getattr(foundation, name, None)
            return int(value if value is not None else DEFAULTS[name])

        return Demand(cpus=of("cpu_count"), memory_mb=of("memory_mb"), disk_gb=of("disk_gb"))

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        for name, (low, high) in LIMITS.items():
            value = checked.get(name)
            if name in checked and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
            ):
                raise InvalidInput(
                    f"{name} must be a whole number from {low} to {high}, got {value!r}",
                    field=name,
                )
        if "pool" in checked and (
            not isinstance(checked["pool"], str) or not NAME.match(checked["pool"])
        ):
            raise InvalidInput(
                f"pool must be a storage pool name, got {checked['pool']!r}", field="pool"
            )
        for name in ("network", "bridge"):
            value = checked.get(name)
            if value is not None and (not isinstance(value, str) or not DEVICE.match(value)):
                raise InvalidInput(f"{name} must be a {name} name, got {value!r}", field=name)
        if checked.get("network") is not None and checked.get("bridge") is not None:
            raise InvalidInput("give a network or a bridge for the NICs, not both", field="bridge")
        value = checked.get("domain_uuid")
        if value is not None:
            try:
                checked["domain_uuid"] = str(uuid.UUID(value))
            except (ValueError, TypeError, AttributeError):
                raise InvalidInput(
                    f"domain_uuid must be a uuid, got {value!r}", field="domain_uuid"
                ) from None
        return checked

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, LibvirtFoundation)
        return {"_libvirt_uuid": foundation.domain_uuid}

    def tscript_values(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, LibvirtFoundation)
        return {
            "domain_uuid": foundation.domain_uuid,
            "cpu_count": foundation.cpu_count,
            "memory_mb": foundation.memory_mb,
            "disk_gb": foundation.disk_gb,
        }

    def job_functions(
        self, foundation: Foundation, job: JobAccess
    ) -> Mapping[str, FunctionFactory]:
        assert isinstance(foundation, LibvirtFoundation)
        connection = member_connection(foundation, job, "libvirt")
        functions = power_functions(MODULE, _with_domain(foundation, connection))
        functions["set_boot_device"] = _set_boot_device(foundation, connection)
        functions["set_power"] = _set_power(foundation, connection)
        functions["create"] = _create(foundation, job, connection)
        functions["destroy"] = _destroy(foundation, job, connection)
        # the member is known to a job only, so this is a job function, not the type's
        # interface_map_reader
        functions["get_interface_map"] = interface_map_call(
            MODULE, _with_domain(foundation, connection), job.interface_locations
        )
        return functions


def _with_domain(foundation: LibvirtFoundation, connection: Connection) -> Connection:
    return with_recorded_id(connection, foundation, "domain_uuid", "domain", key="uuid")


def domain_shape(foundation: LibvirtFoundation, names: Sequence[str]) -> dict[str, Any]:
    """The ``domain`` of the create task, checked; ``ValueError`` names the foundation and
    the field."""
    locator = foundation.locator
    if not DOMAIN_NAME.match(locator):
        raise ValueError(
            f"foundation {locator!r}: the locator is the domain's name and must start with a "
            "letter and hold only letters, digits, '.', '-' and '_'"
        )
    if (foundation.network is None) == (foundation.bridge is None):
        raise ValueError(
            f"foundation {locator!r}: set exactly one of network and bridge (where its NICs go)"
        )
    if not names:
        raise ValueError(f"foundation {locator!r} has no interfaces: its blueprint names none")
    shape: dict[str, Any] = {
        "name": locator,
        "cpu_count": foundation.cpu_count,
        "memory_mb": foundation.memory_mb,
        "disks": [foundation.disk_gb],
        "pool": foundation.pool,
        "interfaces": list(names),
        "boot_order": ["network", "disk"],
    }
    if foundation.network is not None:
        shape["network"] = foundation.network
    else:
        shape["bridge"] = foundation.bridge
    return shape


def _create(
    foundation: LibvirtFoundation, job: JobAccess, connection: Connection
) -> FunctionFactory:
    locator, names = foundation.locator, list(job.interface_names)
    wanted = foundation.domain_uuid or domain_uuid(locator, foundation.id, job.job_id)

    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        return {
            "connection": {**connection(), "uuid": wanted},
            "domain": domain_shape(foundation, names),
        }

    def value(result: dict[str, Any]) -> dict[str, Any]:
        found = result.get("interface_map")
        if result.get("uuid") != wanted or not isinstance(found, dict):
            raise ValueError(f"foundation {locator!r}: the create answer is malformed")
        missing = [name for name in names if not isinstance(found.get(name), str)]
        if missing:
            raise ValueError(f"foundation {locator!r}: the answer has no MAC for {missing[0]}")
        job.record({"domain_uuid": wanted})
        return {
            "uuid": wanted,
            "state": result.get("state"),
            "interface_list": [{"name": name, "mac": found[name]} for name in names],
        }

    def factory() -> tuple[str, ExternalFunction]:
        return (MODULE, RemoteCall("create", parameters, label="define domain", value=value))

    return factory


def _destroy(
    foundation: LibvirtFoundation, job: JobAccess, connection: Connection
) -> FunctionFactory:
    def value(result: dict[str, Any]) -> bool:
        if result.get("state") != "gone":
            raise ValueError(f"foundation {foundation.locator!r}: the domain is not gone")
        job.record({"domain_uuid": None})
        return True

    def factory() -> tuple[str, ExternalFunction]:
        return (
            MODULE,
            RemoteCall(
                "destroy",
                lambda _: {"connection": _with_domain(foundation, connection)()},
                label="destroy domain",
                value=value,
            ),
        )

    return factory


def _set_boot_device(foundation: LibvirtFoundation, connection: Connection) -> FunctionFactory:
    def parameters(given: dict[str, Any]) -> dict[str, Any]:
        device = given["device"]
        if not isinstance(device, str) or device.lower() not in BOOT_DEVICES:
            raise ParameterError("device", f"must be network or disk, got {device!r}")
        return {"connection": _with_domain(foundation, connection)(), "device": device.lower()}

    def factory() -> tuple[str, ExternalFunction]:
        return (
            MODULE,
            RemoteCall(
                "set_boot_device",
                parameters,
                label="set boot device",
                accepts={"device": ...},
                value=lambda _: True,
            ),
        )

    return factory


def _set_power(foundation: LibvirtFoundation, connection: Connection) -> FunctionFactory:
    def parameters(given: dict[str, Any]) -> dict[str, Any]:
        state = given["state"]
        if state not in POWER_STATES:
            raise ParameterError("state", f"must be on, off or soft_off, got {state!r}")
        return {"connection": _with_domain(foundation, connection)(), "state": state}

    def factory() -> tuple[str, ExternalFunction]:
        call: RemoteCall

        def reached(result: dict[str, Any]) -> bool:
            want = "off" if call.parameters["state"] == "soft_off" else call.parameters["state"]
            return bool(result.get("state") == want)

        call = RemoteCall(
            "set_power",
            parameters,
            label="set power",
            accepts={"state": ...},
            until=reached,
            interval=1.0,
            max_attempts=5,
        )
        return (MODULE, call)

    return factory
