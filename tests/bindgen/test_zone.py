"""bindgen.zone: zone data to text, its checks and its content hash; every zone rendered
here is also loaded by named-checkzone."""

from __future__ import annotations

import dataclasses
import random

import dns.zone
import pytest

import bindgen
from bindgen import SOA, Record, ZoneData
from tests.bindgen.bind import checkzone

SOA_ = SOA("ns1.example.test.", "hostmaster.example.test.", 86400, 7200, 36000, 300)


def zone(*records: Record, nameservers: tuple[str, ...] = ("ns1.example.test.",)) -> ZoneData:
    base = (Record("ns1", "A", "192.0.2.1"),)
    return ZoneData("example.test", SOA_, nameservers, base + records, ttl=3600)


def render(data: ZoneData, serial: int = 1) -> str:
    text = bindgen.render_zone(data, serial)
    checkzone(data.origin, text)
    return text


def test_render_is_sorted_and_exact() -> None:
    text = render(
        zone(
            Record("web", "A", "192.0.2.20"),
            Record("web", "A", "192.0.2.3"),
            Record("@", "MX", "10 web"),
            Record("www", "CNAME", "web"),
            Record("_http._tcp", "SRV", "0 5 80 web"),
            Record("@", "TXT", '"v=spf1 -all"'),
            Record("web", "AAAA", "2001:DB8::0001", ttl=60),
            Record("ext", "CNAME", "elsewhere.net."),
        ),
        serial=2026112601,
    )
    assert text == (
        "$ORIGIN example.test.\n"
        "@ 3600 IN SOA ns1 hostmaster 2026112601 86400 7200 36000 300\n"
        "@ 3600 IN NS ns1\n"
        "@ 3600 IN MX 10 web\n"
        '@ 3600 IN TXT "v=spf1 -all"\n'
        "_http._tcp 3600 IN SRV 0 5 80 web\n"
        "ext 3600 IN CNAME elsewhere.net.\n"
        "ns1 3600 IN A 192.0.2.1\n"
        "web 3600 IN A 192.0.2.3\n"  # canonical (numeric) order within a record set
        "web 3600 IN A 192.0.2.20\n"
        "web 60 IN AAAA 2001:db8::1\n"
        "www 3600 IN CNAME web\n"
    )
    assert dns.zone.from_text(text, "example.test.", relativize=True)  # dnspython reads it back


def test_same_records_in_any_order_give_the_same_text_and_hash() -> None:
    records = [Record(f"h{i}", "A", f"10.0.{i // 256}.{i % 256}") for i in range(300)]
    records += [Record("multi", "A", f"10.1.0.{i}") for i in range(1, 20)]
    shuffled = records[:]
    random.Random(4).shuffle(shuffled)
    one, two = zone(*records), zone(*shuffled)
    assert bindgen.render_zone(one, 5) == bindgen.render_zone(two, 5)
    assert bindgen.content_hash(one) == bindgen.content_hash(two)
    render(one)


def test_content_hash_ignores_the_serial_and_sees_every_change() -> None:
    base = zone(Record("web", "A", "192.0.2.10"))
    seen = {bindgen.content_hash(base)}
    changes = [
        zone(Record("web", "A", "192.0.2.11")),
        zone(Record("web", "A", "192.0.2.10", ttl=5)),
        zone(Record("web", "A", "192.0.2.10"), nameservers=("ns1.example.test.", "ns.x.net.")),
        dataclasses.replace(base, ttl=60),
        dataclasses.replace(base, soa=dataclasses.replace(SOA_, minimum=60)),
        dataclasses.replace(base, origin="other.test"),
    ]
    for changed in changes:
        digest = bindgen.content_hash(changed)
        assert digest not in seen
        seen.add(digest)
    assert bindgen.content_hash(zone(Record("web", "A", "192.0.2.10"))) in seen


def test_header_comment_and_absolute_owner_names() -> None:
    text = bindgen.render_zone(
        zone(Record("abs.example.test.", "A", "192.0.2.9")), 3, header="made by\ntests"
    )
    assert text.startswith("; made by\n; tests\n$ORIGIN example.test.\n")
    assert "abs 3600 IN A 192.0.2.9\n" in text
    checkzone("example.test", text)


def test_delegation_with_glue_is_valid() -> None:
    render(
        zone(
            Record("sub", "NS", "ns.sub"),
            Record("sub", "NS", "ns.other.net."),
            Record("ns.sub", "A", "192.0.2.53"),
            Record("ns.sub", "AAAA", "2001:db8::53"),
        )
    )


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([Record("x", "BOGUS", "1")], "record x BOGUS 1: type must be one of A, AAAA"),
        ([Record("x", "A", "300.1.1.1")], "record x A 300.1.1.1:"),
        ([Record("x", "AAAA", "10.0.0.1")], "record x AAAA 10.0.0.1:"),
        ([Record("x", "MX", "web")], "record x MX web:"),
        ([Record("x.other.test.", "A", "10.0.0.1")], "is outside the zone example.test."),
        ([Record("@", "CNAME", "web")], "example.test.: a CNAME cannot be at the zone apex"),
        (
            [Record("w", "CNAME", "a"), Record("w", "TXT", '"x"')],
            "w.example.test.: CNAME and other data (TXT) at one name",
        ),
        (
            [Record("w", "CNAME", "a"), Record("w", "CNAME", "b")],
            "w.example.test.: more than one CNAME target",
        ),
        (
            [Record("sub", "NS", "ns.x.net."), Record("sub", "A", "10.0.0.1")],
            "sub.example.test.: A at a delegation point",
        ),
        (
            [Record("sub", "NS", "ns.x.net."), Record("a.sub", "TXT", '"t"')],
            "a.sub.example.test.: TXT below the delegation sub.example.test. is not served",
        ),
        (
            [Record("sub", "NS", "ns.sub")],
            "name server ns.sub.example.test. (NS of sub.example.test.) is inside the zone "
            "but has no glue A or AAAA record",
        ),
        ([Record("x", "A", "10.0.0.1", ttl=-1)], "TTL -1 is not a number"),
    ],
)
def test_problems_are_named(records: list[Record], problem: str) -> None:
    data = zone(*records)
    problems = bindgen.check_zone(data)
    assert any(problem in p for p in problems), problems
    with pytest.raises(bindgen.ZoneError, match=r"zone example\.test: ") as caught:
        bindgen.render_zone(data, 1)
    assert caught.value.problems == problems


def test_zone_level_problems() -> None:
    assert bindgen.check_zone(zone(nameservers=())) == [
        "no name servers: a zone needs at least one NS record at its apex"
    ]
    assert bindgen.check_zone(zone(nameservers=("ns9.example.test.",))) == [
        "name server ns9.example.test. (NS of example.test.) is inside the zone but has no A "
        "or AAAA record"
    ]
    bad_origin = dataclasses.replace(zone(), origin="a..b")
    assert bindgen.check_zone(bad_origin)[0].startswith("origin 'a..b':")
    with pytest.raises(bindgen.ZoneError, match="serial 4294967296 is not a 32-bit"):
        bindgen.render_zone(zone(), 2**32)


def test_escaped_names_go_through_dnspython() -> None:
    text = render(zone(Record("_dmarc", "TXT", '"v=DMARC1; p=none"'), Record(r"a\.b", "TXT", "x")))
    assert "a\\.b 3600 IN TXT" in text


def test_text_is_dnspython_zone_text() -> None:
    """Read back by dnspython and written out again by dnspython's own Zone.to_text, the
    text does not change: same lines, same order, duplicates merged, lowest TTL per set."""
    data = zone(
        Record("b", "A", "192.0.2.7"),
        Record("B.a", "TXT", '"x"'),
        Record("a", "MX", "5 b"),
        Record("dup", "A", "192.0.2.8"),
        Record("dup", "A", "192.0.2.8", ttl=20),
        Record("dup", "A", "192.0.2.9"),
        Record("*.w", "CNAME", "b.example.test."),
        Record("z.y.x", "PTR", "elsewhere.net."),
    )
    text = render(data)
    assert "dup 20 IN A 192.0.2.8\ndup 20 IN A 192.0.2.9\n" in text
    again = dns.zone.from_text(text, "example.test.", relativize=True)
    assert again.to_text(sorted=True, relativize=True, want_origin=True) == text


def test_zone_error_survives_pickling() -> None:
    import pickle

    error = bindgen.ZoneError("example.test", ["one", "two"])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.origin, copy.problems, str(copy)) == ("example.test", ["one", "two"], str(error))
