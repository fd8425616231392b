"""The lease report API, ``POST /api/v1/subcontractor/leases``: the DHCP leases a site's
boot services see (``docs/boot.md``, "Leases").

The body is ``{site, leases: [{mac, address, hostname, starts, ends, state}]}`` with a
subcontractor token whose sites hold ``site`` and whose modules hold ``boot``. Every lease
is checked before any is recorded: a bad one is refused (400 naming it) and nothing changes.
Answers ``{site, added, updated}``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor.db import transaction
from contractor.errors import InvalidInput
from contractor.metrics import instruments
from contractor.rest.auth import bearer_token
from contractor.rest.boot import check_boot_scope
from contractor.rest.state import app_state
from contractor.rest.subcontractor import PREFIX, _Body, _body, _identity
from contractor.services import leases as lease_service
from contractor.services import site as site_service

__all__ = ["LeasesRequest", "lease_routes", "leases_openapi"]

MAX_LEASES = 5000  # in one report
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class LeaseIn(_Body):
    mac: str = Field(max_length=17, description="The client's MAC, aa:bb:cc:dd:ee:ff.")
    address: str = Field(max_length=45, description="The leased IPv4 or IPv6 address.")
    hostname: str = Field(default="", max_length=253, description="The name the client gave.")
    starts: str | None = Field(default=None, max_length=40, description="ISO 8601, with zone.")
    ends: str | None = Field(default=None, max_length=40, description="ISO 8601, with zone.")
    state: Literal["active", "expired", "released"] = "active"


class LeasesRequest(_Body):
    site: str = Field(min_length=1, max_length=40, description="The site whose leases.")
    leases: list[LeaseIn] = Field(max_length=MAX_LEASES, description="The leases seen.")


def _moment(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not an ISO 8601 time", field=field) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{value!r} has no time zone (add Z or +00:00)", field=field)
    return moment.astimezone(dt.UTC)


def _checked(index: int, lease: LeaseIn) -> lease_service.LeaseReport:
    where = f"leases[{index}]"
    mac = lease.mac.lower().replace("-", ":")
    if not MAC.match(mac):
        raise InvalidInput(f"{lease.mac!r} is not a MAC address", field=f"{where}.mac")
    try:
        address = str(ipaddress.ip_address(lease.address))
    except ValueError:
        raise InvalidInput(
            f"{lease.address!r} is not an IP address", field=f"{where}.address"
        ) from None
    starts = _moment(lease.starts, f"{where}.starts")
    ends = _moment(lease.ends, f"{where}.ends")
    if starts is not None and ends is not None and ends < starts:
        raise InvalidInput("the lease ends before it starts", field=f"{where}.ends")
    return lease_service.LeaseReport(mac, address, lease.hostname, starts, ends, lease.state)


async def report_leases(request: Request) -> Response:
    state = app_state(request.app)
    bearer_token(request)  # no token: 401 before anything else
    body = await _body(request, LeasesRequest)
    token = await _identity(state, request)
    check_boot_scope(token, body.site, "report the leases of")
    reports = [_checked(index, lease) for index, lease in enumerate(body.leases)]
    async with transaction(state.writer_sessions) as session:
        site = await site_service.get_site(session, body.site)
        added, updated = await lease_service.record_leases(session, site, reports)
    instruments().leases(added, updated)
    return JSONResponse({"site": body.site, "added": added, "updated": updated})


def leases_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """The lease API's answer and request schema, for the task API's OpenAPI document."""
    answer = {
        "type": "object",
        "properties": {
            "site": {"type": "string"},
            "added": {"type": "integer"},
            "updated": {"type": "integer"},
        },
    }
    return answer, LeasesRequest.model_json_schema(ref_template="#/components/schemas/{model}")


def lease_routes() -> list[Route]:
    return [Route(f"{PREFIX}/leases", report_leases, methods=["POST"])]
