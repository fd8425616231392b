"""``JobContext.load`` reads what the script refers to (``tscript.references``), not what
its text happens to mention: a word in a string or a comment loads nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.modules import JobContext
from contractor.services import jobs
from contractor.settings import Settings
from tests.foreman.inventory import make_job_stack

SETTINGS = Settings(database_url="sqlite://")

MENTIONS = """\
# structure.hostname, foundation.interfaces, config.x and dhcp.set_pxe() only in words
message( msg="structure structure.hostname interface set_pxe config.x" )
"""


async def _load(session: AsyncSession, script: str) -> JobContext:
    stack = await make_job_stack(session, foundation_create=script)
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    return await JobContext.load(session, job, settings=SETTINGS)


async def test_words_in_strings_and_comments_load_nothing(session: AsyncSession) -> None:
    context = await _load(session, MENTIONS)
    assert context.foundation is not None  # its own target, always
    assert context.structure is None
    assert context.interfaces == []
    assert context.config is None
    assert context.pxe_ids is None


async def test_a_foundation_job_that_uses_the_structure_loads_it(session: AsyncSession) -> None:
    context = await _load(session, "name = structure.hostname\n")
    assert context.structure is not None
    assert context.structure.foundation_id == context.job.foundation_id
    assert context.config is not None  # the structure module's addresses come from it
    assert context.interfaces == []


@pytest.mark.parametrize(
    "script",
    [
        "macs = foundation.interfaces\n",
        "name = foundation.provisioning_interface\n",
        "foundation.set_interface_macs( macs={ eth0='aa:bb:cc:00:00:01' } )\n",
    ],
)
async def test_what_shows_the_interfaces_loads_them(session: AsyncSession, script: str) -> None:
    context = await _load(session, script)
    assert [i.physical_location for i in context.interfaces] == ["eth0"]
    assert context.structure is None
    assert context.pxe_ids is None


async def test_set_pxe_loads_the_interfaces_and_the_pxe_names(session: AsyncSession) -> None:
    context = await _load(session, "dhcp.set_pxe( interface='eth0', pxe='installer' )\n")
    assert [i.name for i in context.interfaces] == ["eth0"]
    assert context.pxe_ids is not None
    assert "installer" in context.pxe_ids


async def test_config_values_load_the_configuration(session: AsyncSession) -> None:
    context = await _load(session, "wipe = exists( config.wipe )\n")
    assert context.config is not None
    assert context.structure is None
