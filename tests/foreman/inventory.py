"""An inventory for job tests: a site, blueprints with scripts, a simulated foundation and a
structure on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Foundation, Site, Structure
from contractor.services import blueprint as bp_service
from contractor.services import building, interfaces, jobs
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
    unique,
)

FOUNDATION_CREATE = """\
begin( description="build the machine" )
  foundation.power_on()
  state = foundation.power_state()
  foundation.power_off()
end
"""
FOUNDATION_DESTROY = "foundation.power_off()\n"
STRUCTURE_CREATE = """\
dhcp.set_pxe( interface='eth0', pxe='installer' )
iputils.wait_for_port( target=structure.hostname, port=22 )
structure.set_config( name='installed', value=true )
"""
STRUCTURE_DESTROY = "pause( msg='wipe it' )\n"


@dataclass
class Stack:
    site: Site
    foundation: Foundation
    structure: Structure


async def make_job_stack(
    session: AsyncSession,
    *,
    foundation_create: str = FOUNDATION_CREATE,
    structure_create: str = STRUCTURE_CREATE,
    foundation_type: str = "simulated",
    locate: bool = True,
) -> Stack:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session, foundation_types=[foundation_type])
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    for blueprint, role, source in (
        (fbp, "create", foundation_create),
        (fbp, "destroy", FOUNDATION_DESTROY),
        (sbp, "create", structure_create),
        (sbp, "destroy", STRUCTURE_DESTROY),
        (sbp, "hello", "message( msg='hello' )\n"),
    ):
        script = await bp_service.create_script(session, name=unique("script"), source=source)
        await bp_service.link_script(session, blueprint=blueprint, role=role, script=script)
    foundation = await make_foundation(session, site, fbp, type=foundation_type)
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", name="eth0"
    )
    if await _no_pxe(session):
        await bp_service.create_pxe(session, name="installer", boot_script="chain x")
    structure = await make_structure(
        session, site, foundation, sbp, config_values={"installed": False}
    )
    if locate:
        await building.set_located(session, foundation)
    return Stack(site=site, foundation=foundation, structure=structure)


async def _no_pxe(session: AsyncSession) -> bool:
    from sqlalchemy import select

    from contractor.models import PXE

    return (await session.execute(select(PXE.id).where(PXE.name == "installer"))).first() is None


async def make_ipmi_job(session: AsyncSession, script: str, password: str) -> tuple[Stack, int]:
    """A stack whose foundation is an ``ipmi`` one with a BMC and ``password``, and a create
    job running ``script`` on it; (the stack, the job's id)."""
    stack = await make_job_stack(session, foundation_type="ipmi", foundation_create=script)
    await building.update_foundation(
        session,
        stack.foundation,
        fields={"bmc_address": "10.0.0.9", "username": "admin", "password": password},
    )
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    return stack, job.id
