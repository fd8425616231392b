"""``BootData.from_json``: Contractor's boot data answer read, checked and written back;
anything malformed is a ``ValueError`` naming the key (a hypothesis fuzz: never another
exception)."""

from __future__ import annotations

import contextlib
import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subcontractor.boot.backend import BootData, ServeSettings, make_backend
from subcontractor.boot.dnsmasq import DnsmasqBackend


def reservation(number: int = 17, **more: Any) -> dict[str, Any]:
    entry = {
        "id": f"reservation:{number}",
        "mac": f"52:54:00:12:34:{number:02x}",
        "address": f"10.0.0.{number}",
        "block": "prov",
        "subnet": "10.0.0.0/24",
        "prefix": 24,
        "netmask": "255.255.255.0",
        "gateway": "10.0.0.1",
        "hostname": f"web{number}",
        "domain": "dc1.example.com",
        "dns_servers": ["10.0.0.53"],
        "dns_search": ["example.com"],
        "config_uuid": "5b0c0000-1111-2222-3333-444455556666",
        "boot_file": None,
        "boot_script": "/boot/5b0c0000-1111-2222-3333-444455556666",
    }
    entry.update(more)
    return entry


def pool(**more: Any) -> dict[str, Any]:
    entry = {
        "id": "pool:3",
        "start": "10.0.0.100",
        "end": "10.0.0.199",
        "block": "prov",
        "subnet": "10.0.0.0/24",
        "prefix": 24,
        "netmask": "255.255.255.0",
        "gateway": "10.0.0.1",
        "domain": "dc1.example.com",
        "dns_servers": ["10.0.0.53"],
        "dns_search": ["example.com"],
        "description": "discovery",
    }
    entry.update(more)
    return entry


def answer(**more: Any) -> dict[str, Any]:
    body = {
        "site": "dc1",
        "version": 42,
        "snapshot": True,
        "reservations": [reservation()],
        "pools": [pool()],
        "removed": [],
        "cursor": None,
    }
    body.update(more)
    return body


def test_an_answer_is_read_and_written_back() -> None:
    data = BootData.from_json(answer())
    assert data.site == "dc1"
    assert data.version == 42
    (held,) = data.reservations
    assert (held.mac, held.address, held.hostname, held.prefix) == (
        "52:54:00:12:34:11",
        "10.0.0.17",
        "web17",
        24,
    )
    assert held.dns_servers == ("10.0.0.53",)
    assert data.pools[0].start == "10.0.0.100"
    assert BootData.from_json(data.to_json()) == data
    assert data.reservation_for("52-54-00-12-34-11") == held
    assert data.reservation_for("52:54:00:00:00:00") is None


def test_a_mac_in_any_case_or_with_dashes_is_kept_lower_case_with_colons() -> None:
    data = BootData.from_json(answer(reservations=[reservation(mac="52-54-00-AB-CD-EF")]))
    assert data.reservations[0].mac == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    ("where", "value", "named"),
    [
        (("site",), 7, "site: expected a string"),
        (("version",), True, "version: expected an integer"),
        (("version",), -1, "version: -1 is not in"),
        (("reservations",), {}, "reservations: expected a list"),
        (("reservations", 0), "x", "reservations[0]: expected an object"),
        (("reservations", 0, "mac"), "52:54:00", "reservations[0].mac:"),
        (("reservations", 0, "address"), "10.0.1.5", "reservations[0].address: 10.0.1.5 is not in"),
        (("reservations", 0, "address"), "10.0.0.300", "reservations[0].address:"),
        (("reservations", 0, "prefix"), 23, "reservations[0].prefix: 23 is not the subnet's"),
        (("reservations", 0, "hostname"), "web 1", "reservations[0].hostname:"),
        (("reservations", 0, "hostname"), "a,b", "reservations[0].hostname:"),
        (("reservations", 0, "boot_file"), "x y", "reservations[0].boot_file:"),
        (("reservations", 0, "boot_file"), "a,b", "reservations[0].boot_file:"),
        (("reservations", 0, "boot_script"), "http://x/", "reservations[0].boot_script:"),
        (("reservations", 0, "dns_servers"), ["10.0.0.x"], "reservations[0].dns_servers[0]:"),
        (("reservations", 0, "dns_search"), "example.com", "reservations[0].dns_search:"),
        (("reservations", 0, "gateway"), 1, "reservations[0].gateway: expected a string"),
        (("pools", 0, "end"), "10.0.0.50", "pools[0].end: 10.0.0.50 is before start"),
        (("pools", 0, "id"), "reservation:17", "pools[0].id: reservation:17 is also"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_key(
    where: tuple[str | int, ...], value: object, named: str
) -> None:
    body = answer()
    target: Any = body
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    with pytest.raises(ValueError, match=f"^{re.escape(named)}"):
        BootData.from_json(body)


def test_a_missing_key_and_a_mac_twice_are_named() -> None:
    body = answer()
    del body["reservations"][0]["config_uuid"]
    with pytest.raises(ValueError, match=r"^reservations\[0\]\.config_uuid: missing"):
        BootData.from_json(body)
    twice = answer(reservations=[reservation(17), reservation(18, mac="52:54:00:12:34:11")])
    with pytest.raises(ValueError, match=r"^reservations\[1\]\.mac: .* is also reservations\[0\]"):
        BootData.from_json(twice)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(set(reservation()) | set(pool()) | {"site", "version"})

    @st.composite
    def mutated(draw: st.DrawFn) -> dict[str, Any]:
        body = copy.deepcopy(answer())
        for _ in range(draw(st.integers(1, 4))):
            key = draw(st.sampled_from(keys))
            value = draw(json_values | st.sampled_from(["10.0.0.5", "10.0.0.0/24", "", "a"]))
            place = draw(st.sampled_from(["top", "reservation", "pool", "drop"]))
            if place == "top":
                body[key] = value
            elif place == "reservation":
                body["reservations"][0][key] = value
            elif place == "pool":
                body["pools"][0][key] = value
            else:
                body["reservations"][0].pop(key, None)
        return body

    return mutated()


@settings(max_examples=400, deadline=None)
@given(_mutations())
def test_fuzz_bad_input_is_only_ever_a_value_error(body: dict[str, Any]) -> None:
    try:
        data = BootData.from_json(body)
    except ValueError as error:
        message = str(error)
        assert ": " in message  # names the key, then what is wrong
        return
    assert BootData.from_json(data.to_json()) == data


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_any_json_at_all_is_only_ever_a_value_error(value: Any) -> None:
    with contextlib.suppress(ValueError):
        BootData.from_json(value)


def test_make_backend_knows_dnsmasq_and_refuses_others(tmp_path: Path) -> None:
    settings = ServeSettings(
        interfaces=("eth1",),
        server_address="198.18.7.1",
        http_base="http://198.18.7.1:8067",
        tftp_root=tmp_path,
        state_dir=tmp_path,
        proxy=False,
        lease_seconds=600,
    )
    assert isinstance(make_backend("dnsmasq", settings), DnsmasqBackend)
    with pytest.raises(ValueError, match="backend: 'isc' is not one of dnsmasq, kea"):
        make_backend("isc", settings)
