"""A LibVirt VM booted by PXE through the boot path's services (issue 21 item 2).

A real, private ``libvirtd`` with ``qemu:///system`` (tests/subcontractor/libvirtd.py) runs
inside the boot tests' network namespace (tests/rigs/netns.py), so the VMs it starts have
their tap on that namespace's bridge ``br0``, which a veth joins to the host. On the host:
``contractor serve`` and a real ``subcontractor run`` with the ``libvirt`` module and its
``[boot]`` component (tests/e2e/stack.py): dnsmasq on the veth's host end, the boot endpoint
on its address.

::

    netns: libvirtd ── QEMU (tap on br0) ──DHCP, HTTP── host_if: dnsmasq, boot endpoint
                 └── its socket, in a directory under /tmp ─── subcontractor (libvirt module)

libvirtd also has a private mount namespace (its /run/libvirt, /etc/libvirt ... are
directories of the test bind-mounted there); its socket is created in one of them, so the
subcontractor on the host reaches it at that directory's path
(``qemu+unix:///system?socket=/tmp/lvd-.../run/libvirt/libvirt-sock``): the member's endpoint.
Nothing runs inside the mount namespace but libvirtd and its QEMUs.

The shipped ``libvirt-vm`` create script runs through the foreman: the module defines the VM
on the member (its NIC on ``br0``), its MAC is recorded on the Foundation's interface
(``get_interface_map``), so the Structure on it (shipped ``linux``, an address on the
namespace's block) has a reservation the subcontractor's dnsmasq takes; the VM is powered on
and boots from the network. Its NIC's ROM (QEMU's, iPXE) DHCPs and gets the reserved address;
as it already is iPXE, dnsmasq's rule for iPXE clients names the boot endpoint's ``/ipxe`` as
its boot file (no TFTP: that is for firmware that is not iPXE, which QEMU's NICs never have).
It chains there, and the endpoint asks Contractor's ``/boot/<config uuid>`` (no
PXE target is set: Contractor answers "boot the local disk", which the empty disk cannot).
The lease is reported and shown in GraphQL; the destroy script leaves no domain, no volume
and no QEMU.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import AddressBlock, Complex, RealNetworkInterface, Site
from contractor.services import addresses, auth, building, complexes, interfaces, jobs, resources
from contractor.services import blueprint as bp_service
from contractor.services import tasks as task_service
from tests.e2e.stack import Database, Stack, boot_stack, graphql
from tests.e2e.test_vm_boot import CHEAP, boot_logs
from tests.factories import make_block, make_stack, unique
from tests.rigs.netns import Netns, network_namespace
from tests.subcontractor.libvirtd import BRIDGE, POOL, Libvirtd, libvirtd

libvirt = pytest.importorskip("libvirt", reason="the libvirt extra (libvirt-python) is needed")

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ADDRESS_OFFSET = 60  # the VM's reserved address in the namespace's /24
LIBVIRT: dict[str, object] = {"concurrency": 2, "shutdown_timeout": 2, "confirm_interval": 0.2}


@pytest.fixture
def rig() -> Iterator[tuple[Netns, Libvirtd]]:
    """The namespace, and libvirtd in it (stopped first, with its QEMUs, at the end)."""
    with network_namespace() as ns, libvirtd(netns=ns.name) as daemon:
        yield ns, daemon


@dataclass
class World:
    site: str
    complex_id: int
    block_id: int
    locator: str
    hostname: str
    config_uuid: str
    agent_token: str  # the site, modules libvirt and boot
    operator: str  # a user's API token, for GraphQL


async def plan(db: Database, ns: Netns, daemon: Libvirtd) -> World:
    """A libvirt Complex whose one built member's endpoint is the private libvirtd, a block
    on the namespace's network, the agent's and an operator's tokens."""

    async def work(session: AsyncSession) -> World:
        await resources.load_builtin(session)
        site, host_foundation, host = await make_stack(session)
        await building.set_built(session, host_foundation)
        await building.set_structure_built(session, host)
        complex_ = await complexes.create_complex(
            session, name=unique("kvm"), site=site, type="LibVirt"
        )
        await complexes.add_complex_member(session, complex_, host, endpoint=daemon.uri)
        block = await make_block(session, site, str(ns.network), gateway_offset=1)
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["libvirt", "boot"]
        )
        user = await auth.create_user(session, username=unique("op"), role="operator")
        operator = await auth.create_token(session, user=user, hasher=CHEAP)
        return World(site.name, complex_.id, block.id, "", "", "", token.text, operator.text)

    return await db.run(work)


async def add_vm(db: Database, world: World) -> World:
    """Once the member's capacity is known (placement needs it): a planned LibVirt
    Foundation on the Complex (its NIC on the bridge, no MAC yet) with a planned ``linux``
    Structure whose address is on the namespace's block."""

    async def vm(session: AsyncSession) -> World:
        complex_ = await session.get_one(Complex, world.complex_id)
        site = await session.get_one(Site, complex_.site_id)
        foundation = await building.create_foundation(
            session,
            locator=unique("vm"),
            site=site,
            blueprint=await bp_service.get_foundation_blueprint(session, "libvirt-vm"),
            type="LibVirt",
            fields={
                "complex": complex_.name,
                "cpu_count": 1,
                "memory_mb": 256,
                "disk_gb": 1,
                "pool": POOL,
                "bridge": BRIDGE,
            },
        )
        await interfaces.add_interface(
            session, foundation=foundation, physical_location="eth0", is_provisioning=True
        )
        await building.set_located(session, foundation)
        structure = await building.create_structure(
            session,
            hostname=unique("web"),
            site=site,
            blueprint=await bp_service.get_structure_blueprint(session, "linux"),
            foundation=foundation,
        )
        block = await session.get_one(AddressBlock, world.block_id)
        await addresses.create_address(
            session,
            structure=structure,
            block=block,
            interface_name="eth0",
            offset=ADDRESS_OFFSET,
            is_primary=True,
        )
        world.locator, world.hostname = foundation.locator, structure.hostname
        world.config_uuid = structure.config_uuid
        return world

    return await db.run(vm)


async def capacity_job(session: AsyncSession, world: World) -> int:
    complex_ = await session.get_one(Complex, world.complex_id)
    [job] = await complexes.refresh_capacity(session, complex_, creator="alice")
    return job.id


async def foundation_job(db: Database, locator: str, script: str) -> int:
    async def work(session: AsyncSession) -> int:
        foundation = await building.get_foundation(session, locator)
        job = await jobs.create_job(session, target=foundation, script_name=script, creator="al")
        return job.id

    return await db.run(work)


async def wait_done(db: Database, job_id: int) -> None:
    job = await db.finished(job_id, seconds=60)
    assert job.state == "done", f"job {job_id} ({job.script_name}): {job.state} {job.message!r}"


LEASES = """query ($locator: String!) {
  foundation(locator: $locator) { interfaces { name mac leases { mac address state } } }
}"""


async def until(what: str, seconds: float, check: Any) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.5)


async def test_a_libvirt_vm_boots_by_pxe_through_the_subcontractor_boot_services(
    database: Database, rig: tuple[Netns, Libvirtd], tmp_path: Path
) -> None:
    ns, daemon = rig
    world = await plan(database, ns, daemon)
    files = tmp_path / "files"
    files.mkdir()
    with boot_stack(
        database_url=database.url,
        netns=ns,
        token=world.agent_token,
        site=world.site,
        directory=tmp_path / "stack",
        files_dir=files,
        modules={"libvirt": LIBVIRT},
    ) as stack:
        await wait_done(database, await database.run(lambda s: capacity_job(s, world)))
        await add_vm(database, world)
        began = time.time()
        await wait_done(database, await foundation_job(database, world.locator, "create"))
        conn = libvirt.open(daemon.uri)
        try:
            [domain] = conn.listAllDomains()
            assert domain.name() == world.locator
            assert domain.isActive()
            tree = ET.fromstring(domain.XMLDesc(0))
            assert [b.get("bridge") for b in tree.findall("devices/interface/source")] == [BRIDGE]
        finally:
            conn.close()
        [nic] = await database.run(lambda s: nics(s, world.locator))
        assert nic.mac  # recorded from get_interface_map: the boot path knows the VM
        mac = nic.mac

        # the VM's ROM DHCPs (its reservation, from the subcontractor's dnsmasq) and chains
        # to the endpoint's /ipxe, which asks Contractor for the boot script of its config
        arrivals = await until(
            f"Contractor's /boot/{world.config_uuid}",
            60,
            lambda: answered(stack, world.config_uuid),
        )
        assert arrivals[0] > began
        reserved = str(ns.address(ADDRESS_OFFSET))
        acks = [line for line in boot_logs(stack) if "DHCPACK" in line and mac in line]
        assert acks, stack.diagnostics()
        assert all(reserved in line for line in acks), acks
        offered = [line for line in boot_logs(stack) if "option: 67 bootfile-name" in line]
        assert offered
        assert all(f"{stack.endpoint}/ipxe?mac=" in line for line in offered), offered
        # ... and Contractor answered it (no PXE target set: its local disk)
        assert f"GET /boot/{world.config_uuid} 200 " in stack.contractor_log()
        async with httpx.AsyncClient(timeout=10) as http:  # what the VM got, asked again
            script = await http.get(f"{stack.endpoint}/ipxe", params={"mac": mac})
        assert script.status_code == 200
        assert script.text.startswith("#!ipxe"), script.text
        assert f"structure {world.hostname!r} has no PXE target set" in script.text
        assert "sanboot" in script.text

        # the lease is reported and shown on the interface
        async def lease() -> list[dict[str, Any]]:
            data = await graphql(stack.contractor, world.operator, LEASES, locator=world.locator)
            [interface] = data["foundation"]["interfaces"]
            assert interface["mac"] == mac
            leases: list[dict[str, Any]] = interface["leases"]
            return leases

        [reported] = await until("the lease in GraphQL", 20, lease)
        assert (reported["mac"], reported["address"]) == (mac, reserved)

        # stop and destroy: nothing left on the host
        await wait_done(database, await foundation_job(database, world.locator, "destroy"))
        conn = libvirt.open(daemon.uri)
        try:
            assert conn.listAllDomains() == []
            assert conn.storagePoolLookupByName(POOL).listAllVolumes() == []
        finally:
            conn.close()
        assert daemon.running_qemus() == []
        assert "reason=destroyed" in daemon.qemu_log(world.locator)


async def answered(stack: Stack, config_uuid: str) -> list[float]:
    return stack.requests("GET", f"/boot/{config_uuid}")


async def nics(session: AsyncSession, locator: str) -> list[RealNetworkInterface]:
    foundation = await building.get_foundation(session, locator)
    query = select(RealNetworkInterface).where(RealNetworkInterface.foundation_id == foundation.id)
    return list((await session.execute(query)).scalars())
