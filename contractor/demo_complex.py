"""The demo's Complex: simulated hypervisors carrying simulated VMs (``contractor demo``).

In site demo-east, a ``simulated`` Complex ``demo-vmhosts`` (CPUs over-committed twice) has
two hosts, ``east-xen01`` and ``east-xen02`` (Linux Structures on simulated Foundations),
whose capacity is set by hand as an operator would for hosts nothing can read (on a built
host, ``refreshComplexCapacity`` reads it through the subcontractor's ``simulated``
module from the endpoint's numbers). Three ``simulated-vm`` Foundations, ``east-vm01`` to
``east-vm03``, are placed on the host with the most room as they are created, each carrying
an ``east-wwwNN`` Structure of the ``demo-app`` blueprint; all of them are built by the
demo's jobs like the rest, so the example queries show placement and usage without libvirt
or podman.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.demo_inventory import found_or_created
from contractor.errors import InvalidInput
from contractor.models import (
    Complex,
    Foundation,
    FoundationBluePrint,
    Site,
    Structure,
    StructureBluePrint,
)
from contractor.services import blueprint as bps
from contractor.services import building, complexes, interfaces, jobs

__all__ = ["APP_BLUEPRINT", "COMPLEX", "EXAMPLES", "prepare_complex"]

COMPLEX = "demo-vmhosts"
VM_BLUEPRINT = "demo-vm"
APP_BLUEPRINT = "demo-app"
# host: (CPUs, memory MB, disk GB)
HOSTS = {"east-xen01": (16, 65536, 500), "east-xen02": (8, 32768, 250)}
# VM: (CPUs, memory MB, disk GB)
VMS = {"east-vm01": (4, 8192, 40), "east-vm02": (2, 4096, 20), "east-vm03": (8, 16384, 80)}
EXAMPLES = [
    (
        "How full is each host of the demo's Complex?",
        f'{{ complex(name: "{COMPLEX}") {{ type cpuOvercommit free {{ cpus memoryMb }} '
        "memberships { hostname capacity { cpus memoryMb } allocated { cpus memoryMb } "
        "free { cpus memoryMb } } } }",
    ),
    (
        "What do the demo's apps use of the Complexes?",
        f'{{ resourcesUsed(blueprint: "{APP_BLUEPRINT}") '
        "{ complex { name } cpus memoryMb diskGb foundations } }",
    ),
]


async def _blueprints(
    session: AsyncSession, linux: StructureBluePrint
) -> tuple[FoundationBluePrint, StructureBluePrint]:
    async def create_vm() -> FoundationBluePrint:
        return await bps.create_foundation_blueprint(
            session,
            name=VM_BLUEPRINT,
            description="A VM simulated on a host of the demo's Complex",
            parents=[await bps.get_foundation_blueprint(session, "foundation-base")],
            foundation_types=["simulated-vm"],
        )

    vm, _ = await found_or_created(
        lambda: bps.get_foundation_blueprint(session, VM_BLUEPRINT), create_vm
    )
    app, _ = await found_or_created(
        lambda: bps.get_structure_blueprint(session, APP_BLUEPRINT),
        lambda: bps.create_structure_blueprint(
            session,
            name=APP_BLUEPRINT,
            description="A Linux app server on a demo VM",
            parents=[linux],
            foundation_blueprints=[vm],
        ),
    )
    return vm, app


async def _complex(session: AsyncSession, site: Site) -> Complex:
    found, _ = await found_or_created(
        lambda: complexes.get_complex(session, COMPLEX),
        lambda: complexes.create_complex(
            session,
            name=COMPLEX,
            site=site,
            description="Simulated hypervisors for the demo's VMs",
            type="simulated",
            cpu_overcommit=2.0,
        ),
    )
    return found


async def _foundation(
    session: AsyncSession,
    locator: str,
    site: Site,
    blueprint: FoundationBluePrint,
    type: str,
    fields: dict[str, Any],
) -> tuple[Foundation, bool]:
    """Foundation ``locator``, created when there is none; and whether it was created."""
    return await found_or_created(
        lambda: building.get_foundation(session, locator),
        lambda: building.create_foundation(
            session, locator=locator, site=site, blueprint=blueprint, type=type, fields=fields
        ),
    )


async def _structure(
    session: AsyncSession,
    site: Site,
    foundation: Foundation,
    blueprint: StructureBluePrint,
    hostname: str,
    role: str,
) -> Structure:
    found = await building.foundation_structure(session, foundation)
    if found is not None:
        return found
    return await building.create_structure(
        session,
        hostname=hostname,
        site=site,
        blueprint=blueprint,
        foundation=foundation,
        config_values={"role": role},
    )


async def prepare_complex(
    session: AsyncSession,
    site: Site,
    machine: FoundationBluePrint,
    linux: StructureBluePrint,
    fields: dict[str, int],
) -> list[Foundation | Structure]:
    """The demo's Complex, hosts and placed VMs (reusing what exists by name); the targets
    to build. ``fields``: the simulated machines' delay and failure rate."""
    vm_blueprint, app_blueprint = await _blueprints(session, linux)
    complex_ = await _complex(session, site)
    targets: list[Foundation | Structure] = []
    for index, (hostname, (cpus, memory, disk)) in enumerate(HOSTS.items(), start=1):
        locator = hostname.replace("-xen", "-xenm")
        foundation, created = await _foundation(
            session, locator, site, machine, "simulated", fields
        )
        if created:
            await interfaces.add_interface(
                session,
                foundation=foundation,
                physical_location="eth0",
                mac=f"02:00:00:01:00:{index:02x}",
            )
        structure = await _structure(session, site, foundation, linux, hostname, "hypervisor")
        try:
            member = await complexes.get_member(session, complex_, hostname)
        except InvalidInput:  # not a member yet
            member = await complexes.add_complex_member(
                session,
                complex_,
                structure,
                endpoint=f"simulated://{hostname}?cpus={cpus}&memory_mb={memory}&disk_gb={disk}",
            )
        if member.cpu_count is None:
            await complexes.set_member_capacity(
                session, member, cpus=cpus, memory_mb=memory, disk_gb=disk
            )
        targets += [foundation, structure]
    for locator, (cpus, memory, disk) in VMS.items():
        vm_fields = {
            **fields,
            "complex": COMPLEX,
            "cpus": cpus,
            "memory_mb": memory,
            "disk_gb": disk,
        }
        vm, _ = await _foundation(session, locator, site, vm_blueprint, "simulated-vm", vm_fields)
        hostname = locator.replace("-vm", "-www")
        targets += [vm, await _structure(session, site, vm, app_blueprint, hostname, "app")]
    for target in targets:  # the foundations' jobs start once they are located
        if (
            isinstance(target, Foundation)
            and target.state == "planned"
            and await jobs.job_for_target(session, target) is None
        ):
            await building.set_located(session, target)
    return targets
