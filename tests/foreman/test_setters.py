"""What a job's script may change besides PXE choices: a Foundation job assigns its foundation
type's settable fields and sets its interfaces' MACs, a Structure job creates config keys with
``structure.set_config``; everything is checked as the API checks it, later reads in the step
see it, and a step that aborts the job writes none of it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.engine import step_job
from contractor.models import Foundation, Job, RealNetworkInterface, Structure, Task
from contractor.plugins.ipmi import IpmiFoundation
from contractor.plugins.simulated import SimulatedFoundation
from contractor.services import building, interfaces, job_actions, jobs
from contractor.services.config import composed_config
from contractor.settings import Settings
from tests.foreman.conftest import Env
from tests.foreman.inventory import Stack, make_job_stack
from tests.foreman.test_http import job_state, wait_for

SETTINGS = Settings(database_url="sqlite://")
MAC_A = "aa:bb:cc:00:00:01"
MAC_B = "aa:bb:cc:00:00:02"


async def _foundation_job(
    session: AsyncSession,
    script: str,
    *,
    foundation_type: str = "simulated",
    fields: dict[str, Any] | None = None,
    second_interface: bool = False,
) -> tuple[Stack, Job]:
    """A foundation create job running ``script``, stepped once."""
    stack = await make_job_stack(session, foundation_type=foundation_type, foundation_create=script)
    if fields:
        await building.update_foundation(session, stack.foundation, fields=fields)
    if second_interface:
        await interfaces.add_interface(
            session, foundation=stack.foundation, physical_location="eth1", name="eth1"
        )
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    await step_job(session, job, settings=SETTINGS)
    return stack, job


async def _structure_job(
    session: AsyncSession, script: str, config_values: dict[str, Any]
) -> tuple[Stack, Job]:
    """A structure create job running ``script`` on a built foundation, stepped once."""
    stack = await make_job_stack(session, structure_create=script)
    await building.update_structure(session, stack.structure, config_values=config_values)
    await building.set_built(session, stack.foundation)
    job = await jobs.create_job(
        session, target=stack.structure, script_name="create", creator="alice"
    )
    await step_job(session, job, settings=SETTINGS)
    return stack, job


async def _row(session: AsyncSession, model: type[Foundation], foundation_id: int) -> Any:
    """The row as the database has it (the session's copy is overwritten)."""
    query = select(model).where(model.id == foundation_id)
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def _structure(session: AsyncSession, structure_id: int) -> Structure:
    return await session.get_one(Structure, structure_id, populate_existing=True)


async def _macs(session: AsyncSession, foundation_id: int) -> dict[str, str | None]:
    rows = await session.execute(
        select(RealNetworkInterface.physical_location, RealNetworkInterface.mac).where(
            RealNetworkInterface.foundation_id == foundation_id
        )
    )
    return {location: mac for location, mac in rows}


async def _task(session: AsyncSession, job: Job) -> Task:
    return (await session.execute(select(Task).where(Task.job_id == job.id))).scalar_one()


# -- foundation values ---------------------------------------------------------------------


async def test_simulated_values_are_set_and_read_back(session: AsyncSession) -> None:
    stack, job = await _foundation_job(
        session,
        """\
foundation.delay_seconds = 2
foundation.fail_likelihood = 10
if ( foundation.delay_seconds != 2 ) then fatal_error( msg='delay not read back' )
if ( foundation.fail_likelihood != 10 ) then fatal_error( msg='likelihood not read back' )
foundation.power_on()
""",
    )
    assert job.state == "queued", job.message
    # the remote call made after the assignments uses them
    task = await _task(session, job)
    assert task.parameters["connection"] == {
        "locator": stack.foundation.locator,
        "delay_seconds": 2,
        "fail_likelihood": 10,
    }
    row = await _row(session, SimulatedFoundation, stack.foundation.id)
    assert (row.delay_seconds, row.fail_likelihood) == (2, 10)


async def test_ipmi_values_are_set_and_reach_task_and_config(session: AsyncSession) -> None:
    stack, job = await _foundation_job(
        session,
        """\
foundation.bmc_address = '10.0.0.5'
foundation.bmc_port = 6230
foundation.username = 'root'
if ( foundation.bmc_address != '10.0.0.5' ) then fatal_error( msg='address not read back' )
if ( foundation.ipmi_address != '10.0.0.5' ) then fatal_error( msg='alias not read back' )
if ( foundation.ipmi_username != 'root' ) then fatal_error( msg='username not read back' )
foundation.power_on()
""",
        foundation_type="ipmi",
        fields={"bmc_address": "10.0.0.9", "username": "admin", "password": "s3cret"},
    )
    assert job.state == "queued", job.message
    task = await _task(session, job)
    assert task.parameters["connection"] == {
        "host": "10.0.0.5",
        "port": 6230,
        "username": "root",
        "password": "s3cret",
    }
    row = await _row(session, IpmiFoundation, stack.foundation.id)
    assert (row.bmc_address, row.bmc_port, row.username, row.password) == (
        "10.0.0.5",
        6230,
        "root",
        "s3cret",
    )
    config = await composed_config(session, row, settings=SETTINGS)
    assert config["_ipmi_address"] == "10.0.0.5"


@pytest.mark.parametrize(
    ("foundation_type", "line", "expected"),
    [
        ("simulated", "foundation.delay_seconds = -1", '"delay_seconds": delay_seconds must be'),
        ("simulated", "foundation.delay_seconds = 1.5", "delay_seconds must be a whole number"),
        ("simulated", "foundation.fail_likelihood = 'often'", '"fail_likelihood"'),
        ("ipmi", "foundation.bmc_port = 70000", '"bmc_port": bmc_port must be 1 to 65535'),
        ("ipmi", "foundation.bmc_address = 5", '"bmc_address": bmc_address must be a string'),
        ("ipmi", "foundation.password = 'hunter2'", '"password": password is a secret'),
        ("ipmi", "p = foundation.password", '"password" of module "foundation" is not gettable'),
        ("simulated", "foundation.locator = 'other'", '"locator" of module "foundation" is not'),
        ("ipmi", "foundation.power = 'on'", 'Not Defined "power'),
    ],
)
async def test_a_bad_assignment_aborts_and_writes_nothing(
    session: AsyncSession, foundation_type: str, line: str, expected: str
) -> None:
    first = (
        "foundation.username = 'root'"
        if foundation_type == "ipmi"
        else "foundation.fail_likelihood = 5"
    )
    stack, job = await _foundation_job(
        session, f"{first}\n{line}\n", foundation_type=foundation_type
    )
    assert job.state == "aborted"
    assert expected in job.message
    assert "hunter2" not in job.message
    model = IpmiFoundation if foundation_type == "ipmi" else SimulatedFoundation
    row = await _row(session, model, stack.foundation.id)
    if foundation_type == "ipmi":
        assert (row.username, row.password) == ("", "")
    else:
        assert row.fail_likelihood == 0


async def test_a_structure_job_sees_a_read_only_foundation(session: AsyncSession) -> None:
    stack, job = await _structure_job(
        session,
        "d = foundation.delay_seconds\nfoundation.delay_seconds = ( d + 3 )\n",
        {"installed": False},
    )
    assert job.state == "aborted"
    assert '"delay_seconds" of module "foundation" is not settable' in job.message
    row = await _row(session, SimulatedFoundation, stack.foundation.id)
    assert row.delay_seconds == 0

    _, job = await _structure_job(
        session, f"foundation.set_interface_macs( macs={{ eth0='{MAC_A}' }} )\n", {}
    )
    assert job.state == "aborted"
    assert 'Not Defined "set_interface_macs' in job.message


# -- interface MACs ------------------------------------------------------------------------


async def test_set_interface_macs(session: AsyncSession) -> None:
    stack, job = await _foundation_job(
        session,
        """\
foundation.set_interface_macs( macs={ eth0='AA-BB-CC-00-00-01', eth1='aabb.cc00.0002' } )
interfaces = foundation.interfaces
first = interfaces[0]
if ( first['mac'] != 'aa:bb:cc:00:00:01' ) then fatal_error( msg='mac not read back' )
foundation.power_on()
""",
        second_interface=True,
    )
    assert job.state == "queued", job.message
    assert await _macs(session, stack.foundation.id) == {"eth0": MAC_A, "eth1": MAC_B}


async def test_set_interface_macs_may_swap_macs(session: AsyncSession) -> None:
    stack = await make_job_stack(
        session,
        foundation_create=f"foundation.set_interface_macs( macs={{ eth0='{MAC_B}', "
        f"eth1='{MAC_A}' }} )\n",
    )
    await interfaces.add_interface(
        session, foundation=stack.foundation, physical_location="eth1", name="eth1", mac=MAC_B
    )
    (eth0,) = (
        await session.execute(
            select(RealNetworkInterface).where(
                RealNetworkInterface.foundation_id == stack.foundation.id,
                RealNetworkInterface.physical_location == "eth0",
            )
        )
    ).scalars()
    await interfaces.update_interface(session, eth0, mac=MAC_A)
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    await step_job(session, job, settings=SETTINGS)
    assert job.state == "done", job.message
    assert await _macs(session, stack.foundation.id) == {"eth0": MAC_B, "eth1": MAC_A}


@pytest.mark.parametrize(
    ("macs", "expected"),
    [
        ("'aa:bb:cc:00:00:01'", "must be a map of physical location to MAC address"),
        (
            "{ eth9='aa:bb:cc:00:00:01' }",
            "no interface at physical location 'eth9' (have: eth0, eth1)",
        ),
        ("{ eth0='not-a-mac' }", "'eth0': MAC address 'not-a-mac' is not in a known form"),
        ("{ eth0=42 }", "'eth0': MAC address must be text"),
        ("{ eth0=none }", "'eth0': a MAC address is needed"),
        (
            "{ eth0='aa:bb:cc:00:00:01', eth1='AABBCC000001' }",
            "'eth0': MAC aa:bb:cc:00:00:01 would also be on 'eth1'",
        ),
    ],
)
async def test_set_interface_macs_refuses(session: AsyncSession, macs: str, expected: str) -> None:
    stack, job = await _foundation_job(
        session,
        f"foundation.delay_seconds = 4\nfoundation.set_interface_macs( macs={macs} )\n",
        second_interface=True,
    )
    assert job.state == "aborted"
    assert 'Parameter Error parameter "macs"' in job.message
    assert expected in job.message
    assert await _macs(session, stack.foundation.id) == {"eth0": None, "eth1": None}
    assert (await _row(session, SimulatedFoundation, stack.foundation.id)).delay_seconds == 0


async def test_set_interface_macs_refuses_a_mac_another_foundation_has(
    session: AsyncSession,
) -> None:
    other = await make_job_stack(session)
    (interface,) = (
        await session.execute(
            select(RealNetworkInterface).where(
                RealNetworkInterface.foundation_id == other.foundation.id
            )
        )
    ).scalars()
    await interfaces.update_interface(session, interface, mac=MAC_A)
    stack, job = await _foundation_job(
        session,
        f"foundation.set_interface_macs( macs={{ eth0='{MAC_A}', eth1='{MAC_B}' }} )\n"
        "foundation.power_on()\n",
        second_interface=True,
    )
    assert job.state == "aborted"
    assert (
        f"'eth0': MAC {MAC_A} is already on interface 'eth0' of foundation "
        f"'{other.foundation.locator}'"
    ) in job.message
    assert await _macs(session, stack.foundation.id) == {"eth0": None, "eth1": None}
    tasks = (await session.execute(select(Task).where(Task.job_id == job.id))).scalars().all()
    assert tasks == []


# -- a failed step -------------------------------------------------------------------------


async def test_a_step_that_aborts_writes_nothing(session: AsyncSession) -> None:
    stack, job = await _foundation_job(
        session,
        f"""\
foundation.delay_seconds = 5
foundation.set_interface_macs( macs={{ eth0='{MAC_A}' }} )
dhcp.set_pxe( interface='eth0', pxe='installer' )
fatal_error( msg='stop here' )
""",
    )
    assert (job.state, job.message) == ("aborted", "stop here (line 4)")
    assert (await _row(session, SimulatedFoundation, stack.foundation.id)).delay_seconds == 0
    (interface,) = (
        await session.execute(
            select(RealNetworkInterface).where(
                RealNetworkInterface.foundation_id == stack.foundation.id
            )
        )
    ).scalars()
    assert (interface.mac, interface.pxe_id) == (None, None)

    stack, job = await _structure_job(
        session,
        "structure.set_config( name='installed', value=true )\n"
        "structure.set_config( name='role', value='web' )\n"
        "fatal_error( msg='stop here' )\n",
        {"installed": False},
    )
    assert job.state == "aborted"
    structure = await _structure(session, stack.structure.id)
    assert structure.config_values == {"installed": False}


async def test_a_step_that_errors_keeps_its_changes(session: AsyncSession) -> None:
    # a reset continues after error(), so what came before it must have been written
    stack, job = await _foundation_job(
        session, "foundation.delay_seconds = 5\nerror( msg='look at it' )\n"
    )
    assert job.state == "error"
    assert (await _row(session, SimulatedFoundation, stack.foundation.id)).delay_seconds == 5


# -- structure.set_config ------------------------------------------------------------------

CONFIG = {
    "installed": False,
    "disks": {"boot": {"size": 10}},
    "dns_servers": ["10.0.0.1", "10.0.0.2"],
}


async def test_set_config_creates_keys(session: AsyncSession) -> None:
    stack, job = await _structure_job(
        session,
        """\
structure.set_config( name='installed', value=true )
structure.set_config( name='role', value='web' )
structure.set_config( name='disks.data', value={ size=100 } )
structure.set_config( name='disks.boot.label', value='boot' )
structure.set_config( name='disks.data.size', value=200 )
structure.set_config( name='dns_servers.1', value='10.0.0.3' )
structure.set_config( name='<dns_search', value=[ 'example.com' ] )
""",
        CONFIG,
    )
    assert job.state == "done", job.message
    structure = await _structure(session, stack.structure.id)
    assert structure.config_values == {
        "installed": True,
        "disks": {"boot": {"size": 10, "label": "boot"}, "data": {"size": 200}},
        "dns_servers": ["10.0.0.1", "10.0.0.3"],
        "role": "web",
        "<dns_search": ["example.com"],
    }
    config = await composed_config(session, structure, settings=SETTINGS)
    assert (config["role"], config["disks"]["data"]) == ("web", {"size": 200})


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            "name='disks.swap.size', value=1",
            "\"name\": 'disks.swap' does not exist, so 'disks.swap.size' cannot be set",
        ),
        ("name='extra.size', value=1", "\"name\": 'extra' does not exist"),
        ("name='installed.really', value=1", "\"name\": 'installed' is a bool, not a map"),
        ("name='dns_servers.2', value='10.0.0.9'", "'dns_servers' has 2 items: index 2 is out"),
        ("name='dns_servers.first', value='x'", "'dns_servers' is a list: 'first' is not an index"),
        ("name='disks..size', value=1", "\"name\": 'disks..size' has an empty part"),
        ("name='_secret', value=1", "names starting with '_' are reserved"),
        ("name='two words', value=1", "\"name\": invalid config key 'two words'"),
        ("name='', value=1", '"name": must be a config key'),
        ("name=5, value=1", '"name": must be a config key'),
        (
            "name='dns_servers', value='10.0.0.9'",
            "\"value\": config value 'dns_servers' must be a list",
        ),
        ("name='timeout', value=1:30", '"value": value holds a value JSON cannot store'),
        ("name='disks.boot.size', value=1:30", '"value": value holds a value JSON cannot store'),
    ],
)
async def test_set_config_refuses(session: AsyncSession, call: str, expected: str) -> None:
    stack, job = await _structure_job(
        session,
        f"structure.set_config( name='role', value='web' )\nstructure.set_config( {call} )\n",
        CONFIG,
    )
    assert job.state == "aborted"
    assert "Parameter Error parameter" in job.message
    assert expected in job.message
    assert (await _structure(session, stack.structure.id)).config_values == CONFIG


# -- through the running app ---------------------------------------------------------------

FOUNDATION_QUERY = """query($l: String!) {
  foundation(locator: $l) { typeFields config structure { config } }
}"""


async def test_changes_show_in_graphql_and_config(env: Env) -> None:
    # The scripts pause after their changes: finishing a job would refresh the configuration
    # by itself (the target changes state), a paused step must do it too.
    async def setup(session: AsyncSession) -> tuple[str, int]:
        stack = await make_job_stack(
            session,
            foundation_type="ipmi",
            foundation_create="foundation.bmc_address = '10.0.0.5'\n"
            "foundation.bmc_port = 6230\n"
            "pause( msg='check it' )\n",
            structure_create="structure.set_config( name='role', value='web' )\n"
            "pause( msg='check it' )\n",
        )
        await building.update_foundation(
            session, stack.foundation, fields={"bmc_address": "10.0.0.9", "password": "pw1"}
        )
        return stack.foundation.locator, stack.structure.id

    locator, structure_id = await env.run(setup)
    reader = await env.user_token("reader")
    before = (await env.graphql(reader, FOUNDATION_QUERY, {"l": locator}))["foundation"]
    assert before["config"]["_ipmi_address"] == "10.0.0.9"  # and the config cache has it
    assert "role" not in before["structure"]["config"]

    job_id = await env.run(lambda s: _create_job(s, foundation=locator))
    await wait_for(env, job_id, "paused")
    after = (await env.graphql(reader, FOUNDATION_QUERY, {"l": locator}))["foundation"]
    assert after["typeFields"] == {"bmc_address": "10.0.0.5", "bmc_port": 6230, "username": ""}
    assert after["config"]["_ipmi_address"] == "10.0.0.5"
    assert "pw1" not in str(after)
    assert "pw1" not in str((await job_state(env, job_id)).runner_state)
    await env.run(lambda s: _resume(s, job_id))
    await wait_for(env, job_id, "done")

    job_id = await env.run(lambda s: _create_job(s, structure=structure_id))
    await wait_for(env, job_id, "paused")
    after = (await env.graphql(reader, FOUNDATION_QUERY, {"l": locator}))["foundation"]
    assert after["structure"]["config"]["role"] == "web"


async def _create_job(
    session: AsyncSession, *, foundation: str | None = None, structure: int | None = None
) -> int:
    target: Foundation | Structure
    if foundation is not None:
        target = await building.get_foundation(session, foundation)
    else:
        assert structure is not None
        target = await session.get_one(Structure, structure)
    job = await jobs.create_job(session, target=target, script_name="create", creator="alice")
    return job.id


async def _resume(session: AsyncSession, job_id: int) -> None:
    await job_actions.resume_job(session, await jobs.get_job(session, job_id), actor="alice")
