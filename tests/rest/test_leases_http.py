"""The lease report API over real HTTP on loopback (PostgreSQL and SQLite): leases recorded,
updated by a later report, refused whole when one is bad, and shown in GraphQL per site and
per interface."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.metrics import exposition
from contractor.models import Foundation, RealNetworkInterface
from tests.factories import new_mac
from tests.metrics_scrape import parse, value
from tests.rest.test_boot_http import (  # the same served app and world
    Served,
    _graphql,
    agent,
    database_url,
    served,
)

__all__ = ["agent", "database_url", "served"]

LEASES = "/api/v1/subcontractor/leases"
SITE_LEASES = """query($site: String) { dhcpLeases(site: $site) { nodes {
  mac address hostname starts ends state site { name } } } }"""
INTERFACE_LEASES = """query($locator: String!) { foundation(locator: $locator) {
  interfaces { mac leases { address state hostname } } } }"""


def _lease(mac: str, address: str, **more: Any) -> dict[str, Any]:
    return {
        "mac": mac,
        "address": address,
        "hostname": "m1",
        "starts": "2026-01-01T00:00:00Z",
        "ends": "2026-01-01T01:00:00+00:00",
        "state": "active",
        **more,
    }


async def _site_leases(served: Served, agent: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await _graphql(agent, served.world.reader, SITE_LEASES, site=served.world.site)
    assert "errors" not in answer, answer
    nodes: list[dict[str, Any]] = answer["data"]["dhcpLeases"]["nodes"]
    return nodes


async def test_leases_are_recorded_then_updated_and_shown_per_site_and_interface(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    known, stranger = world.macs[0], new_mac()
    report = {
        "site": world.site,
        "leases": [_lease(known.upper(), "10.20.0.2"), _lease(stranger, "10.20.0.200")],
    }
    answer = await agent.post(LEASES, json=report)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"site": world.site, "added": 2, "updated": 0}
    shown = {node["mac"]: node for node in await _site_leases(served, agent)}
    assert shown[known]["address"] == "10.20.0.2"  # the MAC is kept lower-case
    assert shown[known]["state"] == "ACTIVE"
    assert shown[known]["site"] == {"name": world.site}
    assert shown[known]["ends"].startswith("2026-01-01T01:00:00")
    assert shown[stranger]["address"] == "10.20.0.200"

    released = {"site": world.site, "leases": [_lease(known, "10.20.0.2", state="released")]}
    answer = await agent.post(LEASES, json=released)
    assert answer.json() == {"site": world.site, "added": 0, "updated": 1}
    shown = {node["mac"]: node for node in await _site_leases(served, agent)}
    assert shown[known]["state"] == "RELEASED"

    locator = await served.write(lambda session: _locator_of(session, known))
    answer = await _graphql(agent, world.reader, INTERFACE_LEASES, locator=locator)
    assert "errors" not in answer, answer
    (interface,) = answer["data"]["foundation"]["interfaces"]
    assert interface["leases"] == [{"address": "10.20.0.2", "state": "RELEASED", "hostname": "m1"}]


async def _locator_of(session: AsyncSession, mac: str) -> str:
    query = (
        select(Foundation.locator)
        .join(RealNetworkInterface, RealNetworkInterface.foundation_id == Foundation.id)
        .where(RealNetworkInterface.mac == mac)
    )
    return (await session.execute(query)).scalar_one()


@pytest.mark.parametrize(
    ("lease", "field", "words"),
    [
        ({"mac": "52:54:00:zz:00:01"}, "leases[1].mac", "is not a MAC address"),
        ({"address": "10.20.0.300"}, "leases[1].address", "is not an IP address"),
        ({"starts": "yesterday"}, "leases[1].starts", "is not an ISO 8601 time"),
        ({"ends": "2026-01-01T01:00:00"}, "leases[1].ends", "has no time zone"),
        ({"ends": "2025-01-01T00:00:00Z"}, "leases[1].ends", "ends before it starts"),
        ({"state": "lost"}, "leases[1].state", ""),
    ],
)
async def test_a_bad_lease_is_refused_naming_it_and_nothing_is_recorded(
    served: Served, agent: httpx.AsyncClient, lease: dict[str, Any], field: str, words: str
) -> None:
    good, bad = new_mac(), new_mac()
    report = {
        "site": served.world.site,
        "leases": [_lease(good, "10.20.0.50"), {**_lease(bad, "10.20.0.51"), **lease}],
    }
    answer = await agent.post(LEASES, json=report)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert words in error["message"]
    assert good not in {node["mac"] for node in await _site_leases(served, agent)}


async def test_lease_reports_need_the_site_and_the_boot_module(
    served: Served, agent: httpx.AsyncClient
) -> None:
    world = served.world
    report = {"site": world.site, "leases": [_lease(new_mac(), "10.20.0.60")]}
    assert (await agent.post(LEASES, json=report, headers={"Authorization": ""})).status_code == 401
    other = {"Authorization": f"Bearer {world.other_site_token}"}
    refused = await agent.post(LEASES, json=report, headers=other)
    assert refused.status_code == 403
    assert "may not report the leases of site" in refused.json()["error"]["message"]
    ipmi = {"Authorization": f"Bearer {world.ipmi_token}"}
    refused = await agent.post(LEASES, json=report, headers=ipmi)
    assert refused.status_code == 403
    assert "does not serve the 'boot' module" in refused.json()["error"]["message"]


async def test_the_task_api_document_describes_leases(agent: httpx.AsyncClient) -> None:
    document = (await agent.get("/api/v1/subcontractor/openapi.json")).json()
    assert "/leases" in document["paths"]
    schemas = document["components"]["schemas"]
    assert "leases" in schemas["LeasesRequest"]["properties"]
    assert "LeaseIn" in schemas


async def test_reported_leases_are_counted_in_metrics(
    served: Served, agent: httpx.AsyncClient
) -> None:
    before = parse(exposition().decode())
    first, second = new_mac(), new_mac()
    leases = [_lease(first, "10.20.0.201"), _lease(second, "10.20.0.202")]
    answer = await agent.post(LEASES, json={"site": served.world.site, "leases": leases})
    assert answer.json()["added"] == 2
    again = [_lease(first, "10.20.0.201", state="released")]
    answer = await agent.post(LEASES, json={"site": served.world.site, "leases": again})
    assert answer.json()["updated"] == 1
    bad = await agent.post(LEASES, json={"site": served.world.site, "leases": [{"mac": "x"}]})
    assert bad.status_code == 400  # refused whole: counted nowhere
    after = parse(exposition().decode())

    def moved(outcome: str) -> float:
        name = "contractor_dhcp_leases_reported_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (moved("added"), moved("updated")) == (2, 1)
