"""The discovery report's validator: every field checked, its path named, and nothing but
``InvalidInput`` ever raised (a hypothesis fuzz)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contractor.errors import InvalidInput
from contractor.services.discovery_report import check_report, hardware_identity

GOOD: dict[str, Any] = {
    "mac": "52:54:00:AA:BB:01",
    "macs": ["52-54-00-aa-bb-01", "52:54:00:aa:bb:02"],
    "manufacturer": "QEMU",
    "product": "Standard PC",
    "serial": " SN123 ",
    "uuid": None,
    "cpu_count": 4,
    "memory_mib": 4096,
    "disks": [{"name": "vda", "size_bytes": 10**9}, {"name": "vdb", "size_bytes": 3 * 10**9}],
    "pci": [{"vendor": "8086", "device": "100E", "class": "020000"}],
}


def test_a_good_report_is_normalised() -> None:
    checked = check_report(GOOD)
    assert checked["mac"] == "52:54:00:aa:bb:01"
    assert checked["macs"] == ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]
    assert checked["serial"] == "SN123"
    assert checked["pci"] == [{"vendor": "8086", "device": "100e", "class": "020000"}]
    identity = hardware_identity(checked)
    assert identity["disks_gb"] == [3.0, 1.0]
    assert identity["pci_devices"] == ["8086:100e"]
    assert identity["memory_mb"] == 4096


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mac": None}, "report.mac"),
        ({"macs": ["52:54:00:aa:bb:02"]}, "report.macs"),
        ({"macs": ["52:54:00:aa:bb:01", "52:54:00:AA:BB:01"]}, "report.macs[1]"),
        ({"macs": ["52:54:00:aa:bb:01", 7]}, "report.macs[1]"),
        (
            {"macs": ["52:54:00:aa:bb:01"] + [f"52:54:00:00:00:{i:02x}" for i in range(64)]},
            "report.macs",
        ),
        ({"manufacturer": 5}, "report.manufacturer"),
        ({"product": "a\nb"}, "report.product"),
        ({"memory_mib": 1.5}, "report.memory_mib"),
        ({"cpu_count": 1 << 21}, "report.cpu_count"),
        ({"disks": {}}, "report.disks"),
        ({"disks": [{"name": "vda"}]}, "report.disks[0].size_bytes"),
        ({"disks": [{"name": "", "size_bytes": 1}]}, "report.disks[0].name"),
        ({"disks": [{"name": "vda", "size_bytes": 1, "x": 1}]}, "report.disks[0].x"),
        ({"pci": ["8086:100e"]}, "report.pci[0]"),
        ({"pci": [{"vendor": "8086", "device": "zzzz"}]}, "report.pci[0].device"),
        ({"pci": [{"vendor": "8086", "device": "100e", "class": "02"}]}, "report.pci[0].class"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_report(GOOD | change)
    assert caught.value.field == field


def test_a_missing_required_field_and_a_non_object() -> None:
    for key in ("mac", "macs"):
        with pytest.raises(InvalidInput) as caught:
            check_report({k: v for k, v in GOOD.items() if k != key})
        assert caught.value.field == f"report.{key}"
    with pytest.raises(InvalidInput) as caught:
        check_report([GOOD])
    assert caught.value.field == "report"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
fields = st.sampled_from([*sorted(GOOD), "other"])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(fields, json_values, max_size=10), st.booleans())
def test_fuzzed_reports_only_ever_fail_as_invalid_input(
    changes: dict[str, Any], start_good: bool
) -> None:
    value = (GOOD | changes) if start_good else changes
    error: InvalidInput | None = None
    try:
        checked = check_report(value)
    except InvalidInput as refused:
        error = refused
    if error is None:
        hardware_identity(checked)  # whatever passes can be used
        return
    assert error.field is not None
    assert error.field.startswith("report")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzzed_anything_only_ever_fails_as_invalid_input(value: Any) -> None:
    with pytest.raises(InvalidInput):
        check_report(value)
