"""The task API for subcontractors, ``/api/v1/subcontractor/`` (OpenAPI at ``openapi.json``).

Every call is a JSON POST with ``Authorization: Bearer sct_<key>.<secret>`` (a subcontractor
token scoped to sites and modules):

* ``poll`` ``{site, modules, max_tasks, wait}`` leases up to ``max_tasks`` tasks; with
  ``wait`` > 0 it holds the request (long-poll) until a task arrives or ``wait`` seconds pass.
* ``result`` ``{task_id, cookie, lease, data}`` answers a task, once.
* ``error`` ``{task_id, cookie, lease, message, retryable}`` reports a failed task.
* ``heartbeat`` ``{task_id, lease}`` extends a lease.

Bad bodies get 400 naming the field; stale answers 409 (code ``STALE``) and change nothing.
``POST /api/v1/signal/{config_uuid}`` is how a booted machine tells its job it is done (the
config UUID is the secret, as for ``/config``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor.db import transaction
from contractor.errors import InvalidInput
from contractor.foreman import results
from contractor.rest.auth import bearer_token
from contractor.rest.state import AppState, app_state
from contractor.services import hotpath
from contractor.services import tasks as task_service

__all__ = ["subcontractor_routes"]

PREFIX = "/api/v1/subcontractor"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PollRequest(_Body):
    site: str = Field(min_length=1, description="The site whose tasks to take.")
    modules: list[str] = Field(min_length=1, description="Modules this subcontractor serves.")
    max_tasks: int = Field(default=1, ge=1, le=100, description="Hand out at most this many.")
    wait: float = Field(
        default=0.0, ge=0, description="Seconds to wait for a task when none is ready."
    )


class ResultRequest(_Body):
    task_id: int
    cookie: str
    lease: str
    data: dict[str, Any] = Field(description="The function's result (a JSON object).")


class ErrorRequest(_Body):
    task_id: int
    cookie: str
    lease: str
    message: str = Field(max_length=2000)
    retryable: bool = Field(default=False, description="Offer the task again after a back-off.")


class HeartbeatRequest(_Body):
    task_id: int
    lease: str


class TaskOut(BaseModel):
    task_id: int
    job_id: int
    module: str
    function: str
    cookie: str
    lease: str
    attempt: int
    lease_expires_at: str
    parameters: Any


BodyT = TypeVar("BodyT", bound=_Body)


async def _body(request: Request, model: type[BodyT]) -> BodyT:
    try:
        raw = json.loads(await request.body() or b"null")
    except ValueError as error:
        raise InvalidInput(f"the body is not JSON: {error}", field="body") from None
    if not isinstance(raw, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None


def _task_out(task: hotpath.LeasedTask) -> dict[str, Any]:
    """A leased task as ``TaskOut`` describes it (built directly: every poll answers with
    these, and the values are the database's own)."""
    return {
        "task_id": task.id,
        "job_id": task.job_id,
        "module": task.module,
        "function": task.function,
        "cookie": task.cookie,
        "lease": task.lease,
        "attempt": task.attempt,
        "lease_expires_at": task.lease_expires_at.isoformat(),
        "parameters": task.parameters,
    }


async def _identity(state: AppState, request: Request) -> task_service.Subcontractor:
    """The subcontractor behind the request's token (checked once, then cached a while). The
    check only reads: a reader session, so on SQLite it never waits for the write lock."""
    text = bearer_token(request)
    cached = state.subcontractor_tokens.get(text)
    if cached is not None:
        return cached
    async with transaction(state.sessions) as session:
        return await task_service.authenticate_subcontractor(
            session, text, cache=state.subcontractor_tokens
        )


async def _call(
    request: Request, model: type[BodyT]
) -> tuple[AppState, BodyT, task_service.Subcontractor]:
    """The app's state, the request's body and who sent it: no token is 401 before anything
    else, then a bad body 400, then a bad token 401."""
    state = app_state(request.app)
    bearer_token(request)
    body = await _body(request, model)
    return state, body, await _identity(state, request)


async def _claim(
    state: AppState,
    token: task_service.Subcontractor,
    body: PollRequest,
    gone: asyncio.Task[None] | None,
) -> list[dict[str, Any]]:
    """Lease tasks for a poll (on PostgreSQL one autocommitted statement); gives them back
    and raises ``_Gone`` when the poller has gone meanwhile."""
    async with hotpath.leasing(state.engine, state.writer_sessions) as on:
        tasks = await task_service.claim_tasks(
            on,
            token=token,
            site=body.site,
            modules=body.modules,
            limit=body.max_tasks,
            lease_seconds=state.settings.task_lease_seconds,
        )
        if gone is not None and gone.done():
            await hotpath.release(on, tasks)  # nobody would get them
            raise _Gone
        return [_task_out(task) for task in tasks]


class _Gone(Exception):
    """The client went away while its poll was being answered."""


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body is read already, so
    the next message the server sends is ``http.disconnect``)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def poll(request: Request) -> Response:
    state = app_state(request.app)
    hub = state.hub
    gone: asyncio.Task[None] | None = None
    try:
        bearer_token(request)  # no token: 401 before anything else
        body = await _body(request, PollRequest)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(body.wait, state.settings.task_max_wait_seconds)
        if deadline > loop.time():
            # a long-poll whose client has gone must stop waiting: a task leased to it
            # would sit until its lease expires
            gone = asyncio.create_task(_disconnected(request))
        token: task_service.Subcontractor | None = None
        while True:
            woken = hub.tasks.waiter()
            looking_again = False
            try:
                if token is None:  # once per call, not per look
                    token = await _identity(state, request)
                answer = await _claim(state, token, body, gone)
                remaining = deadline - loop.time()
                if answer or remaining <= 0 or hub.draining:
                    return JSONResponse({"tasks": answer})
                # look again after a second at most: a lease may have expired meanwhile
                assert gone is not None
                await asyncio.wait(
                    {woken, gone}, timeout=min(remaining, 1.0), return_when=asyncio.FIRST_COMPLETED
                )
                if gone.done():
                    raise _Gone
                if hub.draining:  # shutting down: answer now, the poller comes back later
                    return JSONResponse({"tasks": []})
                looking_again = True
            finally:
                if looking_again:
                    hub.tasks.discard(woken)
                else:  # a wake-up that came meanwhile goes to another poller
                    hub.tasks.leave(woken)
    except _Gone:
        return Response(status_code=499)  # nobody reads it
    finally:
        if gone is not None:
            gone.cancel()


async def result(request: Request) -> Response:
    state, body, token = await _call(request, ResultRequest)
    job_id = await results.take_result(
        state.writer_sessions,
        settings=state.settings,
        cache=state.config_cache,
        token=token,
        **dict(body),  # task_id, cookie, lease, data
    )
    return JSONResponse({"status": "accepted", "job_id": job_id})


async def error(request: Request) -> Response:
    state, body, token = await _call(request, ErrorRequest)
    async with transaction(state.writer_sessions) as session:
        task = await task_service.report_error(session, token=token, **dict(body))
    return JSONResponse({"status": "retrying" if body.retryable else "failed", "task_id": task.id})


async def heartbeat(request: Request) -> Response:
    state, body, token = await _call(request, HeartbeatRequest)
    lease_seconds = state.settings.task_lease_seconds
    async with transaction(state.writer_sessions) as session:
        task = await task_service.heartbeat(
            session, token=token, lease_seconds=lease_seconds, **dict(body)
        )
    assert task.lease_expires_at is not None
    return JSONResponse({"lease_expires_at": task.lease_expires_at.isoformat()})


async def signal(request: Request) -> Response:
    """A booted machine says it is done: the unfinished job of the structure with this config
    UUID (or of its foundation) sees ``signaling.complete``."""
    async with transaction(app_state(request.app).writer_sessions) as session:
        job = await task_service.signal_job(session, request.path_params["config_uuid"])
    return JSONResponse({"status": "received", "job_id": job.id})


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the task API."""
    errors = {
        "400": {"description": "A malformed body; the message names the field."},
        "401": {"description": "No valid subcontractor token."},
        "403": {"description": "The token's sites or modules do not allow this."},
        "404": {"description": "No such site or task."},
    }
    stale = {"409": {"description": "Stale: not the current lease or cookie; nothing changed."}}

    def operation(summary: str, request: str, response: dict[str, Any], extra: dict[str, Any]):  # type: ignore[no-untyped-def]
        return {
            "post": {
                "summary": summary,
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": response}},
                    },
                    **errors,
                    **extra,
                },
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "Contractor subcontractor task API", "version": "1"},
        "servers": [{"url": PREFIX}],
        "paths": {
            "/poll": operation(
                "Lease tasks (optionally waiting for one)",
                "PollRequest",
                {
                    "type": "object",
                    "properties": {
                        "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}
                    },
                },
                {},
            ),
            "/result": operation(
                "Answer a task (accepted once)",
                "ResultRequest",
                {"type": "object", "properties": {"status": {"const": "accepted"}}},
                stale,
            ),
            "/error": operation("Report a failed task", "ErrorRequest", {"type": "object"}, stale),
            "/heartbeat": operation(
                "Extend a lease",
                "HeartbeatRequest",
                {"type": "object", "properties": {"lease_expires_at": {"type": "string"}}},
                stale,
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PollRequest": _schema(PollRequest),
                "ResultRequest": _schema(ResultRequest),
                "ErrorRequest": _schema(ErrorRequest),
                "HeartbeatRequest": _schema(HeartbeatRequest),
                "Task": _schema(TaskOut),
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def subcontractor_routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
        Route(f"{PREFIX}/poll", poll, methods=["POST"]),
        Route(f"{PREFIX}/result", result, methods=["POST"]),
        Route(f"{PREFIX}/error", error, methods=["POST"]),
        Route(f"{PREFIX}/heartbeat", heartbeat, methods=["POST"]),
        Route("/api/v1/signal/{config_uuid}", signal, methods=["POST"]),
    ]
