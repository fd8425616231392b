"""Foundation type names: any case finds the installed type, which has one spelling; two
installed types may not differ only in case."""

from __future__ import annotations

from pathlib import Path

import pytest

from contractor.errors import InvalidInput, NotFound
from contractor.plugins import (
    canonical_foundation_type,
    find_foundation_type,
    foundation_types,
    get_foundation_type,
)
from contractor.plugins.simulated import SimulatedFoundationType


@pytest.mark.parametrize("name", ["ipmi", "IPMI", "Ipmi", "iPmI"])
def test_any_case_finds_the_type(name: str) -> None:
    assert find_foundation_type(name) is foundation_types()["ipmi"]
    assert get_foundation_type(name) is foundation_types()["ipmi"]
    assert canonical_foundation_type(name, field="type") == "ipmi"


@pytest.mark.parametrize("name", ["", "ipmi2", " ipmi", "ipm\u0131"])
def test_other_names_find_nothing_and_say_what_is_installed(name: str) -> None:
    assert find_foundation_type(name) is None
    with pytest.raises(NotFound) as found:
        get_foundation_type(name, field="kind")
    assert (found.value.message, found.value.field) == (
        f"unknown foundation type {name!r} "
        "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)",
        "kind",
    )
    with pytest.raises(InvalidInput) as invalid:
        canonical_foundation_type(name, field="foundation_types")
    assert invalid.value.field == "foundation_types"
    installed = "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)"
    assert installed in invalid.value.message


def test_two_types_differing_only_in_case_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a second distribution registering the shipped simulated type again as "Simulated"
    info = tmp_path / "clash_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[contractor.foundation_types]\nSimulated = tests.plugins.test_names:SimulatedAgain\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match=r"foundation types '\w+' and '\w+' differ only in case"):
        foundation_types.__wrapped__()  # the uncached loader: the real cache stays as it is


class SimulatedAgain(SimulatedFoundationType):
    name = "Simulated"
