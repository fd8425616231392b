"""``contractor demo --with aws``: a moto_server EC2 beside the simulated machines, an AWS
foundation (and the structure on it) of blueprints below the shipped ones built against it
through the demo's own subcontractor; the instance and its addresses on the final screen, its
credentials never printed, moto_server stopped at the end."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from contractor import aws_emulator
from contractor.cli import main
from tests.cli.test_demo import demo_with
from tests.subcontractor.ec2 import require_moto


def test_demo_with_aws_builds_an_ec2_instance(tmp_path: Path) -> None:
    require_moto()
    database = tmp_path / "demo.sqlite3"
    run = demo_with(database, "AWS")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    endpoint = re.search(
        r"EC2 \(moto_server\) for the AWS foundation: (http://127\.0\.0\.1:\d+)\n", run.stdout
    )
    assert endpoint is not None, run.stdout
    assert "foundation east-aws01: DONE" in run.stdout
    assert "structure east-ec2-01: DONE" in run.stdout
    assert "14 of 14 targets built" in run.stdout  # with the Complex's 10
    with sqlite3.connect(database) as db:
        instance_id, key_id, secret, public = db.execute(
            "SELECT instance_id, access_key_id, secret_access_key, public_ip_address "
            "FROM aws_foundation"
        ).fetchone()
        (mac,) = db.execute(
            "SELECT mac FROM real_network_interface JOIN foundation "
            "ON foundation.id = real_network_interface.foundation_id "
            "WHERE foundation.locator = 'east-aws01'"
        ).fetchone()
    assert re.fullmatch(r"i-[0-9a-f]{8,17}", instance_id)
    # the final screen: the instance, its MAC, its public and private addresses
    final = run.stdout.split("# The EC2 instance (moto_server)", 1)[1]
    assert f'"instance_id":"{instance_id}"' in final
    assert f'"public_ip_address":"{public}"' in final
    assert f'"mac":"{mac}"' in final
    private = re.search(
        r'"ipAddress":"(10\.20\.3\.\d+)","addressBlock":\{"name":"demo-east-ec2"\}', final
    )
    assert private is not None, final
    # credentials made up for the run, stored, never shown
    assert len(secret) >= 30
    assert key_id.startswith("AKIA")
    assert secret not in run.stdout + run.stderr
    assert key_id not in run.stdout + run.stderr
    with pytest.raises(httpx.TransportError):  # moto_server is stopped
        httpx.get(f"{endpoint.group(1)}/moto-api/", timeout=2, trust_env=False)


def test_demo_with_aws_without_moto_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_emulator, "installed", lambda: False)
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    result = CliRunner().invoke(main, ["demo", "--port", "0", "--with", "aws"], env=env)
    assert result.exit_code == 1, result.output
    assert "--with aws needs boto3 and moto[server]" in result.output
    assert "pip install 'contractor[aws]'" in result.output
