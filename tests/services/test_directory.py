"""Zone settings: SOA timers within RFC 1912 / RFC 2308 and their relations on every change,
``update_zone``, and external zones (the zones above them are not generated)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.services import directory, dns, site
from contractor.services.dns import DnsZone
from tests.bindgen.bind import checkzone, named
from tests.factories import make_site

NS = ["ns1.elsewhere.net"]


def by_name(zones: list[DnsZone]) -> dict[str, DnsZone]:
    return {zone.name: zone for zone in zones}


async def test_default_timers_follow_the_rfcs_and_load_in_bind(session: AsyncSession) -> None:
    zone = await directory.create_zone(session, name="timers", nameservers=NS)
    assert (zone.ttl, zone.refresh, zone.retry, zone.expire, zone.minimum) == (
        3600,
        14400,  # RFC 1912: refresh 20 minutes to 12 hours
        3600,  # less than refresh
        1209600,  # two weeks (RFC 1912: 2 to 4), far above refresh + retry
        3600,  # RFC 2308: negative answers cached 1 to 3 hours
    )
    published = by_name(await dns.publish_zones(session))["timers"]
    text = dns.served_text(published)
    assert text is not None
    soa = f"IN SOA ns1.elsewhere.net. hostmaster {published.serial} 14400 3600 1209600 3600\n"
    assert soa in text
    checkzone("timers", text)


BAD_TIMERS = [
    ({"retry": 14400}, "retry", "retry (14400 s) must be shorter than refresh (14400 s)"),
    ({"refresh": 3000}, "refresh", "retry (3600 s) must be shorter than refresh (3000 s)"),
    ({"expire": 10000}, "expire", "expire (10000 s) must be at least refresh + retry (18000 s)"),
    ({"refresh": 1209600}, "refresh", "must be at least refresh + retry (1213200 s)"),
    ({"minimum": 172800}, "minimum", "minimum (the negative-caching TTL, RFC 2308) must be at"),
    ({"ttl": 0}, "ttl", "ttl must be from 1 to 2147483647, got 0"),
    ({"retry": "soon"}, "retry", "retry must be a whole number, got 'soon'"),
]


@pytest.mark.parametrize(("given", "field", "message"), BAD_TIMERS)
async def test_timer_relations_are_checked_on_create(
    session: AsyncSession, given: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as error:
        await directory.create_zone(session, name="refused", nameservers=NS, **given)
    assert error.value.field == field
    assert "refused" not in by_name(await dns.build_zones(session))


@pytest.mark.parametrize(("given", "field", "message"), BAD_TIMERS)
async def test_timer_relations_are_checked_on_update(
    session: AsyncSession, given: dict[str, Any], field: str, message: str
) -> None:
    zone = await directory.create_zone(session, name="kept", nameservers=NS)
    before = (zone.ttl, zone.refresh, zone.retry, zone.expire, zone.minimum)
    with pytest.raises(InvalidInput) as error:
        await directory.update_zone(session, zone, **given)
    assert error.value.field == field
    assert message in str(error.value)
    assert (zone.ttl, zone.refresh, zone.retry, zone.expire, zone.minimum) == before


async def test_update_zone_changes_what_it_is_given(session: AsyncSession) -> None:
    parent = await directory.create_zone(
        session, name="top", nameservers=NS, soa_email="dns@top.example"
    )
    zone = await directory.create_zone(session, name="child", parent=parent)
    # Two timers changed together may pass through a state one alone would not.
    await directory.update_zone(session, zone, refresh=86400, retry=7200, expire=2419200)
    await directory.update_zone(
        session, zone, ttl=600, minimum=10800, nameservers=["NS2.Elsewhere.net."]
    )
    assert (zone.ttl, zone.refresh, zone.retry, zone.expire, zone.minimum) == (
        600,
        86400,
        7200,
        2419200,
        10800,
    )
    assert zone.nameservers == ["ns2.elsewhere.net"]
    text = dns.served_text(by_name(await dns.publish_zones(session))["child.top"])
    assert text is not None
    assert " IN SOA ns2.elsewhere.net. dns.top.example. " in text  # mailbox inherited
    await directory.update_zone(session, zone, soa_email="me@child.top", nameservers=[])
    text = dns.served_text(by_name(await dns.publish_zones(session))["child.top"])
    assert text is not None
    assert " IN SOA ns1.elsewhere.net. me " in text  # servers inherited again
    with pytest.raises(InvalidInput, match="must be a mailbox") as error:
        await directory.update_zone(session, zone, soa_email="nobody")
    assert error.value.field == "soa_email"
    with pytest.raises(InvalidInput, match="fully qualified host name") as error:
        await directory.update_zone(session, zone, nameservers=["ns1"])
    assert error.value.field == "nameservers"
    with pytest.raises(InvalidInput, match="external must be true or false") as error:
        await directory.update_zone(session, zone, external=None)  # type: ignore[arg-type]
    assert error.value.field == "external"
    assert (zone.soa_email, zone.nameservers, zone.external) == ("me@child.top", [], False)


async def test_external_zone_publishes_without_its_parent(
    session: AsyncSession, tmp_path: Path
) -> None:
    com = await directory.create_zone(session, name="com")
    example = await directory.create_zone(
        session, name="example", parent=com, nameservers=["ns1.elsewhere.net"]
    )
    await directory.create_entry(session, zone=example, type="TXT", name="@", text="ours")
    # Not external yet: the parent is generated too (and lacks name servers of its own).
    assert sorted(by_name(await dns.publish_zones(session))) == ["com", "example.com"]
    dns.export_zones(await dns.publish_zones(session), tmp_path)
    await directory.update_zone(session, example, external=True)
    zones = by_name(await dns.publish_zones(session))
    assert sorted(zones) == ["example.com"]
    assert zones["example.com"].valid
    result = dns.export_zones(zones.values(), tmp_path)
    assert result.ok, result.invalid
    assert not (tmp_path / "com.zone").exists()
    conf = (tmp_path / dns.CONF_NAME).read_text()
    assert 'zone "example.com." {' in conf
    assert 'zone "com."' not in conf
    with named(tmp_path / dns.CONF_NAME, "example.com") as server:
        assert server.query("example.com.", "TXT") == ['"ours"']
        assert server.query("example.com.", "NS") == ["ns1.elsewhere.net."]

    # Data in a zone that is not generated would reach no server: refused, naming why.
    with pytest.raises(Conflict, match="zone 'com' is above an external zone") as error:
        await make_site(session, zone=com)
    assert error.value.field == "zone"
    with pytest.raises(Conflict, match="zone 'com' is above an external zone") as error:
        await directory.create_entry(session, zone=com, type="TXT", name="x", text="lost")
    assert error.value.field == "zone"
    # Another zone under 'com' is generated, as delegated from outside too.
    other = await directory.create_zone(session, name="other", parent=com, nameservers=NS)
    assert sorted(by_name(await dns.publish_zones(session))) == ["example.com", "other.com"]
    await directory.update_zone(session, example, external=False)
    assert "com" in by_name(await dns.publish_zones(session))
    await make_site(session, zone=com)
    assert other.external is False


async def test_external_is_refused_when_a_parent_holds_data(session: AsyncSession) -> None:
    top = await directory.create_zone(session, name="top", nameservers=NS)
    middle = await directory.create_zone(session, name="middle", parent=top)
    leaf = await directory.create_zone(session, name="leaf", parent=middle)
    used = await make_site(session, zone=top)
    with pytest.raises(Conflict) as error:
        await directory.update_zone(session, leaf, external=True)
    assert error.value.field == "external"
    assert str(error.value) == (
        "zone 'leaf.middle.top' cannot be external: zone 'top' above it would no longer be "
        f"generated, but site {used.name!r} uses it"
    )
    assert leaf.external is False
    await directory.create_entry(session, zone=middle, type="TXT", name="note", text="x")
    refused = r"zone 'middle\.top' above it would no longer be generated, but its TXT entry"
    with pytest.raises(Conflict, match=refused + " 'note' is there"):
        await directory.create_zone(session, name="new", parent=middle, external=True)
    await site.update_site(session, used, zone=None)
    with pytest.raises(Conflict, match=r"zone 'middle\.top' above"):
        await directory.update_zone(session, leaf, external=True)
    assert sorted(by_name(await dns.build_zones(session))) == [
        "leaf.middle.top",
        "middle.top",
        "top",
    ]
