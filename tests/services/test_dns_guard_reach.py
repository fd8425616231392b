"""The DNS guard checks only the zones a change can reach when its caller says which
(``kept_exportable(touched=...)``: a new address, a TXT, MX or SRV entry), and decides as a
check of every zone would: through random series of changes, every guarded change's partial
build is compared with a build of every zone, before and after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.services import directory, dns_guard
from contractor.services.dns_zones import DnsZone, Touched
from tests.bindgen.inventory import build_lab
from tests.services.test_dns_incremental import Changes


class Oracle:
    """Stands in for the guard's zone builds: hands the guard its partial build and keeps a
    build of every zone beside it, then holds the guard's verdict to the full one's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full: dict[int, dict[str, DnsZone]] = {}
        self.partial_checks = 0
        self.real_zones = dns_guard._zones
        self.real_new = dns_guard._new_problems
        monkeypatch.setattr(dns_guard, "_zones", self.zones)
        monkeypatch.setattr(dns_guard, "_new_problems", self.new_problems)

    async def zones(
        self, session: AsyncSession, touched: Touched | None
    ) -> dict[str, DnsZone] | None:
        built = await self.real_zones(session, touched)
        if built is not None and touched is not None:
            self.full[id(built)] = await self.real_zones(session, None) or {}
        return built

    def new_problems(
        self, before: Mapping[str, DnsZone], after: Mapping[str, DnsZone]
    ) -> list[str]:
        verdict = self.real_new(before, after)
        full_after = self.full.pop(id(after), None)
        full_before = self.full.pop(id(before), None)
        if full_after is None or full_before is None:
            return verdict  # every zone was built: nothing to compare
        self.partial_checks += 1
        # the zones built are built as a build of every zone builds them ...
        for name, zone in after.items():
            assert zone.content_hash == full_after[name].content_hash, name
            assert zone.problems == full_after[name].problems, name
        # ... and no zone left out changed
        for name, zone in full_after.items():
            if name not in after:
                old = full_before.get(name)
                assert old is not None, name
                assert old.content_hash == zone.content_hash, name
        assert sorted(verdict) == sorted(self.real_new(full_before, full_after))
        return verdict


class Additions(Changes):
    """The random changes, with more of the kinds the guard checks in part: new addresses
    (free and taken names), and TXT, MX and SRV entries at free and taken names."""

    async def record(self) -> None:
        zone = self.random.choice([self.lab.example, self.lab.lab])
        structures = await self.structures()
        name = self.random.choice(
            [self.name("r"), self.random.choice(structures).hostname, "www", "@"]
        )
        kind = self.random.choice(["TXT", "MX", "SRV"])
        fields: dict[str, Any] = {"type": kind, "name": name if kind != "SRV" else "_x._tcp"}
        if kind == "TXT":
            fields["text"] = self.name("v")
        else:
            fields["target"] = self.random.choice(["mail", "ns1", "nowhere.example.net."])
            fields["priority"] = 10
            if kind == "SRV":
                fields.update(weight=1, port=self.random.randrange(1, 100))
        await directory.create_entry(self.session, zone=zone, **fields)

    def kinds(self) -> list[tuple[Callable[[], Awaitable[None]], int]]:
        # (a refused change is tried again with another; the guard's verdict on it was
        # compared all the same)
        return [
            (self.record, 4),
            (self.add_address, 3),
            (self.add_host, 2),
            (self.entry, 1),
            (self.rename_host, 1),
            (self.delete_address, 1),
        ]


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_a_partial_check_decides_as_a_check_of_every_zone(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    lab = await build_lab(session)
    await session.commit()
    oracle = Oracle(monkeypatch)
    changes = Additions(session, lab, seed)
    done = [await changes.apply() for _ in range(40)]
    assert oracle.partial_checks >= 10, done
