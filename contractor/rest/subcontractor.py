"""The task API for subcontractors, ``/api/v1/subcontractor/`` (OpenAPI at ``openapi.json``).

Every call is a JSON POST with ``Authorization: Bearer sct_<key>.<secret>`` (a subcontractor
token scoped to sites and modules):

* ``poll`` ``{site, modules, max_tasks, wait}`` leases up to ``max_tasks`` tasks; with
  ``wait`` > 0 it holds the request (long-poll) until a task arrives or ``wait`` seconds pass.
* ``result`` ``{task_id, cookie, lease, data}`` answers a task, once.
* ``error`` ``{task_id, cookie, lease, message, retryable}`` reports a failed task.
* ``heartbeat`` ``{task_id, lease}`` extends a lease.
* ``boot`` ``{site, since, cursor, limit, wait}``: a site's boot data (``contractor.rest.boot``).

Bad bodies get 400 naming the field (``modules[0]``, ``data``, an unknown key quoted as JSON
when it is not a plain name, ``""`` say), exactly where the OpenAPI document's schemas refuse
them: whole numbers may be written ``2.0``, task ids fit the database's integer, numbers
are finite. Stale answers 409 (code ``STALE``) and change nothing; a body over
``task_max_body_bytes`` is 413 before it is read (``contractor.rest.limits``).
``POST /api/v1/signal/{config_uuid}`` is how a booted machine tells its job it is done (the
config UUID is the secret, as for ``/config``); its optional body ``{"cookie": "<job
id>(<pxe name>)"}`` says which boot signals, and a job that expects another refuses it (409).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor.db import transaction
from contractor.errors import ContractorError, InvalidInput, excerpt
from contractor.foreman import results
from contractor.logs import job_and_task
from contractor.metrics import instruments
from contractor.rest.auth import bearer_token
from contractor.rest.state import AppState, app_state
from contractor.services import hotpath
from contractor.services import tasks as task_service

__all__ = ["subcontractor_routes"]

PREFIX = "/api/v1/subcontractor"


# The largest id the database holds (task ids are PostgreSQL's ``integer``).
MAX_ID = 2**31 - 1


def _whole(value: object) -> object:
    """JSON Schema's ``integer`` is any whole number, ``2.0`` too: taken as ``2``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_whole)]
# (the bounds before the validator, or the JSON schema shows pydantic's names for them)
TaskId = Annotated[
    int,
    Field(ge=0, le=MAX_ID, description="The task's id (0 names none: `subcontractor check`)."),
    BeforeValidator(_whole),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PollRequest(_Body):
    site: str = Field(min_length=1, description="The site whose tasks to take.")
    modules: list[str] = Field(min_length=1, description="Modules this subcontractor serves.")
    max_tasks: Whole = Field(default=1, ge=1, le=100, description="Hand out at most this many.")
    wait: float = Field(
        default=0.0, ge=0, description="Seconds to wait for a task when none is ready."
    )


class ResultRequest(_Body):
    task_id: TaskId
    cookie: str
    lease: str
    data: dict[str, Any] = Field(description="The function's result (a JSON object).")


def _storable(text: str) -> str:
    """A message as a text column holds it: NUL (which JSON may escape, PostgreSQL refuses)
    becomes U+FFFD."""
    return text.replace("\x00", "\ufffd")


class ErrorRequest(_Body):
    task_id: TaskId
    cookie: str
    lease: str
    message: Annotated[str, AfterValidator(_storable)] = Field(max_length=2000)
    retryable: bool = Field(default=False, description="Offer the task again after a back-off.")


class HeartbeatRequest(_Body):
    task_id: TaskId
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


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {excerpt(text, 40)} is too large")
    return number


def _not_json(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


async def _body(request: Request, model: type[BodyT]) -> BodyT:
    body = await request.body()
    try:
        raw = json.loads(body or b"null", parse_float=_finite, parse_constant=_not_json)
        if b"\\ud" in body or b"\\uD" in body:  # only an escape makes a lone surrogate
            raw = _without_surrogates(raw)
    except ValueError as error:
        raise InvalidInput(f"the body is not JSON: {error}", field="body") from None
    except RecursionError:
        raise InvalidInput("the body is not JSON: it nests too deeply", field="body") from None
    if not isinstance(raw, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = _path(first["loc"])
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            message = f"unknown key {where} (the body takes {known})"
        else:
            message = f"{where or 'body'}: {first['msg']}"
        raise InvalidInput(message, field=where or "body") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    """The body with every lone surrogate (``"\\udc80"``: JSON, not text) made U+FFFD, as
    UTF-8 (the database, webhooks, GraphQL's answers) can carry it."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _path(loc: Sequence[int | str]) -> str:
    """Where in the body a value is: ``task_id``, ``modules[0]``, ``data.state``; a key that
    is not a plain name is quoted as JSON (``""``, ``data["a b"]``)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _NAME.fullmatch(part):
            path += f".{part}" if path else part
        else:
            quoted = json.dumps(excerpt(part))
            path += f"[{quoted}]" if path else quoted
    return path


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
    for module in {task.module for task in tasks}:
        attempts = (task.attempt for task in tasks if task.module == module)
        instruments().leased(body.site, module, attempts)
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


@contextmanager
def _answering(kind: str, task_id: int) -> Iterator[None]:
    """Log lines carry the task's id; the answer is counted by outcome."""
    try:
        with job_and_task(task_id=task_id):
            yield
    except ContractorError as refused:
        instruments().answer(kind, "stale" if refused.code == "STALE" else "refused")
        raise
    instruments().answer(kind, "accepted")


async def result(request: Request) -> Response:
    state, body, token = await _call(request, ResultRequest)
    with _answering("result", body.task_id):
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
    with _answering("error", body.task_id):
        async with transaction(state.writer_sessions) as session:
            task = await task_service.report_error(session, token=token, **dict(body))
    return JSONResponse({"status": "retrying" if body.retryable else "failed", "task_id": task.id})


async def heartbeat(request: Request) -> Response:
    state, body, token = await _call(request, HeartbeatRequest)
    lease_seconds = state.settings.task_lease_seconds
    with _answering("heartbeat", body.task_id):
        async with transaction(state.writer_sessions) as session:
            task = await task_service.heartbeat(
                session, token=token, lease_seconds=lease_seconds, **dict(body)
            )
    assert task.lease_expires_at is not None
    return JSONResponse({"lease_expires_at": task.lease_expires_at.isoformat()})


class SignalRequest(_Body):
    cookie: str | None = Field(
        default=None,
        max_length=200,
        description="<job id>(<pxe name>): needed when the job expects a boot target.",
    )


async def signal(request: Request) -> Response:
    """A booted machine says it is done: the unfinished job of the structure with this config
    UUID (or of its foundation) sees ``signaling.complete``. The body, when there is one, is
    ``{"cookie": "<job id>(<pxe name>)"}`` (``services.tasks.signal_job``)."""
    body = SignalRequest() if not await request.body() else await _body(request, SignalRequest)
    async with transaction(app_state(request.app).writer_sessions) as session:
        job = await task_service.signal_job(
            session, request.path_params["config_uuid"], cookie=body.cookie
        )
    return JSONResponse({"status": "received", "job_id": job.id})


# Every refusal: ``{"error": {"code", "message", "field"}}`` (``contractor.rest.errors``).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "Stable, e.g. INVALID_INPUT, STALE."},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "Where the fault is."},
            },
        }
    },
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the task API."""

    def answer(description: str) -> dict[str, Any]:
        error = {"$ref": "#/components/schemas/Error"}
        return {"description": description, "content": {"application/json": {"schema": error}}}

    errors = {
        "400": answer("A malformed body; the message names the field."),
        "401": answer("No valid subcontractor token."),
        "403": answer("The token's sites or modules do not allow this."),
        "404": answer("No such site or task."),
        "413": answer("The body is larger than the server accepts (task_max_body_bytes)."),
    }
    stale = {"409": answer("Stale: not the current lease or cookie; nothing changed.")}

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

    from contractor.rest.boot import boot_openapi  # (it builds on this module)
    from contractor.rest.leases import leases_openapi

    boot_answer, boot_request = boot_openapi()
    leases_answer, leases_request = leases_openapi()
    gone = {"410": answer("Those changes are no longer kept (PRUNED): take a snapshot.")}
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
            "/boot": operation(
                "A site's boot data: a snapshot, or the changes since a version (may wait)",
                "BootRequest",
                boot_answer,
                gone,
            ),
            "/leases": operation(
                "Report the DHCP leases a site's boot services see",
                "LeasesRequest",
                leases_answer,
                {},
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PollRequest": _schema(PollRequest),
                "ResultRequest": _schema(ResultRequest),
                "ErrorRequest": _schema(ErrorRequest),
                "HeartbeatRequest": _schema(HeartbeatRequest),
                "BootRequest": boot_request,
                **leases_request.pop("$defs", {}),
                "LeasesRequest": leases_request,
                "Task": _schema(TaskOut),
                "Error": ERROR_SCHEMA,
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
