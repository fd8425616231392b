"""Discovery over HTTP (``docs/boot.md``, "Discovery"), for a subcontractor token whose
sites hold the site and whose modules hold ``boot``:

* ``GET /boot/discovery?mac=&site=``: the iPXE script a machine with no reservation boots
  (the discovery image), or, for a MAC a Foundation of the site has, that machine's own
  ``/boot/<config_uuid>`` answer;
* ``POST /api/v1/subcontractor/discovery`` ``{site, report}``: the report checked, recorded
  and acted on (``contractor.services.discovery``); answers ``{discovered, matched, located,
  problems}``.

Floods: at most ``discovery_reports_per_minute`` reports per site per minute (in each
server process) and ``discovery_max_undecided`` discovered machines per site that are not
located; beyond either, 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from contractor.db import transaction
from contractor.errors import InvalidInput, TooLarge
from contractor.metrics import instruments
from contractor.models import Structure
from contractor.rest.auth import bearer_token
from contractor.rest.boot import check_boot_scope
from contractor.rest.config import IPXE_HEADER, NO_STORE, boot_answer, ipxe_text
from contractor.rest.state import WINDOW_SECONDS, app_state
from contractor.rest.subcontractor import PREFIX, _Body, _body, _identity
from contractor.services import discovery as discovery_service
from contractor.services import site as site_service
from contractor.services.building import foundation_structure
from contractor.services.discovery_report import MAX_REPORT_BYTES, check_report
from contractor.services.validation import normalise_mac

__all__ = ["DiscoveryRequest", "discovery_routes"]

_MAX_BODY = MAX_REPORT_BYTES + 1024  # the report and its envelope

_SCRIPT = """\
echo Contractor: {reason}: booting the discovery image
kernel /files/discovery/vmlinuz initrd=initrd {args}
initrd --name initrd /files/discovery/initrd
boot
"""


class DiscoveryRequest(_Body):
    site: str = Field(min_length=1, max_length=40, description="The site the machine booted in.")
    report: dict[str, Any] = Field(description="The machine's hardware (docs/boot.md).")


def _too_many(message: str, retry_after: int) -> Response:
    error = {"code": "THROTTLED", "message": message, "field": "site"}
    return JSONResponse(
        {"error": error}, status_code=429, headers={"Retry-After": str(retry_after)}
    )


def _script(mac: str, reason: str, extra: str) -> str:
    args = f"contractor.discovery=1 contractor.mac={mac} {extra}".strip()
    return IPXE_HEADER + _SCRIPT.format(reason=ipxe_text(reason), args=ipxe_text(args))


async def discovery_script(request: Request) -> Response:
    state = app_state(request.app)
    bearer_token(request)
    token = await _identity(state, request)
    site_name = request.query_params.get("site") or ""
    if not site_name:
        raise InvalidInput("site is required", field="site")
    check_boot_scope(token, site_name, "boot the machines of")
    mac = normalise_mac(request.query_params.get("mac") or "", field="mac")
    if mac is None:
        raise InvalidInput("mac is required", field="mac")
    config_uuid: str | None = None
    async with transaction(state.sessions) as session:
        site = await site_service.get_site(session, site_name)
        foundation = await discovery_service.known_foundation(session, site, mac)
        reason = f"{mac} is not known in site {site_name!r}"
        if foundation is not None:
            structure: Structure | None = await foundation_structure(session, foundation)
            if structure is None:
                reason = f"{mac} is foundation {foundation.locator!r}, which has no structure"
            else:
                config_uuid = structure.config_uuid
                note = f"{mac} is known: foundation {foundation.locator!r}"
    if config_uuid is not None:
        return await boot_answer(request, config_uuid, note=note)
    extra = state.settings.boot_discovery_kernel_args
    return PlainTextResponse(_script(mac, reason, extra), headers=NO_STORE)


async def discovery_report(request: Request) -> Response:
    state = app_state(request.app)
    bearer_token(request)
    if len(await request.body()) > _MAX_BODY:
        raise TooLarge(f"a discovery report is at most {MAX_REPORT_BYTES} bytes", field="report")
    body = await _body(request, DiscoveryRequest)
    token = await _identity(state, request)
    check_boot_scope(token, body.site, "report discoveries in")
    report = check_report(body.report)
    settings = state.settings
    wait = state.discovery_reports.take(body.site, settings.discovery_reports_per_minute)
    if wait:
        instruments().discovery("throttled")
        return _too_many(
            f"site {body.site!r} sent more than {settings.discovery_reports_per_minute} "
            "discovery reports in the last minute (discovery_reports_per_minute)",
            wait,
        )
    async with transaction(state.writer_sessions) as session:
        site = await site_service.get_site(session, body.site)
        known = await discovery_service.find_by_mac(session, report["mac"])
        if known is None:
            held = await discovery_service.undecided_count(session, site)
            if held >= settings.discovery_max_undecided:
                instruments().discovery("throttled")
                return _too_many(
                    f"site {body.site!r} holds {held} discovered machines that are not "
                    f"located, the most it may (discovery_max_undecided): match or forget "
                    "some first",
                    int(WINDOW_SECONDS),
                )
        result = await discovery_service.record_report(session, site, report)
        answer = {
            "discovered": result.discovered.id,
            "matched": result.matched,
            "located": result.located,
            "problems": result.problems,
        }
    outcome = "located" if result.located else "matched" if result.matched else "unmatched"
    instruments().discovery(outcome)
    return JSONResponse(answer, status_code=201 if result.new else 200)


def discovery_routes() -> list[Route]:
    """Before ``/boot/{config_uuid}`` (``discovery`` is not a config UUID)."""
    return [
        Route("/boot/discovery", discovery_script, methods=["GET"]),
        Route(f"{PREFIX}/discovery", discovery_report, methods=["POST"]),
    ]
