"""bindgen.rrsets: a zone as record sets, equal to what dnspython reads from its text, and
the difference between two sets (what a dynamic update changes)."""

from __future__ import annotations

import dns.zone
import pytest

import bindgen
from bindgen import SOA, Change, Record, RRset, ZoneData

SOA_ = SOA("ns1.example.test.", "hostmaster.example.test.", 3600, 600, 1209600, 300)


def zone(*records: Record) -> ZoneData:
    base = (Record("ns1", "A", "192.0.2.1"),)
    return ZoneData("example.test", SOA_, ("ns1",), base + records, ttl=3600)


def test_record_sets_match_the_zone_text() -> None:
    data = zone(
        Record("web", "A", "192.0.2.10"),
        Record("web", "A", "192.0.2.11", ttl=60),
        Record("www", "CNAME", "web"),
        Record("@", "MX", "10 web"),
        Record("@", "TXT", '"v=spf1 -all"'),
    )
    rrsets = bindgen.zone_rrsets(data, 7)
    assert rrsets[("web.example.test.", "A")] == RRset(60, ("192.0.2.10", "192.0.2.11"))
    assert rrsets[("www.example.test.", "CNAME")] == RRset(3600, ("web.example.test.",))
    assert rrsets[("example.test.", "SOA")].rdatas[0].split()[2] == "7"
    parsed = dns.zone.from_text(bindgen.render_zone(data, 7), origin="example.test.")
    assert bindgen.zone_rrsets_of(parsed) == rrsets


def test_an_invalid_zone_has_no_record_sets() -> None:
    with pytest.raises(bindgen.ZoneError, match="CNAME and other data"):
        bindgen.zone_rrsets(zone(Record("ns1", "CNAME", "web")), 1)


def test_the_difference_turns_one_set_into_the_other_soa_last() -> None:
    old = bindgen.zone_rrsets(zone(Record("a", "A", "192.0.2.1"), Record("b", "A", "192.0.2.2")), 1)
    new = bindgen.zone_rrsets(zone(Record("b", "A", "192.0.2.3"), Record("c", "TXT", '"x"')), 2)
    changes = bindgen.diff_rrsets(old, new)
    assert [(c.name, c.type, c.old is None, c.new is None) for c in changes] == [
        ("a.example.test.", "A", False, True),
        ("b.example.test.", "A", False, False),
        ("c.example.test.", "TXT", True, False),
        ("example.test.", "SOA", False, False),
    ]
    assert bindgen.apply_changes(old, changes) == new
    assert bindgen.diff_rrsets(new, new) == []
    assert changes[1].describe() == [
        "- b.example.test. 3600 A 192.0.2.2",
        "+ b.example.test. 3600 A 192.0.2.3",
    ]
    ttl = Change("a.", "A", RRset(60, ("192.0.2.1",)), RRset(300, ("192.0.2.1",)))
    assert ttl.describe() == ["- a. 60 A 192.0.2.1", "+ a. 300 A 192.0.2.1"]
