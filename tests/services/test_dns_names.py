"""Zone labels (RFC 1035/1123, IDNA 2008), checked by example and fuzzed with hypothesis."""

from __future__ import annotations

import re

import dns.name
import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bindgen
from contractor.errors import InvalidInput
from contractor.services import dns_guard
from contractor.services.dns_names import check_zone_label

_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@pytest.mark.parametrize(
    ("given_label", "stored"),
    [
        ("my-zone", "my-zone"),
        ("1abc", "1abc"),
        ("x", "x"),
        ("Example", "example"),
        ("xn--bcher-kva", "xn--bcher-kva"),
        ("bücher", "xn--bcher-kva"),  # a U-label becomes its A-label
        ("Bücher", "xn--bcher-kva"),  # UTS #46 maps the capital first
        ("a" * 63, "a" * 63),
        ("123", "123"),  # all digits: fine below the top level
    ],
)
def test_valid_labels(given_label: str, stored: str) -> None:
    assert check_zone_label(given_label) == stored


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("", "must not be empty"),
        ("-ab", "may neither start nor end with '-'"),
        ("ab-", "may neither start nor end with '-'"),
        ("a_b", "may only hold letters, digits and '-'"),
        ("a b", "may only hold letters, digits and '-'"),
        ("a.b", "must be one label"),
        ("a" * 64, "a label has at most 63"),
        ("ab--cd", "reserved for encodings"),
        ("xn--zz", "not a valid IDNA A-label"),
        ("xn--abc", "not a valid IDNA A-label"),
        ("bü.cher", "must be one label"),
        ("a\u200db", "not a valid internationalised label"),  # a joiner out of context
    ],
)
def test_invalid_labels_say_why(bad: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(words)) as error:
        check_zone_label(bad, field="name")
    assert error.value.field == "name"


def test_top_level_label_is_not_all_digits() -> None:
    with pytest.raises(InvalidInput, match=r"top-level zone name '123' must not be all digits"):
        check_zone_label("123", top_level=True)
    assert check_zone_label("1abc", top_level=True) == "1abc"


def _outcome(text: str) -> str | InvalidInput:
    try:
        return check_zone_label(text)
    except InvalidInput as error:
        return error


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=70))
def test_fuzzed_labels_are_valid_dns_or_refused(text: str) -> None:
    """Whatever the input, the validator either refuses it (InvalidInput, never anything
    else) or gives a label that is LDH, at most 63 bytes, a valid A-label when it is one,
    that dnspython accepts as one label, and that it accepts again unchanged."""
    label = _outcome(text)
    if isinstance(label, InvalidInput):
        assert label.field == "name"
        return
    assert _LDH.fullmatch(label), label
    assert len(label) <= 63
    if label[2:4] == "--":
        assert label.startswith("xn--")
        idna.decode(label)
    assert len(dns.name.from_text(label, origin=None).labels) == 1
    assert check_zone_label(label) == label


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True))
def test_fuzzed_ldh_labels_are_accepted_unless_reserved(label: str) -> None:
    """Every RFC 1123 label is accepted, except the reserved '??--' ones that are not
    valid A-labels."""
    if label[2:4] == "--":
        return
    assert check_zone_label(label) == label


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0xC0, max_codepoint=0x24F), min_size=1))
def test_fuzzed_u_labels_round_trip(text: str) -> None:
    """A U-label the validator accepts is stored as the A-label that decodes back to it."""
    try:
        label = check_zone_label(text)
    except InvalidInput:
        return
    assert label.startswith("xn--") or label.isascii()
    assert idna.decode(label) == idna.decode(idna.encode(text, uts46=True))


def test_incomplete_words_match_the_renderers_messages() -> None:
    """The guard lets a new zone be incomplete by the renderer's wording: hold it to it."""
    soa = bindgen.SOA("ns1.z.", "hostmaster.z.", 1, 2, 3, 4)
    problems = bindgen.check_zone(bindgen.ZoneData("z", soa, ("ns1.z.",)))
    assert problems
    assert all(dns_guard.incomplete(p) for p in problems), problems
