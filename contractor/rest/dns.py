"""``/dns``: the zone files Contractor generates, for any authenticated user.

::

    GET /dns/zones          {"zones": [{"name", "kind", "serial", "file", "valid", "problems"}]}
    GET /dns/zones/{name}   the zone file text (text/dns), exactly as ``contractor dns export``
                            writes it; ETag "<serial>-<content hash>"

Reading publishes: a zone whose content changed since it was last published gets its new
serial now (the same one an export would give it), so the text served is always consistent
with its serial. A zone that cannot be generated answers 409 naming why; an unknown zone 404.
"""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import bindgen
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
                    "valid": zone.data is not None,
                    "problems": list(zone.problems),
                }
                for zone in zones
            ]
        }
    )


@authenticated("reader", writes=True)  # publishing may store a new serial
async def zone_file(request: Request, session: AsyncSession, user: User) -> Response:
    zone = await dns.find_published_zone(session, request.path_params["name"])
    if zone.data is None:
        raise InvalidState(f"zone {zone.name} cannot be generated: " + "; ".join(zone.problems))
    try:
        # Rendering a big zone is CPU work: keep it off the event loop.
        text = await anyio.to_thread.run_sync(dns.zone_text, zone)
    except bindgen.ZoneError as error:
        raise InvalidState(
            f"zone {zone.name} cannot be generated: " + "; ".join(error.problems)
        ) from None
    return Response(
        text,
        media_type="text/dns",
        headers={"ETag": f'"{zone.serial}-{zone.content_hash}"', "Cache-Control": "no-cache"},
    )
