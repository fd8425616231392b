"""``/dns``: the zone files Contractor generates, for any authenticated user.

::

    GET /dns/zones          {"zones": [{"name", "kind", "serial", "file", "valid", "problems",
                                        "details": [{"code", "message", "record"}]}]}
    GET /dns/zones/{name}   the zone file text (text/dns), exactly as ``contractor dns export``
                            writes it; ETag "<serial>-<content hash>"

Reading publishes: a zone whose content changed since it was last published gets its new
serial now (the same one an export would give it), so the text served is always consistent
with its serial. Both read ``services.dns.publish_zones``, as GraphQL, the export and the
pusher do, so they agree on every zone. An invalid zone is served as it last was valid, with
``Contractor-Zone-Valid: false`` and its problems (JSON) in ``Contractor-Zone-Problems``; one
that never was answers 409 naming why; an unknown zone 404.
"""

from __future__ import annotations

import json

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor.errors import InvalidState
from contractor.models import User
from contractor.rest.auth import authenticated
from contractor.services import dns

__all__ = ["dns_routes"]


def dns_routes() -> list[Route]:
    return [
        Route("/dns/zones", list_zones, methods=["GET"]),
        Route("/dns/zones/{name}", zone_file, methods=["GET"]),
    ]


@authenticated("reader", writes=True)  # publishing may store a new serial
async def list_zones(request: Request, session: AsyncSession, user: User) -> Response:
    zones = await dns.publish_zones(session)
    return JSONResponse(
        {
            "zones": [
                {
                    "name": zone.name,
                    "kind": zone.kind,
                    "serial": zone.serial,
                    "file": zone.file_name,
                    "valid": zone.valid,
                    "problems": list(zone.problems),
                    "details": _details(zone),
                }
                for zone in zones
            ]
        }
    )


@authenticated("reader", writes=True)  # publishing may store a new serial
async def zone_file(request: Request, session: AsyncSession, user: User) -> Response:
    zone = await dns.find_published_zone(session, request.path_params["name"])
    # Rendering a big zone is CPU work: keep it off the event loop.
    text = await anyio.to_thread.run_sync(dns.served_text, zone)
    if text is None:
        raise InvalidState(f"zone {zone.name} cannot be generated: " + "; ".join(zone.problems))
    headers = {
        "ETag": f'"{zone.serial}-{zone.published_hash}"',
        "Cache-Control": "no-cache",
        "Contractor-Zone-Valid": "true" if zone.valid else "false",
    }
    if not zone.valid:
        headers["Contractor-Zone-Problems"] = json.dumps(_details(zone))  # ASCII: a header
    return Response(text, media_type="text/dns", headers=headers)


def _details(zone: dns.DnsZone) -> list[dict[str, str | None]]:
    return [
        {"code": problem.code, "message": problem.message, "record": problem.record}
        for problem in zone.details
    ]
