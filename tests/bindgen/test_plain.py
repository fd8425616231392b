"""bindgen.zone's short cut for plain A and PTR records (canonical IPv4 addresses, plain
absolute targets): the text and record sets are exactly those dnspython's own parsing
gives, whatever the records (duplicates, several at one name, mixed case, targets inside
and outside the zone, names that are not plain)."""

from __future__ import annotations

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bindgen
from bindgen import SOA, Record, ZoneData, zone_rrsets
from bindgen import zone as zone_module

SOA_ = SOA("ns1.example.test.", "hostmaster.example.test.", 86400, 7200, 36000, 300)
ORIGINS = ("example.test", "2.0.192.in-addr.arpa")

octet = st.integers(0, 255).map(str)
ipv4 = st.tuples(octet, octet, octet, octet).map(".".join)
# Not every one canonical: leading zeros go through dnspython (which refuses them).
loose_ipv4 = st.one_of(ipv4, st.sampled_from(["010.0.0.1", "1.2.3", "256.1.1.1", " 1.2.3.4"]))
label = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
long_label = st.just("x" * 64)
target = st.one_of(
    st.lists(label, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + "."),
    st.lists(label, min_size=0, max_size=2).map(
        lambda labels: ".".join([*labels, "EXAMPLE", "Test"]) + "."
    ),
    st.sampled_from(
        ["example.test.", "2.0.192.in-addr.arpa.", "a..b.", "relative", f"{'x' * 64}.test."]
    ),
    long_label.map(lambda text: text + ".example.test."),
)
owner = st.sampled_from(["web", "Web", "a.b", "@", "1", "2", "10"])
record = st.one_of(
    st.builds(Record, owner, st.just("A"), loose_ipv4),
    st.builds(Record, owner, st.just("PTR"), target),
)


def outcome(data: ZoneData) -> tuple[str, object]:
    try:
        return bindgen.render_zone(data, 7), zone_rrsets(data, 7)
    except bindgen.ZoneError as error:
        return "error", sorted(error.problems)


@settings(max_examples=300, deadline=None)
@given(origin=st.sampled_from(ORIGINS), records=st.lists(record, max_size=12))
def test_the_short_cut_prints_what_dnspython_prints(
    origin: str, records: list[Record], monkeypatch_plain: pytest.MonkeyPatch
) -> None:
    glue = (Record("ns1.example.test.", "A", "192.0.2.1"),) if origin == "example.test" else ()
    data = ZoneData(origin, SOA_, ("ns1.example.test.",), (*glue, *records))
    fast = outcome(data)
    rendered[fast[0] != "error"] += 1
    with monkeypatch_plain.context() as patch:
        patch.setattr(zone_module, "_plain", lambda *_: None)  # dnspython parses all
        slow = outcome(data)
    assert fast == slow


rendered = {True: 0, False: 0}


def test_the_short_cut_is_taken() -> None:
    """(so the comparison above compares two ways)"""
    origin = dns.name.from_text("example.test.")
    assert zone_module._plain(zone_module._A, "192.0.2.1", origin) is not None
    assert zone_module._plain(zone_module._PTR, "web.example.test.", origin) is not None
    assert zone_module._plain(zone_module._A, "192.0.2.01", origin) is None
    assert zone_module._plain(zone_module._PTR, "web", origin) is None


@pytest.fixture(scope="module")
def monkeypatch_plain() -> pytest.MonkeyPatch:
    return pytest.MonkeyPatch()


# Owner names: plain ones (mixed case, several labels, a wildcard, one too long to be
# taken without dnspython's checks) beside names that are not plain or not relative, with
# delegations, CNAMEs and glue so every structural check sees both kinds.
owner_name = st.one_of(
    st.sampled_from(
        ["web", "Web", "a.b", "A.B", "@", "sub", "Sub", "ns.sub", "x.SUB", "*", "*.sub", "-"]
    ),
    st.sampled_from(
        [
            "web.example.test.",
            "WEB.Example.TEST.",
            "other.test.",
            "a\\.b",
            "w\\065b",
            "a..b",
            "x" * 64,
            ".".join(["y" * 40] * 3),
            ".".join(["y" * 60] * 4) + ".z",
        ]
    ),
    st.lists(label, min_size=1, max_size=3).map(".".join),
)
owner_data = {
    "A": st.sampled_from(["192.0.2.1", "192.0.2.10", "010.0.0.1"]),
    "AAAA": st.just("2001:db8::1"),
    "CNAME": st.sampled_from(["web", "else.where.", "x.sub"]),
    "NS": st.sampled_from(["ns.sub", "ns.sub.example.test.", "ns1.other.", "web"]),
    "PTR": st.sampled_from(["web.example.test.", "rel"]),
    "TXT": st.just('"hi"'),
}
owned = st.sampled_from(sorted(owner_data)).flatmap(
    lambda kind: st.builds(Record, owner_name, st.just(kind), owner_data[kind])
)


def every_outcome(data: ZoneData) -> tuple[object, ...]:
    """The text, record sets and problems of ``data`` (or the exception's type)."""

    def attempt(make: object) -> object:
        try:
            return make()  # type: ignore[operator]
        except bindgen.ZoneError as error:
            return [(p.code, p.message, p.record) for p in error.details]
        except Exception as error:  # (a name too long to print: either way)
            return type(error).__name__

    return (
        attempt(lambda: bindgen.render_zone(data, 7)),
        attempt(lambda: zone_rrsets(data, 7)),
        attempt(lambda: [(p.code, p.message, p.record) for p in bindgen.zone_problems(data)]),
    )


@settings(max_examples=300, deadline=None)
@given(origin=st.sampled_from((*ORIGINS, "Example.TEST")), records=st.lists(owned, max_size=12))
def test_plain_owner_names_give_what_dnspython_names_give(
    origin: str, records: list[Record], monkeypatch_plain: pytest.MonkeyPatch
) -> None:
    glue = (Record("ns1.example.test.", "A", "192.0.2.1"),)
    data = ZoneData(origin, SOA_, ("ns1.example.test.",), (*glue, *records))
    fast = every_outcome(data)
    with monkeypatch_plain.context() as patch:
        patch.setattr(zone_module, "_plain_key", lambda _text: None)  # dnspython's names
        slow = every_outcome(data)
    assert fast == slow


def test_plain_owner_names_are_taken_without_dnspython() -> None:
    """(so the comparison above compares two ways)"""
    origin = dns.name.from_text("example.test.")
    assert zone_module._owner("Web.a", origin) == ((b"a", b"web"), "Web.a")
    long = ".".join(["x" * 40] * 2)  # (a label of it might be too long: dnspython checks)
    assert isinstance(zone_module._owner(long, origin)[1], dns.name.Name)
    assert isinstance(zone_module._owner("web.example.test.", origin)[1], dns.name.Name)
