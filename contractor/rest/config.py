"""``/config``: what booting machines and installers fetch (the iPXE chain).

A machine knows its Structure's unguessable config UUID (DHCP option 210) and fetches::

    GET /config/{config_uuid}               the rendered configuration, JSON
    GET /config/{config_uuid}/boot_script   "#!ipxe" + its PXE's boot script, rendered
    GET /config/{config_uuid}/pxe_template  its PXE's installer template, rendered

The original's ``/config/{config,boot_script,pxe_template}/c/{config_uuid}`` are aliases
(existing iPXE images chain to ``/config/boot_script/c/<option 210>``).

What a machine boots is decided by ``GET /boot/{config_uuid}`` (the chain target the boot
services give iPXE): the iPXE script of its PXE target while a job runs on it or it is not
built yet, else a script that boots its local disk (``services.boot.boot_decision``).

Anything that enumerates needs an authenticated user (``Authorization: Bearer <token>``)::

    GET /config/?site=&hostname=&limit=&offset=   Structures and their config UUIDs
    GET /config/foundation/{locator}               a Foundation's rendered configuration

As in the original: no PXE set on the provisioning interface → an empty 200. Unlike it:
lookups by structure id, locator or source IP without a user are gone (they let anyone
enumerate configurations), and the installer template gets no ``__connection_paramaters``
(the BMC credentials the original injected): a secret is never part of a configuration.
Errors are ``{"error": {"code", "message", "field"}}`` (``contractor.rest.errors``): 404 for
an unknown UUID, 401 without a valid token, 500 (``CONFIG_ERROR``) when the stored values do
not merge or render (``config_error_answers``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from contractor.config import render_template
from contractor.db import transaction
from contractor.errors import ConfigError, ContractorError, InvalidInput
from contractor.models import User
from contractor.rest import auth, errors
from contractor.rest.state import app_state
from contractor.services import boot as boot_service
from contractor.services import config as config_service
from contractor.services.building import get_foundation

__all__ = ["boot_answer", "config_error_answers", "config_routes", "ipxe_text"]

NO_STORE = {"Cache-Control": "no-store"}  # configurations carry password hashes and keys
IPXE_HEADER = "#!ipxe\n\n"


def config_routes() -> list[Route]:
    return [
        Route("/config/", list_configs, methods=["GET"]),
        Route("/config/foundation/{locator}", foundation_config, methods=["GET"]),
        Route("/config/{config_uuid}", structure_config, methods=["GET"]),
        Route("/config/{config_uuid}/boot_script", boot_script, methods=["GET"]),
        Route("/config/{config_uuid}/pxe_template", pxe_template, methods=["GET"]),
        # The original's URLs, built into existing iPXE images and installer templates.
        Route("/config/config/c/{config_uuid}", structure_config, methods=["GET"]),
        Route("/config/boot_script/c/{config_uuid}", boot_script, methods=["GET"]),
        Route("/config/pxe_template/c/{config_uuid}", pxe_template, methods=["GET"]),
        Route("/boot/{config_uuid}", boot, methods=["GET"]),
    ]


def _private_error(error: ContractorError) -> Response:
    """A route booting machines fetch: its answers are never cached, errors included, and a
    stored configuration that does not merge or render is the server's fault, not the
    request's."""
    response = errors.error_response(error, status=500 if isinstance(error, ConfigError) else None)
    response.headers.update(NO_STORE)
    return response


def _rendering_error(error: ContractorError) -> Response:
    if isinstance(error, ConfigError):
        return _private_error(error)
    return errors.error_response(error)


def config_error_answers() -> errors.ErrorAnswers:
    """How these routes answer domain errors (the app's mapping, ``contractor.rest.errors``)."""
    private = dict.fromkeys((structure_config, boot_script, pxe_template, boot), _private_error)
    return {**private, foundation_config: _rendering_error}


async def structure_config(request: Request) -> Response:
    state = app_state(request.app)
    async with transaction(state.sessions) as session:
        structure = await config_service.structure_by_config_uuid(
            session, request.path_params["config_uuid"]
        )
        values = await config_service.composed_config(
            session, structure, settings=state.settings, cache=state.config_cache, for_json=True
        )
    return JSONResponse(values, headers=NO_STORE)


async def _pxe_text(request: Request, part: str) -> Response:
    state = app_state(request.app)
    async with transaction(state.sessions) as session:
        structure = await config_service.structure_by_config_uuid(
            session, request.path_params["config_uuid"]
        )
        pxe = await config_service.boot_pxe(session, structure)
        if pxe is None:
            return Response(b"", headers=NO_STORE)
        values = await config_service.composed_config(
            session, structure, settings=state.settings, cache=state.config_cache
        )
    if part == "boot_script":
        text = render_template(IPXE_HEADER + pxe.boot_script, values, name="boot_script")
    else:
        text = render_template(pxe.template, values, name="pxe_template")
    return PlainTextResponse(text, headers=NO_STORE)


# iPXE returns to the firmware with a failure, which then tries its next boot device (the
# disk); on BIOS, booting the first disk directly is quicker and needs no boot order.
_LOCAL_DISK = """\
echo Contractor: {reason}: booting the local disk
iseq ${{platform}} efi && exit 1 ||
sanboot --no-describe --drive 0x80 || exit 1
"""


def ipxe_text(text: str) -> str:
    """iPXE's ``echo`` prints a line as it is; a line break or ``${`` would end or expand it."""
    return text.replace("\n", " ").replace("${", "$ {")


async def boot(request: Request) -> Response:
    """The machine's boot script: its PXE target's, or its local disk."""
    return await boot_answer(request, request.path_params["config_uuid"])


async def boot_answer(request: Request, config_uuid: str, *, note: str = "") -> Response:
    """``/boot/<config_uuid>``'s answer, with ``note`` echoed first when given (discovery
    answers a MAC Contractor knows with it)."""
    state = app_state(request.app)
    first = f"echo Contractor: {ipxe_text(note)}\n" if note else ""
    async with transaction(state.sessions) as session:
        structure = await config_service.structure_by_config_uuid(session, config_uuid)
        decision = await boot_service.boot_decision(session, structure)
        if decision.pxe is None:
            text = IPXE_HEADER + first + _LOCAL_DISK.format(reason=ipxe_text(decision.reason))
            return PlainTextResponse(text, headers=NO_STORE)
        values = await config_service.composed_config(
            session, structure, settings=state.settings, cache=state.config_cache
        )
    text = render_template(decision.pxe.boot_script, values, name="boot_script")
    header = f"{IPXE_HEADER}{first}echo Contractor: {ipxe_text(decision.reason)}\n"
    return PlainTextResponse(header + text, headers=NO_STORE)


async def boot_script(request: Request) -> Response:
    return await _pxe_text(request, "boot_script")


async def pxe_template(request: Request) -> Response:
    return await _pxe_text(request, "pxe_template")


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {text!r}", field=name) from None


@auth.authenticated("reader")
async def list_configs(request: Request, session: AsyncSession, user: User) -> Response:
    listing = await config_service.list_structure_configs(
        session,
        site=request.query_params.get("site"),
        hostname=request.query_params.get("hostname"),
        limit=_int_param(request, "limit", 100),
        offset=_int_param(request, "offset", 0),
    )
    configs = [
        {
            "config_uuid": item.config_uuid,
            "hostname": item.hostname,
            "site": item.site,
            "url": f"/config/{item.config_uuid}",
        }
        for item in listing
    ]
    return JSONResponse({"configs": configs}, headers=NO_STORE)


@auth.authenticated("reader")
async def foundation_config(request: Request, session: AsyncSession, user: User) -> Response:
    state = app_state(request.app)
    foundation = await get_foundation(session, request.path_params["locator"])
    values = await config_service.composed_config(
        session, foundation, settings=state.settings, cache=state.config_cache, for_json=True
    )
    return JSONResponse(values, headers=NO_STORE)
