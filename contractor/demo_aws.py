"""The demo's EC2 instance (``contractor demo --with aws``).

A ``moto_server`` (``contractor.aws_emulator``, the ``aws`` extra) plays EC2 for the demo,
with a VPC and a subnet ``SUBNET`` made in it at each start. The demo gives the instance its
shape the way docs/foundations.md says to: in blueprints below the shipped ones, ``demo-ec2``
(below ``aws-ec2``: image, subnet, security group, tags; pointed at this run's subnet) and
``demo-ec2-instance`` (below ``aws-instance``). The site ``demo-east`` gets an address block
for the subnet, so the instance's private address lands in IPAM and DNS. A foundation
``east-aws01`` (its credentials made up for each run, secrets) with a structure
``east-ec2-01`` on it is then built by the demo-east subcontractor's ``aws`` module: the
create job launches the instance and records its MAC and addresses; the structure's job
starts it.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.aws_emulator import REGION, Network, make_network
from contractor.aws_emulator import moto_server as start_moto
from contractor.demo_inventory import demo_foundation, found_or_created, scratch_directory
from contractor.models import Foundation, FoundationBluePrint, Site, Structure, StructureBluePrint
from contractor.services import blueprint as bps
from contractor.services import building, network, resources

__all__ = [
    "AGENT_OPTIONS",
    "HOSTNAME",
    "LOCATOR",
    "Cloud",
    "example_query",
    "prepare_aws",
    "start_emulator",
]

LOCATOR = "east-aws01"
HOSTNAME = "east-ec2-01"
BLUEPRINT = "demo-ec2"
INSTANCE_BLUEPRINT = "demo-ec2-instance"
BLOCK = "demo-east-ec2"
VPC = "10.20.0.0/16"
SUBNET = "10.20.3.0/24"  # beside the demo sites' 10.20.1.0/24 and 10.20.2.0/24
IMAGE = "ami-12c6146b"  # one of the images moto knows
# quick to see the instance's state changes
AGENT_OPTIONS = {"backoff": 0.2, "confirm_interval": 0.5}


@dataclass(frozen=True)
class Cloud:
    """This run's emulated EC2, and the credentials the demo's foundation signs with."""

    url: str
    network: Network
    access_key_id: str
    secret_access_key: str


def start_emulator(stack: contextlib.ExitStack[bool | None]) -> Cloud:
    """The demo's EC2 (the ``aws`` extra installed), stopped (and its directory removed)
    when ``stack`` closes."""
    url = stack.enter_context(start_moto(scratch_directory(stack, "contractor-ec2-")))
    return Cloud(
        url=url,
        network=make_network(url, SUBNET, vpc_cidr=VPC),
        access_key_id="AKIA" + secrets.token_hex(8).upper(),
        secret_access_key=secrets.token_urlsafe(30),
    )


def _fields(cloud: Cloud) -> dict[str, object]:
    return {
        "region": REGION,
        "endpoint_url": cloud.url,
        "access_key_id": cloud.access_key_id,
        "secret_access_key": cloud.secret_access_key,
    }


# The instance's shape, in blueprints below the shipped ones (docs/foundations.md), in the
# resource format: loaded at each start, which points ``demo-ec2`` at this run's subnet.
BLUEPRINTS = """\
[ foundation.demo-ec2 ]
description = "The demo's EC2 instances (in the emulator's subnet)"
parents = [ 'aws-ec2' ]

[ foundation.demo-ec2.config_values ]
awsec2_image_id = '{image}'
awsec2_subnet_id = '{subnet}'
awsec2_security_group_ids = [ '{group}' ]
awsec2_public_ip = true
awsec2_tags = {{ demo = 'contractor' }}

[ structure.demo-ec2-instance ]
description = "The system of the demo's EC2 instances"
parents = [ 'aws-instance' ]
foundation_blueprints = [ 'demo-ec2' ]
"""


async def _blueprints(
    session: AsyncSession, cloud: Cloud
) -> tuple[FoundationBluePrint, StructureBluePrint]:
    """``demo-ec2`` (created, or pointed at this run's subnet) and ``demo-ec2-instance``."""
    text = BLUEPRINTS.format(
        image=IMAGE, subnet=cloud.network.subnet_id, group=cloud.network.group_id
    )
    with tempfile.TemporaryDirectory(prefix="contractor-demo-ec2-") as directory:
        path = Path(directory) / "demo-ec2.toml"
        path.write_text(text)
        await resources.apply_resources(session, resources.read_resources([path]))
    return (
        await bps.get_foundation_blueprint(session, BLUEPRINT),
        await bps.get_structure_blueprint(session, INSTANCE_BLUEPRINT),
    )


async def prepare_aws(
    session: AsyncSession, cloud: Cloud, site: Site
) -> list[Foundation | Structure]:
    """The demo's AWS foundation and the structure on it (created, or pointed at this run's
    emulator), the foundation located unless it is built or has a job."""
    foundation_bp, structure_bp = await _blueprints(session, cloud)
    await found_or_created(
        lambda: network.get_address_block(session, site, BLOCK),
        lambda: network.create_address_block(
            session, site=site, name=BLOCK, subnet=SUBNET, gateway_offset=1
        ),
    )
    foundation, _ = await demo_foundation(
        session,
        locator=LOCATOR,
        site=site,
        blueprint=foundation_bp,
        type="AWS",
        fields=_fields(cloud),
        nics={"eth0": None},
    )
    structure = await building.foundation_structure(session, foundation)
    if structure is None:
        structure = await building.create_structure(
            session, hostname=HOSTNAME, site=site, blueprint=structure_bp, foundation=foundation
        )
    return [foundation, structure]


def example_query(site: str) -> tuple[str, str]:
    """The final screen's question about the instance."""
    return (
        "The EC2 instance (moto_server) with its MAC and its addresses",
        f'{{ foundation(locator: "{LOCATOR}") {{ locator state typeFields interfaces '
        f'{{ name mac }} }} structure(site: "{site}", hostname: "{HOSTNAME}") '
        "{ state addresses { interfaceName ipAddress addressBlock { name } } } }",
    )
