"""Real QEMU machines booted through the whole stack (issue 19 item 5).

1. A planned Structure of the shipped ``linux`` blueprint on an ``ipmi`` Foundation of the
   shipped ``ipmi-foundation`` blueprint: ``contractor serve`` runs its create script
   (``linux-create``, unchanged); the subcontractor's ``ipmi`` module powers the VM on
   through ``ipmi_sim``; the VM DHCPs from the subcontractor's dnsmasq (its reservation),
   iPXE chains to the boot endpoint, which answers Contractor's ``/boot/<uuid>``: the
   ``linux-installer`` PXE target, whose kernel and initrd (the installed kernel and an
   initrd built here) the endpoint serves from its files. The initrd fetches ``/config/<uuid>``
   through the endpoint, signals, and powers off; the script boots the disk and the job
   is done. The next power-on from the network is answered "the local disk".
2. An unknown VM gets a pool lease, boots the discovery image, reports its facts; Contractor
   records it and locates the planned Foundation whose locator is its serial.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.bootimage import build_discovery_image
from contractor.models import JobLog
from contractor.services import addresses, auth, building, interfaces, jobs, resources
from contractor.services import blueprint as bp_service
from contractor.services import boot as boot_service
from contractor.services import tasks as task_service
from tests.e2e.stack import Database, Stack, boot_stack, graphql
from tests.factories import make_block, make_site, unique
from tests.rigs.images import initrd_image, installed_kernel
from tests.rigs.netns import Netns, network_namespace
from tests.rigs.vm import DISK_BOOTED, Machine, Vm, qemu_bmc, qemu_vm
from tests.subcontractor.bmc import Bmc

pytestmark = pytest.mark.timeout(150)

CHEAP = PasswordHasher(memory_cost=64, time_cost=1)  # hashing cost is not under test
ADDRESS_OFFSET = 50  # the machine's reserved address in the namespace's /24
POOL = (100, 199)  # the discovery pool's offsets

# The provisioning initrd's /init. The shipped `linux-installer` PXE boots its kernel with
# `url={{ __contractor_host }}config/pxe_template/c/<uuid>` (no console argument): the
# endpoint and the config UUID come from that URL, and the script writes to the serial port.
PROVISION_INIT = """#!/bin/sh
CONTRACTOR_INIT_LIB=1 . /lib/contractor/init.sh
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/ttyS0 2>&1 </dev/null
bring_up
url=$(arg url)
base=${url%%/config/*}
uuid=${url##*/}
say "provision: endpoint $base, config uuid $uuid"
if timeout 20 wget -q -O /tmp/config "$base/config/$uuid"; then
    say "provision: config: $(tr -d '\\n' < /tmp/config | cut -c 1-4000)"
else
    say "provision: no config"
fi
if timeout 20 wget -q -O /tmp/template "$url"; then
    say "provision: template: $(head -n 1 /tmp/template)"
else
    say "provision: no template"
fi
if timeout 20 wget -q -O /tmp/answer --header "Content-Type: application/json" \\
        --post-data '{}' "$base/signal/$uuid"; then
    say "provision: signalled: $(cat /tmp/answer)"
else
    say "provision: the signal failed"
fi
finish
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The boot endpoint's files: the discovery image, and what the shipped
    `linux-installer` PXE names for the `linux` blueprint's distro (debian 12)."""
    root = tmp_path_factory.mktemp("files")
    build_discovery_image(root / "discovery", kernel=installed_kernel())
    image = initrd_image(root / "debian" / "12", PROVISION_INIT, name="initrd.gz")
    (root / "debian" / "12" / "linux").symlink_to(image.vmlinuz.resolve())
    return root


@dataclass
class World:
    site: str
    locator: str
    hostname: str
    config_uuid: str
    job_id: int
    agent_token: str  # the subcontractor's: the site, modules ipmi and boot
    operator: str  # a user's API token, for GraphQL


async def make_world(db: Database, ns: Netns, bmc: Bmc, machine: Machine, *, known: bool) -> World:
    """A site with a block on the namespace's network (gateway: the host's end), a pool;
    a Foundation of the shipped IPMI blueprint whose BMC is ``bmc``. ``known``: its
    provisioning interface has the VM's MAC, it is built, and a planned Structure of the
    shipped ``linux`` blueprint with an address on it has its create job. Otherwise it is
    planned, its locator the VM's serial, no MAC: what discovery matches."""

    async def work(session: AsyncSession) -> World:
        await resources.load_builtin(session)
        site = await make_site(session)
        block = await make_block(session, site, str(ns.network), gateway_offset=1)
        await boot_service.create_dhcp_pool(
            session, block=block, first_offset=POOL[0], last_offset=POOL[1], description="e2e"
        )
        fbp = await bp_service.get_foundation_blueprint(session, "ipmi-foundation")
        foundation = await building.create_foundation(
            session,
            locator=unique("vm") if known else machine.serial,
            site=site,
            blueprint=fbp,
            type="IPMI",
            fields={
                "bmc_address": "127.0.0.1",
                "bmc_port": bmc.port,
                "username": bmc.username,
                "password": bmc.password,
            },
        )
        await interfaces.add_interface(
            session,
            foundation=foundation,
            physical_location="eth0",
            mac=machine.mac if known else None,
            is_provisioning=True,
        )
        hostname, config_uuid, job_id = "", "", 0
        if known:
            await building.set_located(session, foundation)
            await building.set_built(session, foundation)
            sbp = await bp_service.get_structure_blueprint(session, "linux")
            hostname = unique("web")
            structure = await building.create_structure(
                session, hostname=hostname, site=site, blueprint=sbp, foundation=foundation
            )
            await addresses.create_address(
                session,
                structure=structure,
                block=block,
                interface_name="eth0",
                offset=ADDRESS_OFFSET,
                is_primary=True,
            )
            config_uuid = structure.config_uuid
            job = await jobs.create_job(
                session, target=structure, script_name="create", creator="alice"
            )
            job_id = job.id
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["ipmi", "boot"]
        )
        user = await auth.create_user(session, username=unique("op"), role="operator")
        operator = await auth.create_token(session, user=user, hasher=CHEAP)
        return World(
            site.name,
            foundation.locator,
            hostname,
            config_uuid,
            job_id,
            token.text,
            operator.text,
        )

    return await db.run(work)


def set_pxe(bmc: Bmc) -> None:
    """The BMC's next boot from the network (``ipmitool chassis bootdev pxe``), asked again
    while ipmi_sim's boot hook has not recorded it (seen once under load: ipmitool
    succeeded, the hook never ran, and the machine booted its disk directly)."""
    said = []
    for _ in range(5):
        said.append(bmc.ipmitool("chassis", "bootdev", "pxe"))
        if bmc.boot_device() == "pxe":
            return
        time.sleep(1)
    raise AssertionError(f"ipmi_sim never took the boot device pxe: {said}, {bmc.calls()[-8:]}")


def console_values(console: str) -> dict[str, str]:
    """What the provisioning initrd said (``discovery: provision: <key>: <value>`` lines;
    the first line of each key)."""
    said: dict[str, str] = {}
    for line in console.splitlines():
        match = re.match(r"discovery: provision: (\w+):? (.*)", line.strip())
        if match:
            said.setdefault(match.group(1), match.group(2))
    return said


async def job_log(db: Database, job_id: int) -> list[JobLog]:
    async def work(session: AsyncSession) -> list[JobLog]:
        query = select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id)
        return list((await session.execute(query)).scalars())

    return await db.run(work)


@asynccontextmanager
async def ipmi_vm_stack(
    database: Database, files: Path, tmp_path: Path, machine: Machine, *, known: bool
) -> AsyncIterator[tuple[Netns, Vm, Bmc, World, Stack]]:
    """``machine`` on a new namespace with its ``qemu_bmc``, its world (``make_world``), and
    the boot stack serving it; all stopped at the end."""
    with (
        network_namespace() as ns,
        qemu_vm(machine, ns, tmp_path / "vm") as vm,
        qemu_bmc(vm, tmp_path / "bmc") as bmc,
    ):
        world = await make_world(database, ns, bmc, machine, known=known)
        with boot_stack(
            database_url=database.url,
            netns=ns,
            token=world.agent_token,
            site=world.site,
            directory=tmp_path / "stack",
            files_dir=files,
        ) as stack:
            yield ns, vm, bmc, world, stack


async def wait_off(vm: Vm, seconds: float) -> None:
    assert await asyncio.to_thread(vm.wait_off, seconds), "the machine did not power off"


async def test_a_planned_structure_on_an_ipmi_foundation_is_built_by_booting_the_vm(
    database: Database, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = Machine(name="e2e-provision")
    async with ipmi_vm_stack(database, files, tmp_path, machine, known=True) as (
        ns,
        vm,
        bmc,
        world,
        stack,
    ):
        job = await database.finished(world.job_id, seconds=100)
        assert job.state == "done", f"{job.state}: {job.message}"
        console = vm.console()
        # the installer's boot: config through the endpoint, the signal taken by the job
        said = console_values(console)
        assert said["endpoint"] == f"{stack.endpoint}, config uuid {world.config_uuid}"
        config = json.loads(said["config"])  # Contractor's /config/<uuid>, forwarded
        assert config["_hostname"] == world.hostname
        assert config["_structure_config_uuid"] == world.config_uuid
        assert config["_provisioning_address"]["address"] == str(ns.address(ADDRESS_OFFSET))
        assert config["distro"] == "debian"
        # the installer's answers, at the url= the PXE target gave it (its template)
        assert said["template"] == f"# installer answers for {world.hostname}"
        assert json.loads(said["signalled"]) == {"status": "received", "job_id": world.job_id}
        log = await job_log(database, world.job_id)
        assert [entry.action for entry in log].count("signalled") == 1
        # then the script set the disk as boot device and powered on: the disk booted
        await wait_off(vm, 60)
        # (the disk's boot sector powers off at once, so a power-on the agent repeats
        # after a slow answer boots it again: every boot after the install is the disk's)
        after = vm.console().split(DISK_BOOTED, 1)
        assert len(after) == 2, "the disk never booted"
        assert not after[1].replace(DISK_BOOTED, "").strip(), after[1]
        # (ipmi_sim calls IPMI's hard drive "default"; the power-on started QEMU disk first)
        calls = bmc.calls()
        assert calls.index("set boot pxe") < calls.index("set boot default")
        first_on = vm.power_on_times()[0]

        # a built machine with no job: Contractor's boot answer is its local disk
        async with httpx.AsyncClient(base_url=stack.contractor, timeout=10) as http:
            answer = await http.get(f"/boot/{world.config_uuid}")
        assert answer.status_code == 200
        assert "booting the local disk" in answer.text, answer.text
        assert "sanboot" in answer.text

        # the next power-on from the network (PXE first) is answered so: the disk boots
        before = len(vm.power_on_times())
        disk_boots = vm.console().count(DISK_BOOTED)  # one, or more after a repeated power-on
        set_pxe(bmc)
        bmc.ipmitool("chassis", "power", "on")
        await wait_off(vm, 60)
        assert len(vm.power_on_times()) == before + 1
        assert vm.console().count(DISK_BOOTED) == disk_boots + 1
        # ... through the network: iPXE (the NIC's ROM) asked the endpoint, which asked
        # Contractor's /boot/<uuid> (three times: installer, the test above, this boot);
        # between them the firmware booted the disk (again for each repeated power-on)
        booted = re.findall(r"Booting from (ROM|Hard Disk)", vm.firmware_log.read_text())
        assert booted == ["ROM", *["Hard Disk"] * disk_boots, "ROM"]
        answers = stack.requests("GET", f"/boot/{world.config_uuid}")
        assert len(answers) == 3
        assert answers[-1] > vm.power_on_times()[-1]
        # the reservation: the machine's address, from the subcontractor's dnsmasq
        acks = [line for line in boot_logs(stack) if "DHCPACK" in line and machine.mac in line]
        assert acks
        assert all(str(ns.address(ADDRESS_OFFSET)) in line for line in acks), acks
        first_http = answers[0] - first_on
        done = job.finished_at.timestamp() - first_on if job.finished_at else float("nan")
    with capsys.disabled():
        sys.stdout.write(
            f"\n[e2e provision] power-on → first HTTP request {first_http:.1f} s"
            f" (its /ipxe, forwarded as /boot/<uuid>); → job done {done:.1f} s\n"
        )


def boot_logs(stack: Stack) -> list[str]:
    lines: list[str] = []
    for path in stack.state_dir.rglob("*.log"):
        lines += path.read_text(errors="replace").splitlines()
    return lines


DISCOVERED = """query ($site: String!, $mac: String!) {
  discoveredHardware(site: $site, mac: $mac) {
    totalCount nodes { mac serial matched located problems reports facts }
  }
  dhcpLeases(site: $site) { nodes { mac address state } }
}"""
FOUNDATION = """query ($locator: String!) {
  foundation(locator: $locator) { state locatedAt idMap interfaces { name mac } }
}"""


async def test_an_unknown_vm_is_discovered_and_its_planned_foundation_located(
    database: Database, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = Machine(name="e2e-discovery", cpus=2)
    async with ipmi_vm_stack(database, files, tmp_path, machine, known=False) as (
        ns,
        vm,
        bmc,
        world,
        stack,
    ):
        bmc.ipmitool("chassis", "bootdev", "pxe")
        bmc.ipmitool("chassis", "power", "on")
        await wait_off(vm, 100)
        console = vm.console()
        assert "discovery: answer: " in console, console
        found: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = await graphql(
                stack.contractor, world.operator, DISCOVERED, site=world.site, mac=machine.mac
            )
            leases = found["dhcpLeases"]["nodes"]
            if found["discoveredHardware"]["totalCount"] and leases:
                break
            await asyncio.sleep(0.5)
        [hardware] = found["discoveredHardware"]["nodes"]
        assert hardware["mac"] == machine.mac
        assert hardware["serial"] == machine.serial
        assert hardware["matched"] == world.locator
        assert hardware["located"] is True, hardware["problems"]
        facts = hardware["facts"]
        assert facts["uuid"] == machine.uuid
        assert facts["cpu_count"] == machine.cpus
        assert facts["memory_mib"] == machine.memory_mib
        # its lease came from the pool
        [lease] = [n for n in found["dhcpLeases"]["nodes"] if n["mac"] == machine.mac]
        pool = {str(ns.address(i)) for i in range(POOL[0], POOL[1] + 1)}
        assert lease["address"] in pool

        located = (
            await graphql(stack.contractor, world.operator, FOUNDATION, locator=world.locator)
        )["foundation"]
        assert located["state"] == "LOCATED"
        assert located["idMap"]["serial"] == machine.serial
        assert {"name": "eth0", "mac": machine.mac} in located["interfaces"]
        [script] = stack.requests("GET", "/boot/discovery")
        [report] = stack.requests("POST", "/api/v1/subcontractor/discovery")
        powered_on = vm.power_on_times()[0]
    with capsys.disabled():
        sys.stdout.write(
            f"\n[e2e discovery] power-on → first HTTP request {script - powered_on:.1f} s"
            f" (its /ipxe, forwarded as /boot/discovery);"
            f" → report {report - powered_on:.1f} s\n"
        )
