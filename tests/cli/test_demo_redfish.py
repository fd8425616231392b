"""``contractor demo --with redfish``: a sushy-emulator BMC beside the simulated machines, and
a RedFish foundation of the shipped blueprint built against it through the demo's own
subcontractor; its password never printed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from contractor.cli import main
from tests.cli.test_demo import demo
from tests.subcontractor.redfish_bmc import require_emulator


def test_demo_with_redfish_builds_a_redfish_foundation(tmp_path: Path) -> None:
    require_emulator()
    database = tmp_path / "demo.sqlite3"
    run = demo(
        f"sqlite:///{database}",
        "--foundations",
        "1",
        "--delay",
        "0",
        "--with",
        "RedFish",
        "--exit-when-built",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "Redfish BMC (sushy-emulator) for the RedFish foundation: https://127.0.0.1:" in (
        run.stdout
    )
    assert "foundation east-rf01: DONE" in run.stdout
    assert "13 of 13 targets built" in run.stdout  # with the Complex's 10
    with sqlite3.connect(database) as db:
        (password,) = db.execute("SELECT password FROM redfish_foundation").fetchone()
        macs = sorted(
            mac
            for (mac,) in db.execute(
                "SELECT mac FROM real_network_interface JOIN foundation "
                "ON foundation.id = real_network_interface.foundation_id "
                "WHERE foundation.locator = 'east-rf01'"
            )
        )
    assert len(password) >= 12
    assert password not in run.stdout + run.stderr
    assert macs == ["52:54:00:6e:00:01", "52:54:00:6e:00:02"]  # read from the BMC


def test_demo_with_an_unknown_type_is_refused(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    result = CliRunner().invoke(main, ["demo", "--with", "redfish,vcenter"], env=env)
    assert result.exit_code == 2, result.output
    assert "'vcenter' is not a foundation type the demo can add (it can: redfish)" in (
        result.output
    )
