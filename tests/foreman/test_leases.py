"""The task API's guarantees: each task handed out once to concurrent pollers, leases that
expire and re-offer with a growing attempt, stale answers refused with 409 and no change,
heartbeats, retryable and final errors, scopes, and 400s naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Task
from contractor.services import jobs
from tests.foreman.conftest import Env
from tests.foreman.inventory import Stack, make_job_stack
from tests.foreman.test_http import WAIT, job_state, wait_for

TASKS = 2000
POLLERS = 8


async def _stack_with_job(env: Env, script: str = "foundation.power_on()\n") -> tuple[Stack, int]:
    async def work(session: AsyncSession) -> tuple[Stack, int]:
        stack = await make_job_stack(session, foundation_create=script)
        job = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        return stack, job.id

    return await env.run(work)


async def _poll(env: Env, token: str, site: str, **extra: Any) -> list[dict[str, Any]]:
    body = {"site": site, "modules": ["simulated"], **extra}
    response = await env.call(token, "poll", body)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


def _answer(task: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "task_id": task["task_id"],
        "cookie": task["cookie"],
        "lease": task["lease"],
        "data": {"state": "on"},
    }
    body.update(changes)
    return body


async def test_concurrent_pollers_get_each_task_once(env: Env) -> None:
    stack, job_id = await _stack_with_job(env, script="pause( msg='hold' )\n")
    await wait_for(env, job_id, "paused")

    async def many(session: AsyncSession) -> None:
        await session.execute(
            insert(Task),
            [
                {
                    "job_id": job_id,
                    "site_id": stack.site.id,
                    "module": "simulated",
                    "function": "noop",
                    "parameters": {"n": n},
                    "cookie": "c",
                }
                for n in range(TASKS)
            ],
        )

    await env.run(many)
    tokens = [await env.token(stack.site.name, ["simulated"], name=f"p{n}") for n in range(8)]
    seen: list[list[int]] = [[] for _ in range(POLLERS)]

    async def poller(index: int) -> None:
        while True:
            tasks = await _poll(env, tokens[index], stack.site.name, max_tasks=25)
            if not tasks:
                return
            seen[index].extend(task["task_id"] for task in tasks)

    await asyncio.wait_for(asyncio.gather(*(poller(n) for n in range(POLLERS))), 120)
    handed = [task_id for ids in seen for task_id in ids]
    assert len(handed) == TASKS
    assert len(set(handed)) == TASKS
    if env.settings.database_url.startswith("postgresql"):
        assert sum(1 for ids in seen if ids) > 1  # the work was really shared


async def test_expired_lease_is_offered_again(env: Env) -> None:
    stack, job_id = await _stack_with_job(env)
    first = await env.token(stack.site.name, ["simulated"], name="first")
    second = await env.token(stack.site.name, ["simulated"], name="second")
    (task,) = await asyncio.wait_for(_poll(env, first, stack.site.name, wait=5), WAIT)
    assert task["attempt"] == 1
    assert await _poll(env, second, stack.site.name) == []  # leased: not visible

    async def expire(session: AsyncSession) -> None:
        row = await session.get_one(Task, task["task_id"])
        row.lease_expires_at = row.created  # long past

    await env.run(expire)
    (again,) = await _poll(env, second, stack.site.name)
    assert (again["task_id"], again["attempt"]) == (task["task_id"], 2)
    assert again["lease"] != task["lease"]
    before = (await job_state(env, job_id)).runner_state
    for path, body in (
        ("result", _answer(task)),
        ("heartbeat", {"task_id": task["task_id"], "lease": task["lease"]}),
        ("error", {**_answer(task), "message": "boom", "data": None}),
    ):
        body = {k: v for k, v in body.items() if v is not None}
        stale = await env.call(first, path, body)
        assert stale.status_code == 409, (path, stale.text)
        assert stale.json()["error"]["code"] == "STALE"
    bad_cookie = await env.call(second, "result", _answer(again, cookie="x"))
    assert bad_cookie.status_code == 409
    assert (await job_state(env, job_id)).runner_state == before  # nothing changed
    beat = await env.call(
        second, "heartbeat", {"task_id": again["task_id"], "lease": again["lease"]}
    )
    assert beat.status_code == 200
    ok = await env.call(second, "result", _answer(again))
    assert ok.status_code == 200, ok.text
    twice = await env.call(second, "result", _answer(again))
    assert twice.status_code == 409
    await wait_for(env, job_id, "done")


async def test_errors_retryable_and_final(env: Env) -> None:
    stack, job_id = await _stack_with_job(env)
    token = await env.token(stack.site.name, ["simulated"])
    (task,) = await asyncio.wait_for(_poll(env, token, stack.site.name, wait=5), WAIT)
    body = {k: task[k] for k in ("task_id", "cookie", "lease")}
    retry = await env.call(token, "error", {**body, "message": "BMC busy", "retryable": True})
    assert retry.status_code == 200, retry.text
    (again,) = await asyncio.wait_for(_poll(env, token, stack.site.name, wait=5), WAIT)
    assert (again["task_id"], again["attempt"]) == (task["task_id"], 2)
    body = {k: again[k] for k in ("task_id", "cookie", "lease")}
    final = await env.call(token, "error", {**body, "message": "no such BMC"})
    assert final.status_code == 200
    job = await wait_for(env, job_id, "error")
    assert job.message == "simulated.set_power failed: no such BMC"


async def test_scopes_and_bad_bodies(env: Env) -> None:
    stack, _ = await _stack_with_job(env)
    token = await env.token(stack.site.name, ["simulated"])
    other = await env.call(token, "poll", {"site": "elsewhere", "modules": ["simulated"]})
    assert other.status_code == 403
    assert other.json()["error"]["field"] == "site"
    module = await env.call(token, "poll", {"site": stack.site.name, "modules": ["ipmi"]})
    assert module.status_code == 403
    anonymous = await env.http.post("/api/v1/subcontractor/poll", json={})
    assert anonymous.status_code == 401
    wrong = await env.call("sct_0123456789abcdef.abcdefghijklmnopqrstuvwxyz", "poll", {})
    assert wrong.status_code in (400, 401)
    for path, body, field in (
        ("poll", {"site": stack.site.name}, "modules"),
        ("poll", {"site": stack.site.name, "modules": ["simulated"], "max_tasks": 0}, "max_tasks"),
        ("poll", {"site": stack.site.name, "modules": "simulated"}, "modules"),
        ("result", {"task_id": "1", "cookie": "c", "lease": "l", "data": {}}, "task_id"),
        ("result", {"task_id": 1, "cookie": "c", "lease": "l", "data": []}, "data"),
        ("error", {"task_id": 1, "cookie": "c", "lease": "l"}, "message"),
        ("heartbeat", {"task_id": 1, "lease": "l", "extra": 1}, "extra"),
    ):
        response = await env.call(token, path, body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["field"] == field, response.text
    not_json = await env.http.post(
        "/api/v1/subcontractor/result",
        content=b"{",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert not_json.status_code == 400
    missing = await env.call(
        token, "result", {"task_id": 99999, "cookie": "c", "lease": "l", "data": {}}
    )
    assert missing.status_code == 404


async def _leased_task(env: Env) -> tuple[int, str, dict[str, Any]]:
    """A job whose first task is leased: the job's id, the token and the task."""
    stack, job_id = await _stack_with_job(env)
    token = await env.token(stack.site.name, ["simulated"])
    (task,) = await asyncio.wait_for(_poll(env, token, stack.site.name, wait=5), WAIT)
    return job_id, token, task


async def _call_escaped(env: Env, token: str, path: str, body: dict[str, Any]) -> Any:
    """A call whose JSON escapes what UTF-8 cannot carry (``"\\udc80"``), as JSON may."""
    return await env.http.post(
        f"/api/v1/subcontractor/{path}",
        content=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


async def test_numbers_and_keys_are_judged_as_the_openapi_document_does(env: Env) -> None:
    stack, job_id = await _stack_with_job(env)
    token = await env.token(stack.site.name, ["simulated"])
    site = stack.site.name
    for path, body in (
        ("heartbeat", {"task_id": 9223372036854775808, "lease": "l"}),
        ("result", {"task_id": 9223372036854775808, "cookie": "c", "lease": "l", "data": {}}),
        ("error", {"task_id": 9223372036854775808, "cookie": "c", "lease": "l", "message": "m"}),
        ("heartbeat", {"task_id": 2**31, "lease": "l"}),
        ("heartbeat", {"task_id": -1, "lease": "l"}),
        ("heartbeat", {"task_id": 1.5, "lease": "l"}),
        ("heartbeat", {"task_id": True, "lease": "l"}),
        ("poll", {"site": site, "modules": ["simulated"], "max_tasks": 2.5}),
        ("poll", {"site": site, "modules": ["simulated"], "max_tasks": 1e300}),
    ):
        response = await env.call(token, path, body)
        assert response.status_code == 400, (path, body, response.text)
        error = response.json()["error"]
        assert error["field"] in ("task_id", "max_tasks"), response.text
        assert error["code"] == "INVALID_INPUT"
    # the largest id the database holds is a task that does not exist; 0 names none
    for task_id in (2**31 - 1, 0, 7.0):
        missing = await env.call(token, "heartbeat", {"task_id": task_id, "lease": "l"})
        assert missing.status_code == 404, missing.text
    # JSON Schema's integer: 2.0 is 2
    (task,) = await asyncio.wait_for(_poll(env, token, site, max_tasks=2.0, wait=5), WAIT)
    assert task["attempt"] == 1
    # unknown keys by their real name, quoted when not a plain name; long ones cut short
    for key, field in (("", '""'), ("a b", '"a b"'), ("extra", "extra")):
        response = await env.call(token, "heartbeat", {"task_id": 1, "lease": "l", key: 1})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["field"] == field, response.text
        assert error["message"].startswith(f"unknown key {field} "), response.text
    long = await env.call(token, "heartbeat", {"task_id": 1, "lease": "l", "k" * 100_000: 1})
    assert long.status_code == 400
    assert len(long.content) < 1000, long.text
    assert "more characters" in long.json()["error"]["field"]
    # numbers JSON cannot write, and nesting past what a parser should follow
    for raw in (
        b'{"task_id": NaN, "lease": "l"}',
        b'{"task_id": 1, "lease": "l", "x": Infinity}',
        b'{"task_id": 1e999, "lease": "l"}',
        b"[" * 100_000 + b"]" * 100_000,
    ):
        response = await env.http.post(
            "/api/v1/subcontractor/heartbeat",
            content=raw,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == "body"
    # what JSON carries and a database column may not: NUL and lone surrogates
    answer = _answer(task, data={"state": "on", "note": "\x00\udc80", "\x00": "\ud800"})
    accepted = await _call_escaped(env, token, "result", answer)
    assert accepted.status_code == 200, accepted.text
    await wait_for(env, job_id, "done")


async def test_error_messages_with_nul_and_lone_surrogates_are_stored(env: Env) -> None:
    job_id, token, task = await _leased_task(env)
    body = {k: task[k] for k in ("task_id", "cookie", "lease")}
    for lease in ("\x00", "\udc80"):
        heartbeat = {"task_id": task["task_id"], "lease": lease}
        stale = await _call_escaped(env, token, "heartbeat", heartbeat)
        assert stale.status_code == 409, stale.text
    message = {**body, "message": "BMC\x00 said \udc80 no"}
    failed = await _call_escaped(env, token, "error", message)
    assert failed.status_code == 200, failed.text
    job = await wait_for(env, job_id, "error")
    assert job.message == "simulated.set_power failed: BMC\ufffd said \ufffd no"
