"""``iputils.snmp_get`` / ``snmp_set`` and ``ssh.execute`` / ``file`` as a job's script calls
them: the task each sends, its value, a wrong rc as the job's error, parameters checked
naming function and parameter, and the secrets (community, keys, password) masked wherever
the job or its tasks are shown."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.engine import step_job
from contractor.services import jobs
from contractor.settings import Settings
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import wait_for

SETTINGS = Settings(database_url="sqlite://")
COMMUNITY = "c0mmunity-sekrit"
PASSWORD = "ssh-pa55word-sekrit"

SCRIPT = f"""\
descr = iputils.snmp_get( host='10.0.0.20', oid='1.3.6.1.2.1.1.1.0', community='{COMMUNITY}' )
iputils.snmp_set( host='10.0.0.20', protocol='SNMPv3', user='ops', auth_key='auth-key-1234',
                  priv_key='priv-key-5678', oid='1.3.6.1.2.1.1.4.0', value=descr, port=1161 )
ssh.file( host='10.0.0.21', username='root', password='{PASSWORD}',
          source='http://static/fw.bin', destination='/tmp/fw.bin' )
ssh.execute( host='10.0.0.21', username='root', password='{PASSWORD}', command='flash /tmp/fw.bin',
             expected_rc=0 )
"""


async def _site_job(env: Env, script: str) -> tuple[str, int]:
    async def work(session: AsyncSession) -> tuple[str, int]:
        stack = await make_job_stack(session, foundation_create=script)
        job = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        return stack.site.name, job.id

    return await env.run(work)


async def _answer(env: Env, token: str, site: str, data: dict[str, Any]) -> dict[str, Any]:
    for _ in range(20):
        body = {"site": site, "modules": ["iputils", "ssh"], "wait": 5}
        tasks = (await env.call(token, "poll", body)).json()["tasks"]
        if tasks:
            (task,) = tasks
            keys = {key: task[key] for key in ("task_id", "cookie", "lease")}
            reply = await env.call(token, "result", {**keys, "data": data})
            assert reply.status_code == 200, reply.text
            result: dict[str, Any] = task
            return result
    raise AssertionError("no task")


async def test_snmp_and_ssh_tasks_values_and_masked_secrets(env: Env) -> None:
    site, job_id = await _site_job(env, SCRIPT)
    token = await env.token(site, ["iputils", "ssh"])
    get = await _answer(env, token, site, {"value": f"agent (community {COMMUNITY})"})
    assert (get["module"], get["function"]) == ("iputils", "snmp_get")
    assert get["parameters"] == {
        "connection": {
            "host": "10.0.0.20",
            "port": 161,
            "protocol": "SNMPv2c",
            "community": COMMUNITY,
        },
        "oid": "1.3.6.1.2.1.1.1.0",
    }
    put = await _answer(env, token, site, {"done": True})
    assert put["function"] == "snmp_set"
    assert put["parameters"]["connection"] == {
        "host": "10.0.0.20",
        "port": 1161,
        "protocol": "SNMPv3",
        "user": "ops",
        "auth_key": "auth-key-1234",
        "priv_key": "priv-key-5678",
    }
    # the value read before, with the community the agent echoed masked out of it
    assert put["parameters"]["value"] == "agent (community ********)"
    sent = await _answer(env, token, site, {"rc": True})
    assert (sent["module"], sent["function"]) == ("ssh", "file")
    assert sent["parameters"] == {
        "host": "10.0.0.21",
        "port": 22,
        "username": "root",
        "password": PASSWORD,
        "source": "http://static/fw.bin",
        "destination": "/tmp/fw.bin",
    }
    ran = await _answer(env, token, site, {"rc": 3, "output": f"flash failed for {PASSWORD}"})
    assert ran["parameters"]["command"] == "flash /tmp/fw.bin"
    assert ran["parameters"]["timeout"] == 300
    job = await wait_for(env, job_id, "error")
    assert "ssh.execute on 10.0.0.21: the command exited 3, expected 0" in job.message
    assert "flash failed for ********" in job.message

    operator = await env.user_token("operator")
    data = await env.graphql(
        operator,
        "query($id: Int!) { job(id: $id) { message variables log { message } "
        "tasks { parameters } } }",
        {"id": job_id},
    )
    shown = str(data)
    for secret in (COMMUNITY, PASSWORD, "auth-key-1234", "priv-key-5678"):
        assert secret not in shown
    parameters = [task["parameters"] for task in data["job"]["tasks"]]
    assert parameters[0]["connection"]["community"] == "********"
    assert parameters[2]["password"] == "********"


@pytest.mark.parametrize(
    ("call", "parameter", "expected"),
    [
        (
            "iputils.snmp_get( host='h', oid='1.3', protocol='SNMPv3' )",
            "user",
            "iputils.snmp_get(): SNMPv3 needs a user",
        ),
        (
            "iputils.snmp_get( host='h', oid='1.3' )",
            "community",
            "iputils.snmp_get(): SNMPv2c needs a community",
        ),
        (
            "iputils.snmp_set( host='h', oid='1.3', community='c', protocol='v2', value=1 )",
            "protocol",
            "must be one of SNMPv1, SNMPv2c, SNMPv3",
        ),
        (
            "iputils.snmp_get( host='h', oid='1.3', comunity='c' )",
            "comunity",
            'iputils.snmp_get() has no parameter "comunity"',
        ),
        ("ssh.execute( host='h' )", "command", 'ssh.execute() needs the parameter "command"'),
        (
            "ssh.file( host='h', source='s', destination='d', key='k' )",
            "key",
            'ssh.file() has no parameter "key"',
        ),
    ],
)
async def test_bad_calls_name_the_function_and_the_parameter(
    session: AsyncSession, call: str, parameter: str, expected: str
) -> None:
    stack = await make_job_stack(session, foundation_create=call + "\n")
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    await step_job(session, job, settings=SETTINGS)
    assert job.state == "aborted"
    assert f'Parameter Error parameter "{parameter}"' in job.message
    assert expected in job.message
