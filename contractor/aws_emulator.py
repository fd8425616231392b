"""An EC2 emulated by ``moto_server`` (``moto[server]``, the ``aws`` extra), for
``contractor demo --with aws`` and the tests.

``moto_server`` runs on a loopback port the kernel hands out, without the caller's
``CONTRACTOR_`` settings in its environment, its output in the caller's directory; it is
always stopped when the block ends. ``ec2_client`` talks to it with boto3 and
``make_network`` creates a VPC, a subnet and a security group in it (addresses that exist
only there).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contractor.child_process import ChildDidNotStart, free_port, stop_child, wait_until_up

__all__ = [
    "KEY_ID",
    "REGION",
    "SECRET",
    "EmulatorError",
    "Network",
    "ec2_client",
    "installed",
    "instances",
    "make_network",
    "moto_server",
]

REGION = "us-east-1"
# moto accepts any credentials; these are the ones the demo and the tests sign with
KEY_ID = "AKIAEXAMPLEKEYID0001"
SECRET = "moto-secret-access-key-do-not-leak"


class EmulatorError(Exception):
    """moto is not installed or ``moto_server`` did not start; the message says why."""


def installed() -> bool:
    """Whether boto3 and ``moto[server]`` (the ``aws`` extra) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("boto3", "moto", "flask"))


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/moto-api/", timeout=2, trust_env=False)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def moto_server(directory: Path, *, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``moto_server`` on a loopback port for the block; yields its URL; always stopped.
    ``EmulatorError`` (with its output) when it does not come up; ``env`` replaces the
    environment without ``CONTRACTOR_`` settings it gets otherwise."""
    if not installed():
        raise EmulatorError("moto[server] is not installed: pip install 'contractor[aws]'")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"moto-{port}.log"
    command = shutil.which("moto_server")
    argv = [command] if command else [sys.executable, "-m", "moto.server"]
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*argv, "-H", "127.0.0.1", "-p", str(port)],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(process, lambda: _answers(url), seconds=30)
        except ChildDidNotStart:
            raise EmulatorError(
                f"moto_server did not come up:\n{log.read_text(errors='replace')}"
            ) from None
        yield url
    finally:
        stop_child(process, wait=10)


def ec2_client(url: str, *, key_id: str = KEY_ID, secret: str = SECRET) -> Any:
    """A boto3 EC2 client of the emulator."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION
    ).client("ec2", endpoint_url=url)


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_id: str
    group_id: str
    cidr: str


def make_network(
    url: str, cidr: str = "10.77.1.0/24", *, vpc_cidr: str = "10.77.0.0/16"
) -> Network:
    """A VPC, a subnet ``cidr`` in it and a security group, in the emulator."""
    ec2 = ec2_client(url)
    vpc = ec2.create_vpc(CidrBlock=vpc_cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return Network(vpc, subnet, group, cidr)


def instances(url: str) -> list[dict[str, Any]]:
    """Every instance the emulator holds, in any state."""
    answer = ec2_client(url).describe_instances()
    return [i for r in answer["Reservations"] for i in r["Instances"]]
