"""dnsmasq's lease file read and reported to a real Contractor over loopback (the served app
of the boot API tests, PostgreSQL and SQLite)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from subcontractor.boot.leases import read_dnsmasq_leases, report_leases
from subcontractor.client import Client, Rejected
from subcontractor.config import ContractorConfig
from tests.factories import new_mac
from tests.rest.test_boot_http import Served, _graphql, agent, database_url, served

__all__ = ["agent", "database_url", "served"]

NOW = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)


def test_the_lease_file_gives_ipv4_leases_and_skips_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "dnsmasq.leases"
    assert read_dnsmasq_leases(path, now=NOW) == []  # no file yet: none
    later = int((NOW + dt.timedelta(hours=1)).timestamp())
    earlier = int((NOW - dt.timedelta(hours=1)).timestamp())
    path.write_text(
        f"{later} 52:54:00:AA:BB:01 10.0.0.20 m1 01:52:54:00:aa:bb:01\n"
        f"{earlier} 52:54:00:aa:bb:02 10.0.0.21 * *\n"
        "0 52:54:00:aa:bb:03 10.0.0.22 m3 *\n"
        "duid 00:01:00:01:2a:2b:2c:2d:52:54:00:aa:bb:01\n"
        f"{later} 1234 fd00::5 m6 00:01\n"
        "garbage\n"
    )
    leases = read_dnsmasq_leases(path, now=NOW)
    assert [(lease["mac"], lease["state"], lease["hostname"]) for lease in leases] == [
        ("52:54:00:aa:bb:01", "active", "m1"),
        ("52:54:00:aa:bb:02", "expired", ""),
        ("52:54:00:aa:bb:03", "active", "m3"),
    ]
    assert leases[0]["ends"] == "2026-12-07T08:00:00+00:00"
    assert leases[2]["ends"] is None  # never expires


async def test_leases_read_are_reported_and_shown_in_graphql(
    served: Served, agent: httpx.AsyncClient, tmp_path: Path
) -> None:
    world = served.world
    mac = new_mac()
    path = tmp_path / "dnsmasq.leases"
    path.write_text(f"{int(NOW.timestamp()) + 3600} {mac} 10.20.0.77 m77 *\n")
    config = ContractorConfig(url=served.base, token=world.token, site=world.site)
    client = Client(config)
    try:
        leases = read_dnsmasq_leases(path, now=NOW)
        assert await report_leases(client, world.site, leases) == 1
        assert await report_leases(client, world.site, leases) == 0  # known: updated
        other = Client(ContractorConfig(url=served.base, token=world.ipmi_token, site=world.site))
        try:
            with pytest.raises(Rejected) as refused:
                await report_leases(other, world.site, leases)
            assert refused.value.status == 403
        finally:
            await other.aclose()
    finally:
        await client.aclose()
    answer = await _graphql(
        agent,
        world.reader,
        "query($s: String) { dhcpLeases(site: $s) { nodes { mac address hostname } } }",
        s=world.site,
    )
    nodes = answer["data"]["dhcpLeases"]["nodes"]
    assert {"mac": mac, "address": "10.20.0.77", "hostname": "m77"} in nodes
