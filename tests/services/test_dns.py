"""Zones from the inventory: their records, serials, files, and a real named serving them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from contractor.errors import Conflict, InvalidInput, NotFound
from contractor.models import Address
from contractor.models.directory import Entry
from contractor.services import addresses, directory, dns
from contractor.services.dns import DnsZone
from tests.bindgen.bind import checkzone, named
from tests.bindgen.inventory import build_lab, ptr_name
from tests.factories import make_block, make_foundation, make_site, make_stack

FORWARD = ["example", "lab.example"]
REVERSE = [
    "0.0.10.in-addr.arpa",
    "0.1.10.in-addr.arpa",
    "1.1.10.in-addr.arpa",
    "2.1.10.in-addr.arpa",
    "3.1.10.in-addr.arpa",
    "2.0.192.in-addr.arpa",
    "64-26.2.0.192.in-addr.arpa",
    "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
]


def by_name(zones: list[DnsZone]) -> dict[str, DnsZone]:
    return {zone.name: zone for zone in zones}


def records(zone: DnsZone) -> set[tuple[str, str, str]]:
    assert zone.data is not None, zone.problems
    return {(r.name, r.type, r.data) for r in zone.data.records}


async def test_every_zone_is_generated_and_valid(session: AsyncSession) -> None:
    await build_lab(session)
    zones = by_name(await dns.publish_zones(session, now=1_800_000_000))
    assert sorted(zones) == sorted(FORWARD + REVERSE)
    for zone in zones.values():
        assert zone.problems == ()
        assert zone.serial == 1_800_000_000
        checkzone(zone.name, dns.zone_text(zone))


async def test_forward_names(session: AsyncSession) -> None:
    await build_lab(session)
    zones = by_name(await dns.build_zones(session))
    example = records(zones["example"])
    assert {
        ("ns1", "A", "10.0.0.2"),
        ("eth0.ns1", "A", "10.0.0.2"),
        ("web1", "A", "10.0.0.10"),  # the primary address under the bare hostname
        ("eth0.web1", "A", "10.0.0.10"),
        ("eth0-1.web1", "A", "10.0.0.11"),  # an alias: its own address, not the primary's
        ("eth1.web1", "AAAA", "2001:db8:1::10"),
        ("eth0.nopri", "A", "10.0.0.20"),
        ("www", "CNAME", "web1"),
        ("@", "MX", "10 web1"),
        ("_http._tcp", "SRV", "0 5 80 web1"),
        ("@", "TXT", '"v=spf1 -all"'),
        # the child zone's delegation, with glue for the server inside it
        ("lab", "NS", "ns1.lab.example."),
        ("lab", "NS", "ns1.example."),
        ("ns1.lab.example.", "A", "192.0.2.66"),
    } <= example
    assert not any(name == "nopri" for name, _, _ in example)  # no primary, no bare name
    lab = records(zones["lab.example"])
    assert {
        ("db1", "A", "10.1.2.5"),
        ("ipmi-0.db1", "A", "192.0.2.70"),  # '_' is not allowed in host names
        ("vip.db1", "A", "10.0.0.10"),  # a pointer address takes its target's IP
    } <= lab
    data = zones["lab.example"].data
    assert data is not None
    assert data.nameservers == ("ns1.lab.example.", "ns1.example.")
    assert data.soa.rname == "hostmaster.example."  # inherited from the parent zone


async def test_reverse_zones(session: AsyncSession) -> None:
    lab = await build_lab(session)
    zones = by_name(await dns.build_zones(session))
    assert ("2", "PTR", "ns1.example.") in records(zones["0.0.10.in-addr.arpa"])
    assert ("11", "PTR", "eth0-1.web1.example.") in records(zones["0.0.10.in-addr.arpa"])
    assert ("5", "PTR", "db1.lab.example.") in records(zones["2.1.10.in-addr.arpa"])
    assert records(zones["0.1.10.in-addr.arpa"]) == set()  # empty, but ours: answers NXDOMAIN
    # RFC 2317: PTRs in the classless zone, CNAMEs and the delegation in the /24.
    assert ("70", "PTR", "ipmi-0.db1.lab.example.") in records(zones["64-26.2.0.192.in-addr.arpa"])
    parent = records(zones["2.0.192.in-addr.arpa"])
    assert ("70", "CNAME", "70.64-26.2.0.192.in-addr.arpa.") in parent
    assert ("64-26", "NS", "ns1.lab.example.") in parent
    assert len([r for r in parent if r[1] == "CNAME"]) == 64
    v6 = records(zones[REVERSE[-1]])
    assert ("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0", "PTR", "eth1.web1.example.") in v6
    # every address held from a block has exactly one PTR; the pointer address has none
    ptrs = [r for z in zones.values() if z.kind == "reverse" for r in records(z) if r[1] == "PTR"]
    assert len(ptrs) == len(lab.reverse)


async def test_named_answers_for_every_structure(session: AsyncSession, tmp_path: Path) -> None:
    lab = await build_lab(session)
    zones = await dns.publish_zones(session)
    result = dns.export_zones(zones, tmp_path)
    assert result.ok, result.invalid
    assert sorted(result.written) == sorted(FORWARD + REVERSE)
    with named(tmp_path / dns.CONF_NAME, "example") as server:
        for name, ip in lab.forward.items():
            rdtype = "A" if "." in ip else "AAAA"
            assert server.query(name, rdtype) == [ip], name
        for ip, name in lab.reverse.items():
            # the classless ones through the CNAME in the /24 zone
            assert server.query(ptr_name(ip), "PTR") == [name], ip
        assert server.query("www.example.", "A") == ["10.0.0.10"]
        assert server.query("example.", "MX") == ["10 web1.example."]
        assert server.query("missing.example.", "A") == []


async def test_serials_follow_content(session: AsyncSession, tmp_path: Path) -> None:
    lab = await build_lab(session)
    first = by_name(await dns.publish_zones(session, now=1_800_000_000))
    assert all(zone.changed for zone in first.values())
    dns.export_zones(first.values(), tmp_path)

    again = by_name(await dns.publish_zones(session, now=1_800_000_500))
    assert {name: z.serial for name, z in again.items()} == {
        name: z.serial for name, z in first.items()
    }
    assert not any(zone.changed for zone in again.values())
    result = dns.export_zones(again.values(), tmp_path)
    assert result.written == ()
    assert not result.conf_written
    assert sorted(result.unchanged) == sorted(first)

    # Move nopri's address from 10.0.0.20 to 10.0.0.21: one forward, one reverse zone.
    moved = await addresses.lookup_address(session, "10.0.0.20")
    await addresses.delete_address(session, moved)
    await addresses.create_address(
        session,
        structure=lab.structures["nopri.dc1"],
        block=lab.blocks["v4"],
        offset=21,
        interface_name="eth0",
    )
    third = by_name(await dns.publish_zones(session, now=1_800_000_900))
    changed = sorted(name for name, zone in third.items() if zone.changed)
    assert changed == ["0.0.10.in-addr.arpa", "example"]
    assert third["example"].serial == 1_800_000_900
    for name in set(third) - set(changed):
        assert third[name].serial == first[name].serial
    result = dns.export_zones(third.values(), tmp_path)
    assert sorted(result.written) == changed
    assert ("21", "PTR", "eth0.nopri.example.") in records(third["0.0.10.in-addr.arpa"])

    # A clock set back still gives a growing serial.
    await addresses.create_address(
        session,
        structure=lab.structures["nopri.dc1"],
        block=lab.blocks["v4"],
        offset=22,
        interface_name="eth1",
    )
    fourth = by_name(await dns.publish_zones(session, now=1_000))
    assert fourth["example"].serial == 1_800_000_901


async def test_hostname_colliding_with_child_zone(session: AsyncSession) -> None:
    lab = await build_lab(session)
    # The zone service refuses a child zone named like a host of the parent zone ...
    with pytest.raises(Conflict, match="structure 'web1' \\(site 'dc1'\\) already has that name"):
        await directory.create_zone(session, name="web1", parent=lab.example)
    with pytest.raises(Conflict, match="CNAME entry 'www' uses that name"):
        await directory.create_zone(session, name="www", parent=lab.example)
    with pytest.raises(Conflict, match=r"hostname 'lab' is the name of child zone 'lab\.example'"):
        await directory.check_hostname_free_of_zones(session, lab.example, "lab")
    # ... the structure service refuses such a hostname, and should one get in all the same
    # (written past the services), generation refuses the zone, which keeps its last serial.
    published = by_name(await dns.publish_zones(session))
    _site, _foundation, structure = await make_stack(session)
    site = await make_site(session, zone=lab.example)
    foundation = await make_foundation(session, site, await _blueprint_of(session, structure))
    with pytest.raises(Conflict, match=r"is the name of child zone 'lab\.example'"):
        await _structure(session, site, foundation, structure, "lab")
    clash = await _structure(session, site, foundation, structure, "labx")
    clash.hostname = "lab"  # type: ignore[attr-defined]
    await session.flush()
    # The address that would name it in DNS is refused too (nothing is stored) ...
    with pytest.raises(Conflict, match=r"zone 'example': hostname 'lab' .* child zone") as refused:
        await addresses.create_address(
            session, structure=clash, block=lab.blocks["v4"], offset=50, interface_name="eth0"
        )
    assert refused.value.field == "offset"
    assert (await session.execute(select(Address).where(Address.offset == 50))).first() is None
    # ... so it too is written past the services.
    session.add(
        Address(
            structure_id=clash.id,  # type: ignore[attr-defined]
            address_block_id=lab.blocks["v4"].id,
            offset=50,
            interface_name="eth0",
            alias_index=0,
        )
    )
    await session.flush()
    zones = by_name(await dns.publish_zones(session))
    example = zones["example"]
    assert example.data is None
    assert example.serial == published["example"].serial
    assert example.problems == (
        f"hostname 'lab' (structure in site {site.name!r}) is also the name of child zone "
        "'lab.example'; rename the structure or the zone",
    )
    assert zones["lab.example"].problems == ()


async def _blueprint_of(session: AsyncSession, structure: object) -> object:
    from contractor.models import Foundation, FoundationBluePrint

    foundation = await session.get_one(Foundation, structure.foundation_id)  # type: ignore[attr-defined]
    return await session.get_one(FoundationBluePrint, foundation.blueprint_id)


async def _structure(
    session: AsyncSession, site: object, foundation: object, like: object, hostname: str
) -> object:
    from contractor.models import StructureBluePrint
    from contractor.services import building

    blueprint = await session.get_one(StructureBluePrint, like.blueprint_id)  # type: ignore[attr-defined]
    return await building.create_structure(
        session,
        hostname=hostname,
        site=site,  # type: ignore[arg-type]
        blueprint=blueprint,
        foundation=foundation,  # type: ignore[arg-type]
    )


async def test_zone_without_name_servers_is_named(session: AsyncSession, tmp_path: Path) -> None:
    zone = await directory.create_zone(session, name="bare")
    zones = by_name(await dns.publish_zones(session))
    assert zones["bare"].problems == (
        "zone 'bare' has no name servers: set nameservers on it or on a parent zone",
    )
    result = dns.export_zones(zones.values(), tmp_path)
    assert result.invalid == {"bare": zones["bare"].problems[0]}
    assert not (tmp_path / "bare.zone").exists()
    await directory.update_zone(session, zone, nameservers=["ns.elsewhere.net"])
    zones = by_name(await dns.publish_zones(session))
    result = dns.export_zones(zones.values(), tmp_path)
    assert result.ok
    assert "bare" in result.written
    assert 'zone "bare." { type primary; file' in (tmp_path / dns.CONF_NAME).read_text()


async def test_invalid_zone_keeps_its_old_file(session: AsyncSession, tmp_path: Path) -> None:
    zone = await directory.create_zone(session, name="kept", nameservers=["ns.elsewhere.net"])
    dns.export_zones(await dns.publish_zones(session), tmp_path)
    old = (tmp_path / "kept.zone").read_text()
    # A delegation to a server inside the delegated name, with no address for glue: the
    # service refuses it, naming the problem, and stores nothing ...
    with pytest.raises(Conflict, match=r"ns\.sub\.kept\. \(NS of sub\.kept\.\) .* no glue"):
        await directory.create_entry(session, zone=zone, type="NS", name="sub", target="ns.sub")
    assert await directory.list_entries(session, zone) == []
    # ... so it is written past the services, and the export refuses the zone.
    session.add(Entry(zone_id=zone.id, type="NS", name="sub", target="ns.sub"))
    await session.flush()
    result = dns.export_zones(await dns.publish_zones(session), tmp_path)
    assert list(result.invalid) == ["kept"]
    assert (
        "name server ns.sub.kept. (NS of sub.kept.) is inside the zone but has no glue"
        in (result.invalid["kept"])
    )
    assert (tmp_path / "kept.zone").read_text() == old
    assert "kept.zone" in (tmp_path / dns.CONF_NAME).read_text()


def test_named_checkzone_failure_is_reported(tmp_path: Path) -> None:
    """The inventory cannot make a host name BIND refuses, but export still checks: a zone
    bindgen accepts and named-checkzone refuses is reported and not written."""
    soa = bindgen.SOA("ns.elsewhere.net.", "hostmaster.bad.", 1, 2, 3, 4)
    data = bindgen.ZoneData(
        "bad", soa, ("ns.elsewhere.net.",), (bindgen.Record("under_score", "A", "10.9.9.9"),)
    )
    zone = DnsZone("bad", "forward", data, bindgen.content_hash(data), serial=7)
    result = dns.export_zones([zone], tmp_path)
    assert list(result.invalid) == ["bad"]
    assert result.invalid["bad"].startswith("named-checkzone: bad.zone:")
    assert "under_score.bad: bad owner name (check-names)" in result.invalid["bad"]
    assert not (tmp_path / "bad.zone").exists()
    assert "bad" not in (tmp_path / dns.CONF_NAME).read_text()
    assert [p.name for p in tmp_path.iterdir()] == [dns.CONF_NAME]  # no temporary file left


async def test_removed_zone_file_is_deleted(session: AsyncSession, tmp_path: Path) -> None:
    zone = await directory.create_zone(session, name="gone", nameservers=["ns.elsewhere.net"])
    dns.export_zones(await dns.publish_zones(session), tmp_path)
    (tmp_path / "notours.zone").write_text("; someone else's\n")
    await directory.delete_zone(session, zone)
    result = dns.export_zones(await dns.publish_zones(session), tmp_path)
    assert result.removed == ("gone",)
    assert not (tmp_path / "gone.zone").exists()
    assert (tmp_path / "notours.zone").exists()


async def test_interface_names_that_clash_in_dns(session: AsyncSession) -> None:
    zone = await directory.create_zone(session, name="clash", nameservers=["ns.elsewhere.net"])
    site = await make_site(session, zone=zone)
    _s, _f, structure = await make_stack(session)
    structure.site_id = site.id
    block = await make_block(session, site, "172.16.0.0/24")
    await addresses.create_address(
        session, structure=structure, block=block, offset=1, interface_name="eth_0"
    )
    # The service refuses the second name, naming both interfaces ...
    with pytest.raises(Conflict, match=r"'eth-0' .* DNS name eth-0\.host[0-9]+ .* on 'eth_0'") as e:
        await addresses.create_address(
            session, structure=structure, block=block, offset=2, interface_name="eth-0"
        )
    assert e.value.field == "interface_name"
    # ... and should it be stored all the same, generation names the clash.
    session.add(
        Address(
            structure_id=structure.id,
            address_block_id=block.id,
            offset=2,
            interface_name="eth-0",
            alias_index=0,
        )
    )
    await session.flush()
    zones = by_name(await dns.build_zones(session))
    (problem,) = zones["clash"].problems
    assert "'eth_0' (alias 0) and 'eth-0' (alias 0) are both named eth-0." in problem


async def test_find_published_zone(session: AsyncSession) -> None:
    await build_lab(session)
    zone = await dns.find_published_zone(session, "Lab.Example.")
    assert zone.name == "lab.example"
    assert zone.serial is not None
    with pytest.raises(NotFound, match="zone 'nowhere' does not exist"):
        await dns.find_published_zone(session, "nowhere")


# -- zones and entries ------------------------------------------------------------------


async def test_zone_dns_fields_are_checked(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput, match="name server 'ns1' must be a fully qualified") as e:
        await directory.create_zone(session, name="aa", nameservers=["ns1"])
    assert e.value.field == "nameservers"
    with pytest.raises(InvalidInput, match="listed twice"):
        await directory.create_zone(session, name="aa", nameservers=["a.b", "A.B."])
    with pytest.raises(InvalidInput, match="soa_email 'nobody' must be a mailbox") as e:
        await directory.create_zone(session, name="aa", soa_email="nobody")
    assert e.value.field == "soa_email"
    zone = await directory.create_zone(
        session, name="aa", nameservers=["NS1.Example.com."], soa_email="dns.admin@example.com"
    )
    assert zone.nameservers == ["ns1.example.com"]
    with pytest.raises(InvalidInput, match="retry must be from 1") as e:
        await directory.update_zone(session, zone, retry=0)
    assert e.value.field == "retry"


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"type": "A", "name": "x", "target": "y"}, "type", "entry type 'A' is not one of"),
        ({"type": "CNAME", "name": "@", "target": "y"}, "name", "cannot be at the zone itself"),
        ({"type": "NS", "name": "@", "target": "y"}, "name", "set on the zone"),
        ({"type": "CNAME", "name": "a..b", "target": "y"}, "name", "label '' may only"),
        ({"type": "CNAME", "name": "x.", "target": "y"}, "name", "relative to the zone"),
        ({"type": "MX", "name": "_x", "target": "y", "priority": 1}, "name", "host name"),
        ({"type": "CNAME", "name": "x"}, "target", "needs a target"),
        ({"type": "MX", "name": "x", "target": "a_b", "priority": 1}, "target", "host name"),
        ({"type": "MX", "name": "x", "target": "y"}, "priority", "needs a priority"),
        ({"type": "MX", "name": "x", "target": "y", "priority": 70000}, "priority", "65535"),
        ({"type": "CNAME", "name": "x", "target": "y", "port": 1}, "port", "has no port"),
        (
            {"type": "SRV", "name": "_a._tcp", "target": "y", "priority": 1, "weight": 1},
            "port",
            "needs a port",
        ),
        ({"type": "TXT", "name": "x"}, "text", "needs text"),
        ({"type": "TXT", "name": "x", "text": "a\nb"}, "text", "control characters"),
        ({"type": "TXT", "name": "x", "text": "a", "target": "y"}, "target", "no target"),
        ({"type": "CNAME", "name": "x", "target": "y", "text": "a"}, "text", "has no text"),
        ({"type": "CNAME", "name": "x", "target": "y", "ttl": -1}, "ttl", "ttl must be"),
    ],
)
async def test_entry_validation_names_the_field(
    session: AsyncSession, kwargs: dict[str, object], field: str, message: str
) -> None:
    zone = await directory.create_zone(session, name="entries", nameservers=["ns.a.b"])
    with pytest.raises(InvalidInput, match=message) as caught:
        await directory.create_entry(session, zone=zone, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert await directory.list_entries(session, zone) == []


async def test_entry_clashes(session: AsyncSession) -> None:
    lab = await build_lab(session)
    zone = lab.example
    with pytest.raises(Conflict, match="CNAME entry www in zone 'example' already exists"):
        await directory.create_entry(session, zone=zone, type="CNAME", name="www", target="web1")
    with pytest.raises(Conflict, match="already has a CNAME entry; a CNAME cannot share"):
        await directory.create_entry(session, zone=zone, type="TXT", name="www", text="hi")
    with pytest.raises(Conflict, match=r"is inside child zone 'lab\.example'"):
        await directory.create_entry(session, zone=zone, type="TXT", name="x.lab", text="hi")
    with pytest.raises(Conflict, match="is the name of a structure"):
        await directory.create_entry(session, zone=zone, type="CNAME", name="web1", target="x")
    with pytest.raises(Conflict, match="is the name of a structure"):
        await directory.create_entry(
            session, zone=zone, type="NS", name="sub.web1", target="ns.other.net."
        )
    txt = await directory.create_entry(session, zone=zone, type="TXT", name="web1", text="ok")
    assert txt.id == (await directory.get_entry(session, txt.id)).id
    await directory.delete_entry(session, txt)
    with pytest.raises(NotFound):
        await directory.get_entry(session, txt.id)


def test_txt_data_is_quoted_and_split() -> None:
    assert directory.txt_data('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'
    assert directory.txt_data("é") == '"\\195\\169"'
    long = directory.txt_data("a" * 300)
    assert long == '"' + "a" * 255 + '" "' + "a" * 45 + '"'


async def test_worker_processes_write_the_same_files(session: AsyncSession, tmp_path: Path) -> None:
    await build_lab(session)
    soa = bindgen.SOA("ns.elsewhere.net.", "hostmaster.bad.", 1, 2, 3, 4)
    clash = (bindgen.Record("w", "CNAME", "x"), bindgen.Record("w", "A", "10.9.9.9"))
    data = bindgen.ZoneData("bad", soa, ("ns.elsewhere.net.",), clash)
    bad = DnsZone("bad", "forward", data, bindgen.content_hash(data), serial=7)
    zones = [*await dns.publish_zones(session), bad]
    one = dns.export_zones(zones, tmp_path / "one", processes=1)
    two = dns.export_zones(zones, tmp_path / "two", processes=2)
    assert one.written == two.written
    assert len(one.written) == 10
    assert one.invalid == two.invalid == {"bad": "w.bad.: CNAME and other data (A) at one name"}
    for name in one.written:
        file = f"{name}.zone"
        assert (tmp_path / "one" / file).read_text() == (tmp_path / "two" / file).read_text()


async def test_a_row_published_before_texts_were_kept_gets_its_text(
    session: AsyncSession,
) -> None:
    """Rows from before migration 0011 have no text: the next publish renders and stores it
    under the same serial, so the zone can be served as it was if it later turns invalid."""
    from sqlalchemy import select

    from contractor.models.directory import PublishedZone

    zone = await directory.create_zone(session, name="older", nameservers=["ns.elsewhere.net"])
    first = by_name(await dns.publish_zones(session))["older"]
    row = (
        await session.execute(select(PublishedZone).where(PublishedZone.name == "older"))
    ).scalar_one()
    row.text = None
    await session.flush()
    again = by_name(await dns.publish_zones(session))["older"]
    assert (again.serial, again.changed, again.text) == (first.serial, False, first.text)
    zone.nameservers = ["ns1.older"]  # no address: invalid from now on
    await session.flush()
    broken = by_name(await dns.publish_zones(session, now=(first.serial or 0) + 100))["older"]
    assert broken.problems == (
        "name server ns1.older. (NS of older.) is inside the zone but has no A or AAAA record",
    )
    assert (broken.serial, broken.text) == (first.serial, first.text)
