"""bindgen.reverse: reverse zone names and plans for every prefix, with RFC 2317."""

from __future__ import annotations

import ipaddress

import pytest

import bindgen
from bindgen import SOA, Record, ZoneData
from tests.bindgen.bind import checkzone

net = ipaddress.ip_network
ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("network", "name"),
    [
        ("10.0.0.0/8", "10.in-addr.arpa"),
        ("10.1.0.0/16", "1.10.in-addr.arpa"),
        ("192.0.2.0/24", "2.0.192.in-addr.arpa"),
        ("192.0.2.64/26", "64-26.2.0.192.in-addr.arpa"),
        ("192.0.2.7/32", "7-32.2.0.192.in-addr.arpa"),
        ("2001:db8::/32", "8.b.d.0.1.0.0.2.ip6.arpa"),
        ("2001:db8:1:2::/64", "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
    ],
)
def test_zone_names(network: str, name: str) -> None:
    assert bindgen.reverse_zone_name(net(network)) == name


@pytest.mark.parametrize("network", ["10.0.0.0/12", "2001:db8::/30"])
def test_unaligned_names_are_refused(network: str) -> None:
    with pytest.raises(ValueError, match="aligned"):
        bindgen.reverse_zone_name(net(network))


def names(plan: bindgen.ReversePlan) -> dict[str, str]:
    return {name: zone.kind for name, zone in plan.zones.items()}


def test_prefixes_round_up_to_octets_and_nibbles() -> None:
    plan = bindgen.plan_reverse_zones(
        [net("10.0.0.0/22"), net("172.16.0.0/15"), net("2001:db8::/63")]
    )
    assert names(plan) == {
        "0.0.10.in-addr.arpa": "aligned",
        "1.0.10.in-addr.arpa": "aligned",
        "2.0.10.in-addr.arpa": "aligned",
        "3.0.10.in-addr.arpa": "aligned",
        "16.172.in-addr.arpa": "aligned",
        "17.172.in-addr.arpa": "aligned",
        "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": "aligned",
        "1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": "aligned",
    }
    zone = plan.zone_for(ip("10.0.2.9"))
    assert zone is not None
    assert zone.name == "2.0.10.in-addr.arpa"
    assert plan.ptr_owner(ip("10.0.2.9"), zone) == "9"
    zone = plan.zone_for(ip("172.17.3.4"))
    assert zone is not None
    assert plan.ptr_owner(ip("172.17.3.4"), zone) == "4.3"
    zone = plan.zone_for(ip("2001:db8::1:5"))
    assert zone is not None
    assert plan.ptr_owner(ip("2001:db8::1:5"), zone) == ("5.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0")
    assert plan.zone_for(ip("10.0.4.1")) is None
    assert plan.zone_for(ip("2001:db8:0:2::1")) is None


def test_classless_delegation() -> None:
    plan = bindgen.plan_reverse_zones(
        [net("192.0.2.64/26"), net("192.0.2.64/27"), net("192.0.2.128/25")]
    )
    assert names(plan) == {
        "2.0.192.in-addr.arpa": "classless-parent",
        "64-26.2.0.192.in-addr.arpa": "classless",  # the /27 inside it joins it
        "128-25.2.0.192.in-addr.arpa": "classless",
    }
    child = plan.zones["64-26.2.0.192.in-addr.arpa"]
    assert child.sources == (net("192.0.2.64/26"), net("192.0.2.64/27"))
    parent = plan.parent_of(child)
    assert parent is not None
    assert parent.name == "2.0.192.in-addr.arpa"
    assert plan.delegation_owner(child, parent) == "64-26"
    cnames = plan.classless_cnames(child)
    assert len(cnames) == 64
    assert cnames[6] == Record("70", "CNAME", "70.64-26.2.0.192.in-addr.arpa.")
    assert plan.classless_cnames(parent) == []
    zone = plan.zone_for(ip("192.0.2.70"))
    assert zone == child
    assert plan.ptr_owner(ip("192.0.2.70"), zone) == "70"
    assert plan.zone_for(ip("192.0.2.10")) is None  # the /24 holds no PTR of its own


def test_long_block_inside_an_aligned_zone_needs_no_zone() -> None:
    plan = bindgen.plan_reverse_zones([net("10.0.0.0/16"), net("10.0.5.0/26"), net("10.0.6.0/24")])
    assert names(plan) == {"0.10.in-addr.arpa": "aligned", "6.0.10.in-addr.arpa": "aligned"}
    inner = plan.zones["6.0.10.in-addr.arpa"]
    outer = plan.zones["0.10.in-addr.arpa"]
    assert plan.parent_of(inner) == outer
    assert plan.parent_of(outer) is None
    assert plan.delegation_owner(inner, outer) == "6"
    assert plan.zone_for(ip("10.0.6.1")) == inner  # the most specific zone
    assert plan.zone_for(ip("10.0.5.1")) == outer


def test_classless_zones_pass_named_checkzone() -> None:
    plan = bindgen.plan_reverse_zones([net("198.51.100.0/28")])
    child = plan.zones["0-28.100.51.198.in-addr.arpa"]
    parent = plan.parent_of(child)
    assert parent is not None
    soa = SOA("ns1.example.test.", "hostmaster.example.test.", 1, 2, 3, 4)
    ns = ("ns1.example.test.",)
    owner = plan.delegation_owner(child, parent)
    parent_records = (*plan.classless_cnames(child), Record(owner, "NS", "ns1.example.test."))
    for data in (
        ZoneData(parent.name, soa, ns, parent_records),
        ZoneData(child.name, soa, ns, (Record("5", "PTR", "host.example.test."),)),
    ):
        checkzone(data.origin, bindgen.render_zone(data, 1))


def test_locate_by_integer_and_owner_from_text() -> None:
    plan = bindgen.plan_reverse_zones([net("10.0.0.0/16"), net("2001:db8::/64")])
    zone = plan.locate(4, int(ip("10.0.3.4")))
    assert zone is not None
    assert zone.name == "0.10.in-addr.arpa"
    assert plan.ptr_owner("10.0.3.4", zone) == "4.3"
    v6 = plan.locate(6, int(ip("2001:db8::7")))
    assert v6 is not None
    assert plan.ptr_owner("2001:db8::7", v6) == "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
    assert plan.locate(4, int(ip("10.1.0.1"))) is None


@pytest.mark.parametrize(
    ("block", "address", "owner"),
    [
        ("10.0.0.0/8", "10.1.2.3", "3.2.1"),
        ("10.1.0.0/16", "10.1.2.3", "3.2"),
        ("10.1.2.0/24", "10.1.2.3", "3"),
        ("10.1.2.0/26", "10.1.2.3", "3"),
        ("2001:db8::/64", "2001:db8::3", "3." + "0." * 14 + "0"),
    ],
)
def test_owner_from_address_text_and_integer(block: str, address: str, owner: str) -> None:
    plan = bindgen.plan_reverse_zones([net(block)])
    zone = plan.zone_for(ip(address))
    assert zone is not None
    for given in (ip(address), address, int(ip(address))):
        assert plan.ptr_owner(given, zone) == owner
