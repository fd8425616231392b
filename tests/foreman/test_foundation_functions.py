"""The foundation functions and values of the types we ship, under the original's names:
``get_interface_map()`` and ``set_interface_macs( interface_map=... )``, ``destroy()``,
``interface_list``, ``ipmi_ip_address``; the manual type's ``power_state()`` and
``destroy()``; and what a wrong name or keyword says."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.engine import step_job
from contractor.foreman.modules import module_signatures
from contractor.models import Job, RealNetworkInterface
from contractor.services import building, interfaces, jobs
from contractor.settings import Settings
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import wait_for
from tscript import check

SETTINGS = Settings(database_url="sqlite://")

CREATE = """\
listed = foundation.interface_list
macs = foundation.get_interface_map()
foundation.set_interface_macs( interface_map=macs )
foundation.destroy()
"""


async def _job(
    session: AsyncSession,
    script: str,
    *,
    foundation_type: str = "simulated",
    fields: dict[str, Any] | None = None,
) -> tuple[int, int]:
    stack = await make_job_stack(session, foundation_type=foundation_type, foundation_create=script)
    await interfaces.add_interface(
        session, foundation=stack.foundation, physical_location="eth1", name="eth1"
    )
    if fields:
        await building.update_foundation(session, stack.foundation, fields=fields)
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    return stack.foundation.id, job.id


async def _task(env: Env, token: str, site: str) -> dict[str, Any]:
    for _ in range(20):
        response = await env.call(
            token, "poll", {"site": site, "modules": ["simulated"], "wait": 5}
        )
        assert response.status_code == 200, response.text
        if response.json()["tasks"]:
            task: dict[str, Any] = response.json()["tasks"][0]
            return task
    raise AssertionError("no task")


async def _answer(env: Env, token: str, task: dict[str, Any], data: dict[str, Any]) -> Any:
    return await env.call(
        token,
        "result",
        {
            "task_id": task["task_id"],
            "cookie": task["cookie"],
            "lease": task["lease"],
            "data": data,
        },
    )


async def test_interface_map_read_and_set_then_destroy(env: Env) -> None:
    foundation_id, job_id = await env.run(lambda s: _job(s, CREATE))
    site = (await env.run(lambda s: jobs.get_job(s, job_id))).site_id
    site_name = await env.run(lambda s: _site_name(s, site))
    token = await env.token(site_name, ["simulated"])

    task = await _task(env, token, site_name)
    assert task["function"] == "get_interface_map"
    assert task["parameters"]["physical_locations"] == ["eth0", "eth1"]
    # an answer without a MAC for every interface is refused, and the task stays open
    short = await _answer(env, token, task, {"interface_map": {"eth0": "02:00:00:00:00:01"}})
    assert short.status_code == 400, short.text
    assert "was refused by the function" in short.json()["error"]["message"]
    answer = {"interface_map": {"eth0": "02:00:00:00:00:01", "eth1": "02:00:00:00:00:02"}}
    assert (await _answer(env, token, task, answer)).status_code == 200

    task = await _task(env, token, site_name)
    assert (task["function"], set(task["parameters"])) == ("destroy", {"connection"})
    assert (await _answer(env, token, task, {"done": True})).status_code == 200
    job = await wait_for(env, job_id, "done")

    async def macs(session: AsyncSession) -> dict[str, str | None]:
        rows = await session.execute(
            select(RealNetworkInterface.physical_location, RealNetworkInterface.mac).where(
                RealNetworkInterface.foundation_id == foundation_id
            )
        )
        return {location: mac for location, mac in rows}

    assert await env.run(macs) == {"eth0": "02:00:00:00:00:01", "eth1": "02:00:00:00:00:02"}
    assert '"physical_location":"eth1"' in job.runner_state  # interface_list was read


async def _site_name(session: AsyncSession, site_id: int) -> str:
    from contractor.models import Site

    return (await session.get_one(Site, site_id)).name


async def _stepped(session: AsyncSession, script: str, **options: Any) -> Job:
    _, job_id = await _job(session, script, **options)
    job = await jobs.lock_job(session, job_id)
    await step_job(session, job, settings=SETTINGS)
    return job


@pytest.mark.parametrize(
    ("call", "parameter", "expected"),
    [
        (
            "foundation.set_interface_macs( interface_map={ eth7='02:00:00:00:00:01' } )",
            "interface_map",
            "no interface at physical location 'eth7' (have: eth0, eth1)",
        ),
        (
            "foundation.set_interface_macs( interface_map={ eth0='x' }, macs={ eth0='x' } )",
            "macs",
            "give either interface_map or macs",
        ),
        ("foundation.set_interface_macs()", "interface_map", "give either interface_map or macs"),
        (
            # the original's AWS keyword: {name, mac} items matched by interface name
            "foundation.set_interface_macs( interface_list=[ { name='eth9', mac='x' } ] )",
            "interface_list",
            "no interface named 'eth9' (have: eth0, eth1)",
        ),
        (
            "foundation.set_interface_macs( interface_list=[ { mac='x' } ] )",
            "interface_list",
            "item 0 must be a map with a name and a mac",
        ),
        (
            "foundation.set_ip_addresses( ip_address_map={ eth0='10.9.9.9' } )",
            "ip_address_map",
            "'eth0': no address block of site",
        ),
        (
            "foundation.set_ip_addresses( ip_address_map={ eth0='10.9.9.300' } )",
            "ip_address_map",
            "'eth0': '10.9.9.300' is not an IP address",
        ),
        (
            "foundation.set_ip_addresses( ip_address_map={ eth5=none } )",
            "ip_address_map",
            "no interface named 'eth5' (have: eth0, eth1)",
        ),
        (
            "foundation.destroy( now=true )",
            "now",
            'foundation.destroy() has no parameter "now" (parameters: none)',
        ),
    ],
)
async def test_wrong_parameters_name_the_function_and_the_parameter(
    session: AsyncSession, call: str, parameter: str, expected: str
) -> None:
    job = await _stepped(session, call + "\n")
    assert job.state == "aborted"
    assert f'Parameter Error parameter "{parameter}"' in job.message
    assert expected in job.message


async def test_manual_power_state_is_unknown_and_destroy_asks_the_operator(
    session: AsyncSession,
) -> None:
    job = await _stepped(
        session,
        "state = foundation.power_state()\nfoundation.destroy()\n",
        foundation_type="manual",
    )
    assert job.state == "paused"
    assert job.message.startswith("Dismantle ")
    assert '"state":"unknown"' in job.runner_state


async def test_ipmi_shows_the_bmc_address_under_the_original_name(session: AsyncSession) -> None:
    job = await _stepped(
        session,
        "address = foundation.ipmi_ip_address\nmessage( msg=address )\n",
        foundation_type="ipmi",
        fields={"bmc_address": "10.1.2.3"},
    )
    assert job.state == "done", job.message
    assert '"address":"10.1.2.3"' in job.runner_state


def test_the_check_knows_the_original_names() -> None:
    problems = check(
        "macs = foundation.get_interface_map()\n"
        "foundation.set_interface_macs( interface_map=macs )\n"
        "foundation.destroy()\n"
        "aa = foundation.interface_list\n"
        "bb = foundation.ipmi_ip_address\n"
        "cc = signaling.complete\n"
        "signaling.reset( pxe_name='disk-wipe' )\n"
        "signaling.reset( name='disk-wipe' )\n",  # 8
        module_signatures(),
    )
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [
        (8, 'signaling.reset() has no parameter "name"')
    ]
