"""The zones as Contractor publishes them for BIND."""

from __future__ import annotations

import anyio.to_thread
import strawberry

import bindgen
from contractor.schema.context import Info
from contractor.schema.permissions import Reader
from contractor.services import dns


@strawberry.type(description="One reason a zone cannot be published as the inventory has it.")
class ZoneProblem:
    code: str = strawberry.field(
        description="Stable: NO_NAMESERVERS, NAME_CLASH, CNAME_AND_OTHER_DATA, "
        "NAMESERVER_WITHOUT_ADDRESS, DATA_BELOW_DELEGATION... (docs/dns.md)."
    )
    message: str
    record: str | None = strawberry.field(
        description="The fully qualified owner of the record at fault, when one is (for a "
        "name server without an address: the server's name)."
    )

    @classmethod
    def of(cls, problem: bindgen.Problem) -> ZoneProblem:
        return cls(code=problem.code, message=problem.message, record=problem.record)


@strawberry.type(
    description="A zone file as Contractor publishes it. An invalid zone keeps its last good "
    "serial and text, and its problems say why the inventory's version is not published."
)
class PublishedZone:
    zone: strawberry.Private[dns.DnsZone]
    name: str
    kind: str = strawberry.field(description="forward or reverse")
    serial: int | None = strawberry.field(
        description="The serial of the text served: the last good version's for an invalid "
        "zone; null when the zone never had one."
    )
    valid: bool = strawberry.field(
        description="The inventory's version of the zone is published (no problems)."
    )
    problems: list[ZoneProblem] = strawberry.field(
        description="Why the inventory's version cannot be published; empty when valid."
    )

    @strawberry.field(
        description="The zone file served: the current one, or for an invalid zone its last "
        "good one; null when the zone never had one."
    )
    async def text(self) -> str | None:
        # Rendering a big zone is CPU work: keep it off the event loop.
        return await anyio.to_thread.run_sync(dns.served_text, self.zone)


@strawberry.type
class DnsQuery:
    @strawberry.field(
        description="The zones as published for BIND, each with its problems, serial and "
        "text (reading publishes: a zone whose content changed gets its new serial now).",
        extensions=[Reader()],
    )
    async def published_zones(self, info: Info, name: str | None = None) -> list[PublishedZone]:
        async with info.context.writer_sessions() as session, session.begin():
            zones = await dns.publish_zones(session)
        return [
            PublishedZone(
                zone=z,
                name=z.name,
                kind=z.kind,
                serial=z.serial,
                valid=z.valid,
                problems=[ZoneProblem.of(problem) for problem in z.details],
            )
            for z in zones
            if name is None or z.name == name.strip().lower().rstrip(".")
        ]
