"""Jobs through GraphQL: starting them, every operator action, and what queries show."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from contractor.models import Job
from contractor.services import building
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import WAIT, answer_for

JOB_BODY = """
  id state scriptName message progress line variables target
  log { actor action fromState toState message }
  tasks { module function state attempt parameters }
"""
JOB_FIELDS = f"... on Job {{ {JOB_BODY} }} ... on Error {{ code message field }}"

CREATE = f"mutation($f: String) {{ doCreate(foundation: $f) {{ {JOB_FIELDS} }} }}"
ACTION = "mutation($id: Int!) { NAME(id: $id) { " + JOB_FIELDS + " } }"
QUERY = f"query($id: Int!) {{ job(id: $id) {{ {JOB_BODY} }} }}"

ERROR_SCRIPT = """\
count = 1
foundation.power_on()
error( msg='disk on fire' )
done = true
"""


async def action(env: Env, token: str, name: str, job_id: int) -> dict[str, Any]:
    data = await env.graphql(token, ACTION.replace("NAME", name), {"id": job_id})
    result: dict[str, Any] = data[name]
    return result


async def until(env: Env, token: str, job_id: int, state: str) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            job: dict[str, Any] = (await env.graphql(token, QUERY, {"id": job_id}))["job"]
            if job["state"] == state:
                return job
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), WAIT)


async def answer_one(env: Env, sub: str, site: str, data: dict[str, Any] | None = None) -> Any:
    response = await env.call(
        sub, "poll", {"site": site, "modules": ["simulated"], "max_tasks": 1, "wait": 5}
    )
    (task,) = response.json()["tasks"]
    reply = await env.call(
        sub,
        "result",
        {
            "task_id": task["task_id"],
            "cookie": task["cookie"],
            "lease": task["lease"],
            "data": data or answer_for(task),
        },
    )
    assert reply.status_code == 200, reply.text
    return task


async def test_operator_actions(env: Env) -> None:
    stack = await env.run(lambda s: make_job_stack(s, foundation_create=ERROR_SCRIPT))
    operator = await env.user_token("operator")
    reader = await env.user_token("reader")
    sub = await env.token(stack.site.name, ["simulated"])

    denied = (await env.graphql(reader, CREATE, {"f": stack.foundation.locator}))["doCreate"]
    assert denied["code"] == "FORBIDDEN"
    job = (await env.graphql(operator, CREATE, {"f": stack.foundation.locator}))["doCreate"]
    assert job["state"] == "WAITING"
    again = (await env.graphql(operator, CREATE, {"f": stack.foundation.locator}))["doCreate"]
    assert again["code"] == "CONFLICT"
    job_id = job["id"]

    await until(env, operator, job_id, "QUEUED")
    paused = await action(env, operator, "pauseJob", job_id)
    assert paused["state"] == "PAUSED"
    assert (await action(env, operator, "pauseJob", job_id))["code"] == "INVALID_STATE"
    # the task handed out before the pause is still answered and taken
    await answer_one(env, sub, stack.site.name)
    assert (await action(env, operator, "resumeJob", job_id))["state"] == "QUEUED"

    failed = await until(env, operator, job_id, "ERROR")
    assert failed["message"] == "disk on fire (line 3)"
    assert failed["line"] == 3
    assert failed["variables"] == {"count": 1}
    assert (await action(env, operator, "resumeJob", job_id))["code"] == "INVALID_STATE"
    # reset continues after the error() call; the script then finishes
    assert (await action(env, operator, "resetJob", job_id))["state"] == "QUEUED"
    done = await until(env, operator, job_id, "DONE")
    assert done["progress"] == 100.0
    assert done["variables"] == {"count": 1, "done": True}
    actions = [entry["action"] for entry in done["log"]]
    assert actions == ["created", "started", "paused", "resumed", "error", "reset", "done"]
    assert done["log"][2]["actor"] == "operator1"
    # transitions in the JobState enum's spelling, as the job's own state
    assert [(e["fromState"], e["toState"]) for e in done["log"]] == [
        (None, "WAITING"),
        ("WAITING", "QUEUED"),
        ("QUEUED", "PAUSED"),
        ("PAUSED", "QUEUED"),
        ("QUEUED", "ERROR"),
        ("ERROR", "QUEUED"),
        ("QUEUED", "DONE"),
    ]
    assert {task["state"] for task in done["tasks"]} == {"DONE"}

    async def state(session: Any) -> str:
        return (await building.get_foundation(session, stack.foundation.locator)).state

    assert await env.run(state) == "built"
    assert (await action(env, operator, "cancelJob", job_id))["code"] == "INVALID_STATE"


async def test_rollback_and_cancel(env: Env) -> None:
    stack = await env.run(lambda s: make_job_stack(s, foundation_create="foundation.power_on()\n"))
    operator = await env.user_token("operator")
    sub = await env.token(stack.site.name, ["simulated"])
    job_id = (await env.graphql(operator, CREATE, {"f": stack.foundation.locator}))["doCreate"][
        "id"
    ]
    # the machine never comes on: after five attempts the job errors
    for _ in range(5):
        await asyncio.wait_for(answer_one(env, sub, stack.site.name, {"state": "off"}), WAIT)
    failed = await until(env, operator, job_id, "ERROR")
    assert "no success after 5 attempts" in failed["message"]
    rolled = await action(env, operator, "rollbackJob", job_id)
    assert rolled["state"] == "QUEUED"
    task = await asyncio.wait_for(answer_one(env, sub, stack.site.name, {"state": "off"}), WAIT)
    assert task["function"] == "set_power"
    cancelled = await action(env, operator, "cancelJob", job_id)
    assert cancelled["state"] == "ABORTED"
    assert cancelled["log"][-1]["action"] == "cancelled"
    assert all(t["state"] != "OPEN" for t in cancelled["tasks"])
    assert {t["state"] for t in cancelled["tasks"]} <= {"DONE", "FAILED", "CANCELLED"}
    assert cancelled["log"][-1]["toState"] == "ABORTED"
    # a new job may start on the same target
    again = (await env.graphql(operator, CREATE, {"f": stack.foundation.locator}))["doCreate"]
    assert again["state"] == "WAITING"


DO_JOB = (
    "mutation($name: String!, $s: Int, $f: String) { doJob(name: $name, structure: $s, "
    f"foundation: $f) {{ {JOB_FIELDS} }} }}"
)


async def test_a_job_names_exactly_one_target(env: Env) -> None:
    stack = await env.run(make_job_stack)
    operator = await env.user_token("operator")
    both = {"f": stack.foundation.locator, "s": stack.structure.id}
    head = "mutation($f: String, $s: Int) { r: "
    named = [
        ("doCreate", "mutation { r: doCreate { %s } }", {}),
        ("doDestroy", head + "doDestroy(foundation: $f, structure: $s) { %s } }", both),
        ("doJob", head + 'doJob(name: "hello", foundation: $f, structure: $s) { %s } }', both),
        ("doJob", 'mutation { r: doJob(name: "hello") { %s } }', {}),
    ]
    for name, document, variables in named:
        refused = (await env.graphql(operator, document % JOB_FIELDS, variables))["r"]
        assert refused["code"] == "INVALID_INPUT", (name, refused)
        assert refused["field"] == "foundation"
        assert "name exactly one target" in refused["message"]

    async def job_count(session: Any) -> int:
        return len((await session.execute(select(Job))).scalars().all())

    assert await env.run(job_count) == 0


async def test_utility_scripts_with_do_job(env: Env) -> None:
    stack = await env.run(make_job_stack)
    operator = await env.user_token("operator")
    structure = stack.structure.id

    unbuilt = (await env.graphql(operator, DO_JOB, {"name": "hello", "s": structure}))["doJob"]
    assert unbuilt["code"] == "INVALID_STATE"
    assert "must be built to run script 'hello'" in unbuilt["message"]

    async def build(session: Any) -> None:
        await building.set_built(session, await session.merge(stack.foundation))
        await building.set_structure_built(session, await session.merge(stack.structure))

    await env.run(build)
    missing = (await env.graphql(operator, DO_JOB, {"name": "nope", "s": structure}))["doJob"]
    assert missing["code"] == "NOT_FOUND"
    assert "has no 'nope' script" in missing["message"]
    on_foundation = {"name": "hello", "f": stack.foundation.locator}
    no_script = (await env.graphql(operator, DO_JOB, on_foundation))["doJob"]
    assert no_script["code"] == "NOT_FOUND"  # the foundation's blueprint has no 'hello'

    job = (await env.graphql(operator, DO_JOB, {"name": "hello", "s": structure}))["doJob"]
    assert (job["scriptName"], job["state"]) == ("hello", "WAITING")
    done = await until(env, operator, job["id"], "DONE")
    assert done["message"] == "done"
    assert [entry["action"] for entry in done["log"]] == ["created", "started", "done"]

    async def states(session: Any) -> tuple[str, str]:
        foundation = await building.get_foundation(session, stack.foundation.locator)
        row = await session.get_one(type(stack.structure), structure)
        return foundation.state, row.state

    assert await env.run(states) == ("built", "built")  # a utility script changes no state


DELETE = (
    "mutation($f: String!, $s: Int!) { deleteStructure(id: $s) { __typename "
    "... on Error { code message } } deleteFoundation(locator: $f) { __typename "
    "... on Error { code message } } }"
)
DELETE_FOUNDATION = "mutation($f: String!) { deleteFoundation(locator: $f) { __typename } }"


async def test_deleting_a_target_with_an_unfinished_job_is_refused(env: Env) -> None:
    stack = await env.run(make_job_stack)
    operator = await env.user_token("operator")
    locator = stack.foundation.locator
    job = (await env.graphql(operator, CREATE, {"f": locator}))["doCreate"]
    # the structure (no job) is deleted; the foundation (its create job waits) is not
    data = await env.graphql(operator, DELETE, {"f": locator, "s": stack.structure.id})
    assert data["deleteStructure"] == {"__typename": "Deleted"}
    refused = data["deleteFoundation"]
    assert refused["__typename"] == "ConflictError"
    assert refused["code"] == "IN_USE"
    assert f"unfinished job {job['id']} (create, " in refused["message"]
    assert (await env.graphql(operator, QUERY, {"id": job["id"]}))["job"]["scriptName"] == "create"
    assert (await action(env, operator, "cancelJob", job["id"]))["state"] == "ABORTED"
    data = await env.graphql(operator, DELETE_FOUNDATION, {"f": locator})
    assert data["deleteFoundation"] == {"__typename": "Deleted"}
