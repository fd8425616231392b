"""The boot data API, ``POST /api/v1/subcontractor/boot``: a site's reservations and DHCP
pools for its boot services (``docs/boot.md``, "Boot data API").

The body is ``{site, since, cursor, limit, wait}`` with a subcontractor token whose sites
hold ``site`` and whose modules hold ``boot``:

* no ``since`` (and no ``cursor``): a snapshot, in pages of at most ``limit`` entries;
* ``since`` (a version an earlier answer gave): the changes after it, in version order;
  with ``wait`` > 0 and none yet, the request is held until one comes (woken by the commit
  that changes the inventory, as task polls are) or ``wait`` seconds pass;
* ``cursor`` (from an answer that had more): the next page of that snapshot or changes.

Answers: ``{site, version, snapshot, reservations, pools, removed, cursor}``. 410
(``PRUNED``) for a ``since`` whose changes are no longer kept: take a snapshot.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor.db import transaction
from contractor.errors import Forbidden, InvalidInput
from contractor.models import BootSite, Site
from contractor.rest.auth import bearer_token
from contractor.rest.state import AppState, app_state
from contractor.rest.subcontractor import (
    PREFIX,
    Whole,
    _Body,
    _body,
    _disconnected,
    _identity,
    _whole,
)
from contractor.services import boot as boot_service
from contractor.services import site as site_service
from contractor.services import tasks as task_service

__all__ = ["BOOT_MODULE", "BootRequest", "boot_routes", "check_boot_scope"]

BOOT_MODULE = "boot"  # the module a token needs for boot data
MAX_VERSION = 2**63 - 1
# a snapshot's ``s.<version>.<key>``, changes' ``c.<since>.<version>.<key>``
CURSOR_PATTERN = r"^(s\.[0-9]{1,19}|c\.[0-9]{1,19}\.[0-9]{1,19})\.[a-z]+:[0-9]{1,19}$"


# (the bounds before the validator, or the JSON schema shows pydantic's names for them)
Version = Annotated[int, Field(ge=0, le=MAX_VERSION), BeforeValidator(_whole)]


class BootRequest(_Body):
    # a cursor goes on from where its answer left off: no since beside it
    model_config = ConfigDict(
        json_schema_extra={
            "not": {"required": ["since", "cursor"], "properties": {"since": {"type": "integer"}}}
        }
    )

    site: str = Field(min_length=1, max_length=40, description="The site whose boot data.")
    since: Version | None = Field(
        default=None,
        description="The version held: answer the changes after it (none: a snapshot).",
    )
    cursor: str | None = Field(
        default=None,
        max_length=100,
        pattern=CURSOR_PATTERN,
        description="Go on from an answer that had more (its cursor, unchanged; no since).",
    )
    limit: Whole = Field(
        default=1000, ge=1, le=boot_service.PAGE_LIMIT, description="At most this many entries."
    )
    wait: float = Field(
        default=0.0, ge=0, description="Seconds to wait for a change when none is there."
    )


class _Where:
    """What the request asks for, the cursor taken apart."""

    def __init__(self, body: BootRequest) -> None:
        self.snapshot = body.since is None
        self.version = body.since or 0
        self.after_key = ""
        self.after: tuple[int, str] | None = None
        if body.cursor is None:
            return
        if body.since is not None:
            raise InvalidInput("give since or cursor, not both", field="cursor")
        kind, _, rest = body.cursor.partition(".")
        try:
            if kind == "s":
                version, _, self.after_key = rest.partition(".")
                self.version = int(version)
            elif kind == "c":
                since, version, key = rest.split(".", 2)
                self.snapshot = False
                self.version = int(since)
                self.after = (int(version), key)
            else:
                raise ValueError(kind)
        except ValueError:
            raise InvalidInput(
                "cursor is not one an answer gave (copy it unchanged)", field="cursor"
            ) from None
        if not self.after_key and not self.after:
            raise InvalidInput(
                "cursor is not one an answer gave (copy it unchanged)", field="cursor"
            )


def check_boot_scope(
    token: task_service.Subcontractor, site: str, doing: str = "read the boot data of"
) -> None:
    """The token's sites hold ``site`` and its modules ``boot``, else 403."""
    if site not in token.sites:
        raise Forbidden(f"token {token.name!r} may not {doing} site {site!r}", field="site")
    if BOOT_MODULE not in token.modules:
        raise Forbidden(
            f"token {token.name!r} does not serve the {BOOT_MODULE!r} module, which boot "
            "data needs",
            field="site",
        )


async def _answer(state: AppState, body: BootRequest, where: _Where) -> boot_service.BootPage:
    """The page asked for, from a reader's session while the site's entries are current
    (the steady state of a long-poll: no write lock taken), else after a refresh in a
    writer's."""
    async with transaction(state.sessions) as session:
        site = await site_service.get_site(session, body.site)
        boot = await boot_service.current_boot_site(session, site)
        if boot is not None:
            return await _page(session, site, boot, body, where)
    async with transaction(state.writer_sessions) as session:
        site = await site_service.get_site(session, body.site)
        boot = await boot_service.refresh(
            session, site, settings=state.settings, cache=state.config_cache
        )
        return await _page(session, site, boot, body, where)


async def _page(
    session: AsyncSession, site: Site, boot: BootSite, body: BootRequest, where: _Where
) -> boot_service.BootPage:
    if where.snapshot:
        version = where.version if where.after_key else boot.version
        return await boot_service.snapshot_page(
            session, site, boot, after=where.after_key, limit=body.limit, version=version
        )
    return await boot_service.changes_page(
        session, site, boot, since=where.version, after=where.after, limit=body.limit
    )


def _json(page: boot_service.BootPage) -> dict[str, Any]:
    return {
        "site": page.site,
        "version": page.version,
        "snapshot": page.snapshot,
        "reservations": page.reservations,
        "pools": page.pools,
        "removed": page.removed,
        "cursor": page.cursor,
    }


async def boot_data(request: Request) -> Response:
    state = app_state(request.app)
    hub = state.hub
    bearer_token(request)  # no token: 401 before anything else
    body = await _body(request, BootRequest)
    token = await _identity(state, request)
    check_boot_scope(token, body.site)
    where = _Where(body)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(body.wait, state.settings.task_max_wait_seconds)
    gone: asyncio.Task[None] | None = None
    try:
        while True:
            changed = hub.config.waiter()  # taken before looking: no change is missed
            page = await _answer(state, body, where)
            remaining = deadline - loop.time()
            something = page.reservations or page.pools or page.removed or page.cursor
            if where.snapshot or something or remaining <= 0 or hub.draining:
                return JSONResponse(_json(page))
            if gone is None:
                gone = asyncio.create_task(_disconnected(request))
            woken = asyncio.create_task(changed.wait())
            try:
                # look again after a while anyway: on SQLite another process's change
                # wakes nobody here
                await asyncio.wait(
                    {woken, gone},
                    timeout=min(remaining, state.settings.boot_look_seconds),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                woken.cancel()
            if gone.done():
                return Response(status_code=499)  # nobody reads it
    finally:
        if gone is not None:
            gone.cancel()


def boot_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """The boot data API's path and request schema, for the task API's OpenAPI document."""
    entries = {"type": "array", "items": {"type": "object"}}
    answer = {
        "type": "object",
        "properties": {
            "site": {"type": "string"},
            "version": {"type": "integer"},
            "snapshot": {"type": "boolean"},
            "reservations": entries,
            "pools": entries,
            "removed": {"type": "array", "items": {"type": "string"}},
            "cursor": {"type": ["string", "null"]},
        },
    }
    return answer, BootRequest.model_json_schema(ref_template="#/components/schemas/{model}")


def boot_routes() -> list[Route]:
    return [Route(f"{PREFIX}/boot", boot_data, methods=["POST"])]
