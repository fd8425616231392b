"""bindgen's serials, mailboxes, host names and named.conf fragment."""

from __future__ import annotations

import pytest

import bindgen


def test_serial_follows_the_clock_and_only_grows() -> None:
    assert bindgen.next_serial(None, 1_800_000_000) == 1_800_000_000
    assert bindgen.next_serial(1_700_000_000, 1_800_000_000) == 1_800_000_000
    assert bindgen.next_serial(1_800_000_000, 1_800_000_000) == 1_800_000_001  # same second
    assert bindgen.next_serial(1_800_000_000, 5) == 1_800_000_001  # clock set back
    assert bindgen.next_serial(2**32 - 1, 2**32 - 1) == 0  # wraps: 0 is after 2**32 - 1
    assert bindgen.next_serial(2**32 - 1, 5) == 5  # 5 is after 2**32 - 1 too
    assert bindgen.serial_gt(0, 2**32 - 1)
    assert not bindgen.serial_gt(5, 5)
    assert not bindgen.serial_gt(2**31 + 2, 1)  # more than half the space ahead: behind


@pytest.mark.parametrize(
    ("mailbox", "rname"),
    [
        ("hostmaster@example.com", "hostmaster.example.com."),
        ("dns.admin@example.com", "dns\\.admin.example.com."),
        ("hostmaster.example.com", "hostmaster.example.com."),
        ("hostmaster.example.com.", "hostmaster.example.com."),
    ],
)
def test_mailbox_to_rname(mailbox: str, rname: str) -> None:
    assert bindgen.mailbox_to_rname(mailbox) == rname


def test_bad_mailbox() -> None:
    with pytest.raises(ValueError, match="is not a mailbox"):
        bindgen.mailbox_to_rname("@example.com")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("ns1.example.com", True), ("a-b.c.", True), ("a_b.c", False), ("-a.b", False), ("", False)],
)
def test_is_hostname(name: str, ok: bool) -> None:
    assert bindgen.is_hostname(name) is ok


def test_named_conf() -> None:
    text = bindgen.render_named_conf(
        [("b.test", "/z/b.zone"), ("a.test.", '/z/we"ird.zone')], header="made\nhere"
    )
    assert text == (
        "// made\n// here\n"
        'zone "a.test." { type primary; file "/z/we\\"ird.zone"; };\n'
        'zone "b.test." { type primary; file "/z/b.zone"; };\n'
    )


def test_public_api() -> None:
    assert sorted(bindgen.__all__) == sorted(set(bindgen.__all__))
    for name in bindgen.__all__:
        assert getattr(bindgen, name) is not None
