"""``JobContext.load`` reads what the script refers to (``tscript.references``), not what
its text happens to mention: a word in a string or a comment loads nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.modules import JobContext, module_signatures
from contractor.models import Job
from contractor.plugins import foundation_types
from contractor.services import jobs
from contractor.settings import Settings
from tests.foreman.inventory import make_job_stack
from tscript import check, describe

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


# what ``tscript check`` knows of these modules ---------------------------------------------

FULL = (
    "name = structure.hostname\nmacs = foundation.interfaces\n"
    "if exists( config.x ) then dhcp.set_pxe( interface='eth0', pxe=none )\n"
)


@pytest.mark.parametrize("foundation_type", ["simulated", "ipmi", "manual", "redfish"])
async def test_the_check_signatures_are_what_a_real_job_sees(
    session: AsyncSession, foundation_type: str
) -> None:
    """module_signatures() is built from transient rows; a job loaded from the database sees
    the same functions, parameters and values (config aside: its keys are the target's).
    Where installed types differ (redfish's ``set_boot_device`` also takes ``continuous``)
    the check takes what any of them takes, and the job sees exactly its own type's."""
    stack = await make_job_stack(session, foundation_create=FULL, foundation_type=foundation_type)
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    context = await JobContext.load(session, job, settings=SETTINGS)
    signatures = {module.name: module for module in module_signatures()}
    transient = foundation_types()[foundation_type].model(type=foundation_type)
    own = {
        module.name: describe(module)
        for module in JobContext(job=Job(), foundation=transient).modules()
    }
    for module in context.modules():
        seen = describe(module)
        known = signatures[module.name]
        assert known.functions is not None
        for name, signature in (seen.functions or {}).items():
            merged = known.functions[name]
            if module.name == "foundation" and merged != signature:
                assert (own["foundation"].functions or {})[name] == signature, name
                assert signature.parameters is not None
                assert merged.parameters is not None
                assert signature.parameters < merged.parameters, name
                assert merged.required <= signature.required, name
            else:
                assert merged == signature, (module.name, name)
        if module.name == "config":
            assert known.values is None
        else:
            assert known.values is not None
            assert seen.values is not None
            assert seen.values <= known.values


def test_calls_a_job_cannot_make_are_found_before_it_runs() -> None:
    modules = module_signatures()
    problems = check(
        "foundation.power_on()\n"
        "foundation.set_boot_device( device='pxe' )\n"
        "foundation.link_test( count=3 )\n"
        "structure.set_config( name='x', value=1 )\n"
        "iputils.wait_for_port( target=structure.primary_ip, port=22 )\n"
        "signaling.wait_for_completion()\n"
        "aa = config.anything\n"
        "foundation.set_boot_device( dev='pxe' )\n"  # 8
        "iputils.ping()\n"  # 9
        "foundation.reboot()\n"  # 10
        "bb = structure.hostnam\n",  # 11
        modules,
    )
    assert [(p.line, p.column) for p in problems] == [(8, 1), (8, 29), (9, 1), (10, 1), (11, 6)]
    assert 'foundation.set_boot_device() has no parameter "dev"' in problems[1].message
    assert problems[2].message == 'iputils.ping() needs the parameter "target"'
    assert 'module "foundation" has no function "reboot"' in problems[3].message
    assert 'did you mean "hostname"?' in problems[4].message
