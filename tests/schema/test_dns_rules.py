"""DNS rules over GraphQL (issue 17, items 3 and 4): input that would freeze a zone is
refused at the mutation that causes it, naming the clash, with nothing changed; zone labels,
dual-stack primaries, host bits, the one rule for a site's zone, and name servers in effect.
Every zone the tests build is exported and checked by named-checkzone; one is served by a
real ``named``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.reversename

from contractor.db import transaction
from contractor.services import dns as contractor_dns
from tests.bindgen.bind import checkzone, named
from tests.schema.conftest import Client

_ERROR = "__typename ... on Error { code message field }"


async def _mutate(client: Client, document: str) -> dict[str, Any]:
    data: dict[str, Any] = await client.data(f"mutation {{ {document} }}", role="operator")
    return data


async def _one(client: Client, document: str) -> dict[str, Any]:
    """The one field a mutation answers."""
    (answer,) = (await _mutate(client, document)).values()
    result: dict[str, Any] = answer
    return result


async def _refused(client: Client, document: str, typename: str, field: str) -> str:
    """Run a mutation that must be refused as ``typename`` on ``field``; its message."""
    answer = await _one(client, document.replace("__ERROR__", _ERROR))
    assert answer["__typename"] == typename, answer
    assert answer["field"] == field, answer
    message: str = answer["message"]
    return message


async def _published(client: Client) -> dict[str, dict[str, Any]]:
    data = await client.data(
        "{ publishedZones { name kind problems { code message } text } }", role="reader"
    )
    return {zone["name"]: zone for zone in data["publishedZones"]}


async def _all_valid(client: Client) -> dict[str, dict[str, Any]]:
    """Every published zone: no problems, and named-checkzone accepts its text."""
    zones = await _published(client)
    for name, zone in zones.items():
        assert zone["problems"] == [], (name, zone["problems"])
        checkzone(name, zone["text"])
    return zones


async def _setup(client: Client) -> None:
    """Blueprints, a zone example.test with its name server, and site dc1 using it."""
    await _mutate(
        client,
        'fb: createFoundationBlueprint(name: "metal", foundationTypes: ["manual"]) '
        "{ __typename } "
        'sb: createStructureBlueprint(name: "linux", foundationBlueprints: ["metal"]) '
        "{ __typename } "
        'z: createZone(name: "test", nameservers: ["ns1.example.test"]) { __typename } '
        'e: createZone(name: "example", parent: "test") { __typename } '
        's: createSite(name: "dc1", zone: "example.test") { __typename } '
        'b: createAddressBlock(site: "dc1", name: "v4", subnet: "192.0.2.0/24") '
        "{ __typename } "
        'b6: createAddressBlock(site: "dc1", name: "v6", subnet: "2001:db8:1::/64") '
        "{ __typename }",
    )
    ns1 = await _host(client, "dc1", "ns1")
    await _address(client, ns1, "dc1", "v4", "eth0", offset=2, primary=True)


async def _site_with_host(
    client: Client, site_arguments: str, address: str, hostname: str
) -> dict[str, dict[str, Any]]:
    """A new site (``createSite(<site_arguments>)``) with a block of ``address``'s network
    and a host holding ``address`` as its primary; then every zone, checked."""
    site = site_arguments.split('"')[1]
    network, _, prefix = address.partition("/")
    first, _, last = network.rpartition(".")
    await _mutate(
        client,
        f"s: createSite({site_arguments}) {{ __typename }} "
        f'b: createAddressBlock(site: "{site}", name: "lan", subnet: "{first}.0/{prefix}") '
        "{ __typename }",
    )
    host = await _host(client, site, hostname)
    await _address(client, host, site, "lan", "eth0", offset=int(last), primary=True)
    return await _all_valid(client)


async def _export(client: Client, directory: Path) -> None:
    """Publish and export every zone to ``directory`` (checked by named-checkzone)."""
    async with transaction(client.writer_sessions) as session:
        result = contractor_dns.export_zones(await contractor_dns.publish_zones(session), directory)
    assert result.ok, result.invalid
    assert result.written


async def _host(client: Client, site: str, hostname: str) -> int:
    made = await _mutate(
        client,
        f'f: createFoundation(locator: "{hostname}-{site}", site: "{site}", '
        'blueprint: "metal", type: "manual") { __typename } '
        f's: createStructure(hostname: "{hostname}", site: "{site}", blueprint: "linux", '
        f'foundation: "{hostname}-{site}") {{ __typename ... on Structure {{ id }} }}',
    )
    assert made["s"]["__typename"] == "Structure", made
    structure_id: int = made["s"]["id"]
    return structure_id


async def _block_id(client: Client, site: str, name: str) -> int:
    return (await _blocks(client, site))[name]


async def _blocks(client: Client, site: str) -> dict[str, int]:
    data = await client.data(
        f'{{ addressBlocks(site: "{site}") {{ edges {{ node {{ id name }} }} }} }}', role="reader"
    )
    return {e["node"]["name"]: e["node"]["id"] for e in data["addressBlocks"]["edges"]}


def _allocate(
    structure: int, block: int, interface: str, *, offset: int, primary: bool = False
) -> str:
    return (
        f"allocateAddress(structure: {structure}, addressBlock: {block}, interfaceName: "
        f'"{interface}", offset: {offset}, isPrimary: {str(primary).lower()}) '
        "{ __ERROR__ ... on Address { id } }"
    )


async def _address(
    client: Client,
    structure: int,
    site: str,
    block: str,
    interface: str,
    *,
    offset: int,
    primary: bool = False,
) -> int:
    document = _allocate(
        structure, await _block_id(client, site, block), interface, offset=offset, primary=primary
    )
    answer = await _one(client, document.replace("__ERROR__", "__typename"))
    assert answer["__typename"] == "Address", answer
    address_id: int = answer["id"]
    return address_id


async def _addresses_of(client: Client, site: str, hostname: str) -> list[str]:
    data = await client.data(
        f'{{ structure(site: "{site}", hostname: "{hostname}") '
        "{ addresses { interfaceName ipAddress } } }",
        role="reader",
    )
    return sorted(f"{a['interfaceName']} {a['ipAddress']}" for a in data["structure"]["addresses"])


# -- item 3: input that would freeze a zone -------------------------------------------------


async def test_interface_names_that_make_one_dns_name_are_refused(client: Client) -> None:
    await _setup(client)
    app = await _host(client, "dc1", "app06")
    await _address(client, app, "dc1", "v4", "ETH_3", offset=10)
    block = await _block_id(client, "dc1", "v4")
    message = await _refused(
        client, _allocate(app, block, "eth-3", offset=11), "ConflictError", "interface_name"
    )
    assert "'eth-3' (alias 0) would have the DNS name eth-3.app06" in message
    assert "its address on 'ETH_3'" in message
    # An alias whose name is another interface's: eth0 alias 1 is eth0-1.
    alias = _allocate(app, block, "eth0", offset=12).replace("offset:", "aliasIndex: 1, offset:")
    assert (await _one(client, alias.replace("__ERROR__", "__typename")))["__typename"] == "Address"
    message = await _refused(
        client, _allocate(app, block, "eth0-1", offset=13), "ConflictError", "interface_name"
    )
    assert "would have the DNS name eth0-1.app06 of its address on 'eth0' (alias 1)" in message
    assert await _addresses_of(client, "dc1", "app06") == ["ETH_3 192.0.2.10", "eth0 192.0.2.12"]
    await _all_valid(client)


async def test_structure_interfaces_that_make_one_dns_name_are_refused(client: Client) -> None:
    await _setup(client)
    app = await _host(client, "dc1", "app07")
    await _one(client, f'addStructureInterface(structure: {app}, name: "ETH_3") {{ __typename }}')
    message = await _refused(
        client,
        f'addStructureInterface(structure: {app}, name: "eth-3") {{ __ERROR__ }}',
        "ConflictError",
        "name",
    )
    assert "interface 'eth-3' would have the DNS name eth-3.app07 of its interface 'ETH_3'" in (
        message
    )


async def test_a_delegation_without_glue_is_refused(client: Client) -> None:
    """The parent zone is being exported: a child zone whose in-zone name server has no
    address would freeze it. The refusal says so; the child is not created. Created with
    inherited name servers it is fine."""
    await _setup(client)
    before = await _all_valid(client)
    message = await _refused(
        client,
        'createZone(name: "lab", parent: "example.test", nameservers: ["ns1.lab.example.test"]) '
        "{ __ERROR__ }",
        "ConflictError",
        "nameservers",
    )
    assert "zone 'example.test': name server ns1.lab.example.test." in message
    assert "has no glue A or AAAA record" in message
    assert set(await _published(client)) == set(before)
    made = await _one(client, 'createZone(name: "lab", parent: "example.test") { __typename }')
    assert made["__typename"] == "Zone"
    zones = await _all_valid(client)
    assert "lab.example.test" in zones


async def test_deleting_what_a_zone_needs_is_refused(client: Client) -> None:
    """The name server's address, and a CNAME's target host, cannot be deleted from under
    the zone; the refusal names what would break, and the data stays."""
    await _setup(client)
    web = await _host(client, "dc1", "web1")
    await _address(client, web, "dc1", "v4", "eth0", offset=20, primary=True)
    entry = await _one(
        client,
        'createZoneEntry(zone: "example.test", type: "CNAME", name: "www", target: "web1") '
        "{ __ERROR__ ... on ZoneEntry { id } }".replace("__ERROR__", "__typename"),
    )
    assert entry["__typename"] == "ZoneEntry"
    message = await _refused(
        client, f"deleteStructure(id: {web}) {{ __ERROR__ }}", "ConflictError", "hostname"
    )
    assert "www.example.test. CNAME web1.example.test.: no such name in zone 'example.test'" in (
        message
    )
    data = await client.data(
        '{ structure(site: "dc1", hostname: "ns1") { addresses { id } } }', role="reader"
    )
    (ns_address,) = data["structure"]["addresses"]
    message = await _refused(
        client, f"deleteAddress(id: {ns_address['id']}) {{ __ERROR__ }}", "ConflictError", "id"
    )
    assert "name server ns1.example.test. (NS of example.test.)" in message
    assert await _addresses_of(client, "dc1", "web1") == ["eth0 192.0.2.20"]
    assert await _addresses_of(client, "dc1", "ns1") == ["eth0 192.0.2.2"]
    await _all_valid(client)


async def test_one_address_with_two_owners_is_refused(client: Client) -> None:
    """Blocks of two sites may overlap, but one IP held in both would get two PTRs in one
    reverse zone (192.0.2.70 named two hosts): the second allocation is refused."""
    await _setup(client)
    await _mutate(
        client,
        'z: createZone(name: "other", parent: "test") { __typename } '
        's: createSite(name: "dc2", zone: "other.test") { __typename } '
        'b: createAddressBlock(site: "dc2", name: "small", subnet: "192.0.2.64/26") '
        "{ __typename }",
    )
    app1 = await _host(client, "dc1", "app1")
    app2 = await _host(client, "dc2", "app2")
    await _address(client, app1, "dc1", "v4", "eth0", offset=70, primary=True)
    small = await _block_id(client, "dc2", "small")
    message = await _refused(
        client, _allocate(app2, small, "eth0", offset=6, primary=True), "ConflictError", "offset"
    )
    assert "70.2.0.192.in-addr.arpa. would name two hosts" in message
    assert "app1.example.test." in message
    assert "app2.other.test." in message
    assert await _addresses_of(client, "dc2", "app2") == []
    await _address(client, app2, "dc2", "small", "eth0", offset=7, primary=True)  # .71 is free
    await _all_valid(client)


async def test_a_cname_to_a_missing_managed_name_is_refused(client: Client) -> None:
    await _setup(client)
    message = await _refused(
        client,
        'createZoneEntry(zone: "example.test", type: "CNAME", name: "www", target: "nothere") '
        "{ __ERROR__ }",
        "ConflictError",
        "target",
    )
    assert "www.example.test. CNAME nothere.example.test.: no such name" in message
    # ... also into another published zone, by its absolute name.
    message = await _refused(
        client,
        'createZoneEntry(zone: "example.test", type: "CNAME", name: "www", '
        'target: "missing.test.") { __ERROR__ }',
        "ConflictError",
        "target",
    )
    assert "no such name in zone 'test'" in message
    for name, target in [("ns", "ns1"), ("ext", "www.example.net.")]:
        made = await _one(
            client,
            f'createZoneEntry(zone: "example.test", type: "CNAME", name: "{name}", '
            f'target: "{target}") {{ __typename }}',
        )
        assert made["__typename"] == "ZoneEntry"
    data = await client.data('{ zone(fqdn: "example.test") { entries { name } } }', role="reader")
    assert sorted(e["name"] for e in data["zone"]["entries"]) == ["ext", "ns"]
    await _all_valid(client)


async def test_hostnames_that_clash_with_entries_or_other_sites_are_refused(
    client: Client,
) -> None:
    await _setup(client)
    await _one(
        client,
        'createZoneEntry(zone: "example.test", type: "CNAME", name: "www", target: "ns1") '
        "{ __typename }",
    )
    await _one(
        client,
        'createFoundation(locator: "f-www", site: "dc1", blueprint: "metal", type: "manual") '
        "{ __typename }",
    )
    message = await _refused(
        client,
        'createStructure(hostname: "www", site: "dc1", blueprint: "linux", foundation: "f-www") '
        "{ __ERROR__ }",
        "ConflictError",
        "hostname",
    )
    assert "hostname 'www' is the name of CNAME entry 'www' in zone 'example.test'" in message
    # A site joining the zone with a hostname the zone already has.
    await _one(client, 'createSite(name: "dc3") { __typename }')
    await _host(client, "dc3", "ns1")
    message = await _refused(
        client,
        'updateSite(name: "dc3", zone: "example.test") { __ERROR__ }',
        "ConflictError",
        "zone",
    )
    assert "structure 'ns1' has the hostname of structure 'ns1' in site 'dc1'" in message
    data = await client.data('{ site(name: "dc3") { zone { fqdn } } }', role="reader")
    assert data["site"]["zone"] is None


# -- item 4: names and records -------------------------------------------------------------


async def test_zone_labels_follow_rfc_1035_and_idna(client: Client, tmp_path: Path) -> None:
    await _setup(client)
    for name, stored in [
        ("my-zone", "my-zone"),
        ("1abc", "1abc"),
        ("x", "x"),
        ("xn--bcher-kva", "xn--bcher-kva"),
        ("Bücher", None),  # the same zone by its U-label: already exists
    ]:
        answer = await _one(
            client,
            f'createZone(name: "{name}", parent: "example.test") '
            "{ __typename ... on Zone { name fqdn } ... on Error { message } }",
        )
        if stored is None:
            assert answer["__typename"] == "ConflictError"
            assert "zone 'xn--bcher-kva' already exists under example.test" in answer["message"]
        else:
            assert answer == {
                "__typename": "Zone",
                "name": stored,
                "fqdn": f"{stored}.example.test",
            }
    found = await client.data('{ zone(fqdn: "bücher.example.test") { name } }', role="reader")
    assert found["zone"]["name"] == "xn--bcher-kva"
    for bad, words in [
        ("my_zone", "may only hold letters, digits and '-'"),
        ("-x", "may neither start nor end with '-'"),
        ("ab--cd", "reserved for encodings"),
        ("xn--zz", "not a valid IDNA A-label"),
        ("a" * 64, "a label has at most 63"),
    ]:
        message = await _refused(
            client,
            f'createZone(name: "{bad}", parent: "example.test") {{ __ERROR__ }}',
            "InvalidInputError",
            "name",
        )
        assert words in message
    message = await _refused(
        client, 'createZone(name: "123") { __ERROR__ }', "InvalidInputError", "name"
    )
    assert "top-level zone name '123' must not be all digits" in message
    # Hosts in the new zones: the export writes them and named-checkzone accepts them.
    zones = await _site_with_host(
        client, 'name: "idn", zone: "xn--bcher-kva.example.test"', "198.51.100.5/24", "1st"
    )
    assert "1st " in zones["xn--bcher-kva.example.test"]["text"]
    await _export(client, tmp_path)
    assert (tmp_path / "my-zone.example.test.zone").exists()


async def test_a_dual_stack_host_has_one_primary_per_family(client: Client, tmp_path: Path) -> None:
    await _setup(client)
    web = await _host(client, "dc1", "web1")
    await _address(client, web, "dc1", "v4", "eth0", offset=10, primary=True)
    await _address(client, web, "dc1", "v6", "eth1", offset=16, primary=True)
    block = await _block_id(client, "dc1", "v4")
    message = await _refused(
        client,
        _allocate(web, block, "eth2", offset=11, primary=True),
        "ConflictError",
        "is_primary",
    )
    assert "already has a primary address for IPv4 (one primary address per IP version)" in message
    assert await _addresses_of(client, "dc1", "web1") == [
        "eth0 192.0.2.10",
        "eth1 2001:db8:1::10",
    ]
    zones = await _all_valid(client)
    text = zones["example.test"]["text"]
    assert "web1 3600 IN A 192.0.2.10" in text
    assert "web1 3600 IN AAAA 2001:db8:1::10" in text
    # Both reverse zones name the bare host; a real named answers both families.
    await _export(client, tmp_path)
    with named(tmp_path / contractor_dns.CONF_NAME, "example.test") as server:
        assert server.query("web1.example.test.", "A") == ["192.0.2.10"]
        assert server.query("web1.example.test.", "AAAA") == ["2001:db8:1::10"]
        assert server.query("10.2.0.192.in-addr.arpa.", "PTR") == ["web1.example.test."]
        v6 = dns.reversename.from_address("2001:db8:1::10").to_text()
        assert server.query(v6, "PTR") == ["web1.example.test."]


async def test_host_bits_in_a_subnet_are_refused(client: Client) -> None:
    await _setup(client)
    message = await _refused(
        client,
        'createAddressBlock(site: "dc1", name: "lan", subnet: "10.30.0.5/24") { __ERROR__ }',
        "InvalidInputError",
        "subnet",
    )
    assert message == (
        "subnet '10.30.0.5/24' has host bits set: the network is 10.30.0.0/24 (or give a "
        "longer prefix)"
    )
    block = await _block_id(client, "dc1", "v4")
    message = await _refused(
        client,
        f'updateAddressBlock(id: {block}, subnet: "192.0.2.1/24") {{ __ERROR__ }}',
        "InvalidInputError",
        "subnet",
    )
    assert "the network is 192.0.2.0/24" in message
    assert sorted(await _blocks(client, "dc1")) == ["v4", "v6"]


async def test_a_site_without_a_zone_publishes_nothing(client: Client) -> None:
    """One rule for both directions: a site's DNS names, forward and reverse, are in its own
    zone; a child site without one inherits none (its hosts have no forward name, so their
    addresses get no reverse zone either)."""
    await _setup(client)
    zones = await _site_with_host(client, 'name: "rack9", parent: "dc1"', "203.0.113.9/24", "node9")
    assert "113.0.203.in-addr.arpa" not in zones
    assert "node9" not in zones["example.test"]["text"]
    # Given a zone of its own, the site publishes both.
    await _one(client, 'updateSite(name: "rack9", zone: "example.test") { __typename }')
    zones = await _all_valid(client)
    assert "node9 3600 IN A 203.0.113.9" in zones["example.test"]["text"]
    assert "9 3600 IN PTR node9.example.test." in zones["113.0.203.in-addr.arpa"]["text"]


async def test_name_servers_in_effect(client: Client) -> None:
    await _setup(client)
    data = await client.data(
        '{ a: zone(fqdn: "example.test") { nameservers nameserversInEffect } '
        '  b: zone(fqdn: "test") { nameservers nameserversInEffect } }',
        role="reader",
    )
    assert data["a"] == {"nameservers": [], "nameserversInEffect": ["ns1.example.test"]}
    assert data["b"] == {
        "nameservers": ["ns1.example.test"],
        "nameserversInEffect": ["ns1.example.test"],
    }
