"""The whole path with real processes: `contractor serve` on PostgreSQL steps the jobs, a
`subcontractor run` daemon takes their tasks over HTTP, and OpenIPMI's ipmi_sim is the BMC
(read back with ipmitool). Then the failures: the agent killed mid-task, Contractor gone while
the agent holds a result, and a wrong BMC password fixed by the operator."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.engine import restore_runner
from contractor.foreman.modules import JobContext
from contractor.models import Foundation, Job, RealNetworkInterface
from contractor.services import blueprint as bp_service
from contractor.services import building, interfaces, job_actions, jobs, resources
from contractor.services import tasks as task_service
from tests import factories
from tests.factories import make_foundation, make_foundation_blueprint, make_site, unique
from tests.serving import clean_env, free_port
from tests.subcontractor.bmc import Bmc, ipmi_sim, require_tools
from tests.subcontractor.processes import Agent, contractor_on, subcontractor, write_config
from tests.subcontractor.served import WAIT, Database, Setup, migrated_database, served

IPMI_CREATE = """\
foundation.power_off()
foundation.set_boot_device( device='pxe' )
foundation.power_on()
foundation.wait_for_poweroff()
"""
FAST_IPMI = {"concurrency": 4, "confirm_interval": 0.2, "soft_off_wait": 5}


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    require_tools()
    async with migrated_database("contractor_subcontractor", Database) as db:
        yield db


async def create_job(
    db: Database, *, script: str, foundation_type: str, fields: dict[str, Any], modules: list[str]
) -> Setup:
    async def work(session: AsyncSession) -> Setup:
        site = await make_site(session)
        blueprint = await make_foundation_blueprint(session, foundation_types=[foundation_type])
        source = await bp_service.create_script(session, name=unique("script"), source=script)
        await bp_service.link_script(session, blueprint=blueprint, role="create", script=source)
        foundation = await make_foundation(
            session, site, blueprint, type=foundation_type, fields=fields
        )
        await building.set_located(session, foundation)
        job = await jobs.create_job(
            session, target=foundation, script_name="create", creator="alice"
        )
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=modules
        )
        return Setup(site.name, foundation.id, job.id, token.text)

    return await db.run(work)


def bmc_fields(bmc: Bmc, password: str | None = None) -> dict[str, Any]:
    return {
        "bmc_address": "127.0.0.1",
        "bmc_port": bmc.port,
        "username": bmc.username,
        "password": password or bmc.password,
    }


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_ipmi_foundation_create_against_ipmi_sim(database: Database, tmp_path: Path) -> None:
    with ipmi_sim(tmp_path / "bmc", power="on") as bmc:
        setup = await create_job(
            database,
            script=IPMI_CREATE,
            foundation_type="ipmi",
            fields=bmc_fields(bmc),
            modules=["ipmi"],
        )
        with served(
            database.url, tmp_path, token=setup.token, site=setup.site, modules={"ipmi": FAST_IPMI}
        ) as live:
            check = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "subcontractor",
                    "check",
                    "--config",
                    str(live.config),
                    "--json",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=clean_env(NO_PROXY="127.0.0.1"),
                check=False,
            )
            assert check.returncode == 0, check.stdout + check.stderr
            assert json.loads(check.stdout)["ok"] is True
            with subcontractor(live.config, tmp_path) as agent:
                # off (soft first), PXE, on: then the job waits for the machine to power off
                await until(lambda: "set power 1" in bmc.calls(), "power on")
                assert bmc.power() == "on"
                calls = bmc.calls()
                assert calls.index("set shutdown 1") < calls.index("set boot pxe")
                assert calls.index("set boot pxe") < calls.index("set power 1")
                assert bmc.boot_device() == "pxe"
                job = await database.job(setup.job_id)
                assert job.state == "queued"
                # Only once the job waits for the power-off: before that, power_on may still
                # be confirming, and would switch the machine back on.
                deadline = time.monotonic() + WAIT
                while "wait for power off" not in (job.message or ""):
                    assert time.monotonic() < deadline, f"job never waited: {job.message}"
                    await asyncio.sleep(0.2)
                    job = await database.job(setup.job_id)
                # the installer finishes and turns the machine off
                bmc.ipmitool("chassis", "power", "off")
                job = await database.wait_for(setup.job_id, "done", "error", "aborted")
                assert job.state == "done", job.message
                assert agent.stop() == 0
            output = agent.output()
        foundation = await database.run(
            lambda session: session.get_one(Foundation, setup.foundation_id)
        )
        assert foundation.state == "built"
        assert bmc.power() == "off"
        assert bmc.password not in output
        assert setup.token.rpartition(".")[2] not in output
        assert "result accepted" in output
        assert not list((tmp_path / "journal").glob("*.json"))


async def test_shipped_ipmi_blueprint_create_against_ipmi_sim(
    database: Database, tmp_path: Path
) -> None:
    """The create script of the shipped ``ipmi-foundation`` blueprint, to the end."""

    async def setup(session: AsyncSession) -> Setup:
        await resources.load_builtin(session)
        site = await make_site(session)
        foundation = await building.create_foundation(
            session,
            locator=unique("bm"),
            site=site,
            blueprint=await bp_service.get_foundation_blueprint(session, "ipmi-foundation"),
            type="ipmi",
            fields=bmc_fields(bmc),
        )
        await building.set_located(session, foundation)
        job = await jobs.create_job(session, target=foundation, script_name="create", creator="t")
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["ipmi"]
        )
        return Setup(site.name, foundation.id, job.id, token.text)

    with ipmi_sim(tmp_path / "bmc", power="on") as bmc:
        created = await database.run(setup)
        with (
            served(
                database.url,
                tmp_path,
                token=created.token,
                site=created.site,
                modules={"ipmi": FAST_IPMI},
            ) as live,
            subcontractor(live.config, tmp_path) as agent,
        ):
            job = await database.wait_for(created.job_id, "done", "error", "aborted")
            assert job.state == "done", job.message
            assert agent.stop() == 0
        foundation = await database.run(
            lambda session: session.get_one(Foundation, created.foundation_id)
        )
        assert foundation.state == "built"
        assert bmc.power() == "off"
        assert bmc.boot_device() == "pxe"


async def test_wrong_bmc_password_then_fixed(database: Database, tmp_path: Path) -> None:
    with ipmi_sim(tmp_path / "bmc", power="off") as bmc:
        setup = await create_job(
            database,
            script="foundation.power_on()\n",
            foundation_type="ipmi",
            fields=bmc_fields(bmc, password="not-the-password"),
            modules=["ipmi"],
        )
        with served(
            database.url, tmp_path, token=setup.token, site=setup.site, modules={"ipmi": FAST_IPMI}
        ) as live:
            with subcontractor(live.config, tmp_path) as agent:
                job = await database.wait_for(setup.job_id, "error", "done")
                assert job.state == "error"
                assert f"BMC 127.0.0.1:{bmc.port} refused the credentials of user 'admin'" in (
                    job.message
                )
                assert "not-the-password" not in job.message
                assert bmc.power() == "off"

                async def fix(session: AsyncSession) -> None:
                    foundation = await session.get_one(Foundation, setup.foundation_id)
                    await building.update_foundation(
                        session, foundation, fields={"password": bmc.password}
                    )
                    locked = await jobs.lock_job(session, setup.job_id)
                    context = await JobContext.load(
                        session, locked, settings=database.settings, for_step=False
                    )
                    runner = restore_runner(locked, context)
                    await job_actions.reset_job(session, locked, actor="alice", runner=runner)

                await database.run(fix)
                job = await database.wait_for(setup.job_id, "done", "error")
                assert job.state == "done", job.message
                assert bmc.power() == "on"
                assert agent.stop() == 0
            assert "not-the-password" not in agent.output()


async def test_agent_killed_mid_task(database: Database, tmp_path: Path) -> None:
    setup = await create_job(
        database,
        script="foundation.power_on()\n",
        foundation_type="simulated",
        fields={"delay_seconds": 3},
        modules=["simulated"],
    )
    simulated: dict[str, dict[str, object]] = {"simulated": {"concurrency": 2}}
    with served(
        database.url,
        tmp_path,
        token=setup.token,
        site=setup.site,
        modules=simulated,
        journal="journal-1",
        CONTRACTOR_TASK_LEASE_SECONDS="3",
    ) as live:
        with subcontractor(live.config, tmp_path) as first:
            task = await database.wait_for_lease(setup.job_id)
            assert task.attempt == 1
            first.stop(signal.SIGKILL)  # mid-task: the simulated machine takes 3 s
        config = write_config(
            tmp_path,
            url=live.url,
            token=setup.token,
            site=setup.site,
            modules=simulated,
            journal=tmp_path / "journal-2",
        )
        with subcontractor(config, tmp_path) as second:
            job = await database.wait_for(setup.job_id, "done", "error")
            assert job.state == "done", job.message
            assert second.stop() == 0
    (task,) = await database.tasks(setup.job_id)
    assert task.state == "done"
    # The lease expired and the task was offered again. Attempt 2 may have gone to the killed
    # agent's own long-poll, which Contractor holds open until its wait ends (it does not
    # notice the client is gone); then that lease expired too.
    assert task.attempt >= 2


async def test_contractor_gone_while_the_agent_holds_a_result(
    database: Database, tmp_path: Path
) -> None:
    setup = await create_job(
        database,
        script="foundation.power_on()\n",
        foundation_type="simulated",
        # long enough that Contractor (waiting for the agent's 2 s long-poll) is gone first
        fields={"delay_seconds": 4},
        modules=["simulated"],
    )
    port = free_port()
    journal = tmp_path / "journal"
    with contractor_on(port, database.url, tmp_path) as url:
        config = write_config(
            tmp_path,
            url=url,
            token=setup.token,
            site=setup.site,
            modules={"simulated": {"concurrency": 2}},
            journal=journal,
            grace=10,
        )
        agent_cm = subcontractor(config, tmp_path)
        first = agent_cm.__enter__()
        await database.wait_for_lease(setup.job_id)
    # Contractor is down now; the agent finishes the task and cannot deliver the result
    try:
        await until(lambda: bool(list(journal.glob("*.json"))), "the result in the journal")
        assert first.stop() == 0  # a clean stop keeps the undelivered result on disk
    finally:
        agent_cm.__exit__(None, None, None)
    assert len(list(journal.glob("*.json"))) == 1
    assert (await database.job(setup.job_id)).state == "queued"
    with contractor_on(port, database.url, tmp_path):
        with subcontractor(config, tmp_path) as second:
            job = await database.wait_for(setup.job_id, "done", "error")
            assert job.state == "done", job.message
            await until(lambda: not list(journal.glob("*.json")), "an empty journal")
            assert second.stop() == 0
        assert "answer(s) from before the restart to send again" in second.output()
    (task,) = await database.tasks(setup.job_id)
    assert (task.state, task.attempt) == ("done", 1)  # the task itself ran once


async def test_port_checks_in_a_job(database: Database, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    open_port, closed_port = listener.getsockname()[1], closed.getsockname()[1]
    script = f"""\
open_state = iputils.port_state( target="127.0.0.1", port={open_port} )
closed_state = iputils.port_state( target="127.0.0.1", port={closed_port} )
if ( open_state != "open" ) then error( msg="the listening port is not open" )
if ( closed_state != "closed" ) then error( msg="the closed port is not closed" )
iputils.wait_for_port( target="127.0.0.1", port={open_port} )
"""
    try:
        setup = await create_job(
            database, script=script, foundation_type="simulated", fields={}, modules=["iputils"]
        )
        with (
            served(
                database.url,
                tmp_path,
                token=setup.token,
                site=setup.site,
                modules={"iputils": {"concurrency": 2, "connect_timeout": 2}},
            ) as live,
            subcontractor(live.config, tmp_path) as agent,
        ):
            job = await database.wait_for(setup.job_id, "done", "error")
            assert job.state == "done", job.message
            assert agent.stop() == 0
        tasks = await database.tasks(setup.job_id)
        assert [(t.function, t.state) for t in tasks] == [("port_state", "done")] * 3
    finally:
        listener.close()
        closed.close()


async def test_link_test_boot_device_and_ping_in_a_job(database: Database, tmp_path: Path) -> None:
    require_tools("ping")
    script = """\
linked = foundation.link_test( count=3, delay=0.1 )
if ( linked != true ) then error( msg="the BMC did not answer" )
foundation.set_boot_device( device='cdrom' )
received = iputils.ping( target='127.0.0.1', count=2 )
if ( received != 100 ) then error( msg="ping lost packets" )
"""
    with ipmi_sim(tmp_path / "bmc", power="on") as bmc:
        setup = await create_job(
            database,
            script=script,
            foundation_type="ipmi",
            fields=bmc_fields(bmc),
            modules=["ipmi", "iputils"],
        )
        with (
            served(
                database.url,
                tmp_path,
                token=setup.token,
                site=setup.site,
                modules={"ipmi": FAST_IPMI, "iputils": {"concurrency": 1}},
            ) as live,
            subcontractor(live.config, tmp_path) as agent,
        ):
            job = await database.wait_for(setup.job_id, "done", "error", "aborted")
            assert job.state == "done", job.message
            assert agent.stop() == 0
        tasks = await database.tasks(setup.job_id)
        assert [(t.module, t.function, t.state, t.attempt) for t in tasks] == [
            ("ipmi", "link_test", "done", 1),
            ("ipmi", "set_boot_device", "done", 1),
            ("iputils", "ping", "done", 1),
        ]
        assert (tasks[0].parameters["count"], tasks[0].parameters["delay"]) == (3, 0.1)
        assert tasks[2].parameters == {"target": "127.0.0.1", "count": 2}
        assert bmc.calls().count("get power") >= 3  # the link test read the power state
        assert bmc.boot_device() == "cdrom"  # ipmi_sim's name for the optical drive
        assert bmc.power() == "on"  # nothing here powers the machine


# Scripts in the original's style (written for these tests): the IPMI create boots a disk
# wipe that signals back, records the machine's MACs from an interface map and ends on the
# installed OS; the destroy wipes it again and leaves it off.
ORIGINAL_CREATE = """\
begin( description="Hardware Check" )
  if not foundation.link_test( count=3, delay=0.1 ) then
    error( msg="the BMC does not answer" )
end

begin( description="Disk Wipe" )
  foundation.power_off()
  signaling.reset( pxe_name='disk-wipe' )
  dhcp.set_pxe( interface=foundation.provisioning_interface, pxe='disk-wipe' )
  foundation.set_boot_device( device='pxe' )
  foundation.power_on()
  delay( seconds=1 )
  signaling.wait_for_completion()
  foundation.wait_for_poweroff()
end

begin( description="Interfaces" )
  found = { eth0='52:54:00:aa:bb:01', eth1='52:54:00:aa:bb:02' }
  foundation.set_interface_macs( interface_map=found )
end

begin( description="Normal Boot" )
  dhcp.set_pxe( interface=foundation.provisioning_interface, pxe='normal-boot' )
  foundation.power_on()
end
"""

ORIGINAL_DESTROY = """\
begin( description="Disk Wipe" )
  foundation.power_off()
  signaling.reset( pxe_name='disk-wipe' )
  dhcp.set_pxe( interface=foundation.provisioning_interface, pxe='disk-wipe' )
  foundation.power_on()
  signaling.wait_for_completion()
  foundation.wait_for_poweroff()
  dhcp.set_pxe( interface=foundation.provisioning_interface, pxe=none )
end
"""


@dataclass
class Machine:
    site: str
    foundation_id: int
    config_uuid: str
    token: str


async def original_style_machine(db: Database, bmc: Bmc) -> Machine:
    async def work(session: AsyncSession) -> Machine:
        site = await make_site(session)
        blueprint = await make_foundation_blueprint(session, foundation_types=["ipmi"])
        for role, text in (("create", ORIGINAL_CREATE), ("destroy", ORIGINAL_DESTROY)):
            source = await bp_service.create_script(session, name=unique(role), source=text)
            await bp_service.link_script(session, blueprint=blueprint, role=role, script=source)
        for pxe in ("disk-wipe", "normal-boot"):
            await bp_service.create_pxe(session, name=pxe, boot_script=f"chain {pxe}")
        foundation = await make_foundation(
            session, site, blueprint, type="ipmi", fields=bmc_fields(bmc)
        )
        await interfaces.add_interface(
            session, foundation=foundation, physical_location="eth0", is_provisioning=True
        )
        await interfaces.add_interface(session, foundation=foundation, physical_location="eth1")
        structure_blueprint = await factories.make_structure_blueprint(
            session, foundation_blueprints=[blueprint]
        )
        structure = await factories.make_structure(session, site, foundation, structure_blueprint)
        await building.set_located(session, foundation)
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["ipmi"]
        )
        return Machine(site.name, foundation.id, structure.config_uuid, token.text)

    return await db.run(work)


async def start_job(db: Database, foundation_id: int, script_name: str) -> int:
    async def work(session: AsyncSession) -> int:
        foundation = await session.get_one(Foundation, foundation_id)
        job = await jobs.create_job(
            session, target=foundation, script_name=script_name, creator="alice"
        )
        return job.id

    return await db.run(work)


async def boot_signals(db: Database, url: str, machine: Machine, job_id: int) -> None:
    """The booted disk wipe: first a late signal of an earlier boot (refused), then its own;
    then it powers the machine off."""
    job = await database_wait_message(db, job_id, "Waiting for the complete signal")
    assert "'disk-wipe'" in job.message
    async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
        stale = await client.post(
            f"/api/v1/signal/{machine.config_uuid}", json={"cookie": f"{job_id}(normal-boot)"}
        )
        assert stale.status_code == 409, stale.text
        assert stale.json()["error"]["code"] == "STALE"
        assert (await db.job(job_id)).signalled is False
        taken = await client.post(
            f"/api/v1/signal/{machine.config_uuid}", json={"cookie": f"{job_id}(disk-wipe)"}
        )
        assert taken.status_code == 200, taken.text


async def database_wait_message(db: Database, job_id: int, text: str) -> Job:
    deadline = time.monotonic() + WAIT
    while True:
        job = await db.job(job_id)
        if text in (job.message or ""):
            return job
        if job.state not in ("queued", "waiting") or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job.state} ({job.message!r}), not {text!r}")
        await asyncio.sleep(0.1)


@contextmanager
def serving(db: Database, tmp_path: Path, *, token: str, site: str) -> Iterator[tuple[str, Agent]]:
    """``contractor serve`` and a ``subcontractor`` with the ``ipmi`` module, for the block."""
    with (
        served(db.url, tmp_path, token=token, site=site, modules={"ipmi": FAST_IPMI}) as live,
        subcontractor(live.config, tmp_path) as agent,
    ):
        yield live.url, agent


async def test_original_style_ipmi_create_and_destroy(database: Database, tmp_path: Path) -> None:
    with ipmi_sim(tmp_path / "bmc", power="on") as bmc:
        machine = await original_style_machine(database, bmc)
        with serving(database, tmp_path, token=machine.token, site=machine.site) as (url, agent):
            create = await start_job(database, machine.foundation_id, "create")
            await boot_signals(database, url, machine, create)
            await until(lambda: bmc.power() == "on", "the disk wipe running")
            bmc.ipmitool("chassis", "power", "off")  # the wipe is done: it powers off
            job = await database.wait_for(create, "done", "error", "aborted")
            assert job.state == "done", job.message
            assert bmc.power() == "on"  # the normal boot
            assert bmc.boot_device() == "pxe"

            async def read_back(session: AsyncSession) -> tuple[str, dict[str, Any]]:
                foundation = await session.get_one(Foundation, machine.foundation_id)
                rows = await session.execute(
                    select(RealNetworkInterface.physical_location, RealNetworkInterface.mac).where(
                        RealNetworkInterface.foundation_id == machine.foundation_id
                    )
                )
                return foundation.state, {location: mac for location, mac in rows}

            state, macs = await database.run(read_back)
            assert state == "built"
            assert macs == {"eth0": "52:54:00:aa:bb:01", "eth1": "52:54:00:aa:bb:02"}

            destroy = await start_job(database, machine.foundation_id, "destroy")
            await boot_signals(database, url, machine, destroy)
            await until(lambda: bmc.power() == "on", "the destroy's disk wipe running")
            bmc.ipmitool("chassis", "power", "off")
            job = await database.wait_for(destroy, "done", "error", "aborted")
            assert job.state == "done", job.message
            assert agent.stop() == 0
        assert (await database.run(read_back))[0] == "planned"
        assert bmc.power() == "off"
        assert bmc.password not in agent.output()
        tasks = await database.tasks(create)
        assert [t.function for t in tasks][:2] == ["link_test", "set_power"]
        assert all(t.state == "done" for t in tasks)
