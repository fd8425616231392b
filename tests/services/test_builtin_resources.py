"""The resource set shipped in ``contractor/resources/``: it loads cleanly and idempotently,
dumps and loads back unchanged, and its scripts run to the end with the real job engine (a
manual foundation answered by the operator; the simulated ones in tests/test_demo.py, the
IPMI one against ipmi_sim in tests/subcontractor/test_end_to_end.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.engine import step_job
from contractor.models import PXE, Job, RealNetworkInterface
from contractor.services import blueprint as bps
from contractor.services import building, interfaces, job_actions, jobs, resources
from contractor.settings import Settings
from tests.factories import make_site

SETTINGS = Settings(database_url="sqlite://")
SHIPPED = [
    "foundation.aws-ec2",
    "foundation.docker-container",
    "foundation.foundation-base",
    "foundation.ipmi-foundation",
    "foundation.libvirt-vm",
    "foundation.manual-foundation",
    "foundation.redfish-foundation",
    "foundation.simulated-foundation",
    "pxe.linux-installer",
    "pxe.normal-boot",
    "script.aws-create",
    "script.aws-destroy",
    "script.aws-instance-start",
    "script.aws-instance-stop",
    "script.docker-create",
    "script.docker-destroy",
    "script.docker-start",
    "script.docker-stop",
    "script.foundation-create",
    "script.foundation-destroy",
    "script.libvirt-host-capacity",
    "script.libvirt-host-create",
    "script.libvirt-vm-create",
    "script.libvirt-vm-destroy",
    "script.linux-create",
    "script.linux-destroy",
    "script.power-cycle",
    "script.redfish-create",
    "script.redfish-destroy",
    "structure.aws-instance",
    "structure.docker-host",
    "structure.docker-service",
    "structure.libvirt-host",
    "structure.linux",
]


async def test_shipped_set_loads_once_and_completely(session: AsyncSession) -> None:
    paths = resources.builtin_paths()
    assert [p.name for p in paths] == [
        "aws.toml",
        "docker.toml",
        "foundations.toml",
        "libvirt.toml",
        "linux.toml",
        "redfish.toml",
        "utility.toml",
    ]
    checked = resources.read_resources(paths)  # every script parsed, every config key checked
    assert sorted(f"{e.kind}.{e.name}" for e in checked.entries) == SHIPPED
    first = await resources.load_builtin(session)
    assert sorted(first.created) == SHIPPED
    assert first.warnings == []
    again = await resources.load_builtin(session)
    assert (again.created, again.updated, again.unchanged) == ([], [], len(SHIPPED))

    linux = await bps.get_structure_blueprint(session, "linux")
    assert await bps.script_roles(session, linux) == {
        "create": "linux-create",
        "destroy": "linux-destroy",
        "power-cycle": "power-cycle",
    }
    allowed = await bps.combined_foundation_blueprint_ids(session, linux)
    for name, type_ in (("manual", "manual"), ("ipmi", "ipmi"), ("simulated", "simulated")):
        blueprint = await bps.get_foundation_blueprint(session, f"{name}-foundation")
        assert blueprint.foundation_types == [type_]
        assert blueprint.id in allowed
        for role in ("create", "destroy"):
            script = await bps.find_script(session, blueprint, role)
            assert script is not None
            assert script.name == f"foundation-{role}"
    # written RedFish, as the original's files do; its own scripts over foundation-base's
    redfish = await bps.get_foundation_blueprint(session, "redfish-foundation")
    assert redfish.foundation_types == ["redfish"]
    assert redfish.config_values == {"redfish_boot_image": ""}
    for role in ("create", "destroy"):
        script = await bps.find_script(session, redfish, role)
        assert script is not None
        assert script.name == f"redfish-{role}"
    libvirt = await bps.get_foundation_blueprint(session, "libvirt-vm")
    assert libvirt.foundation_types == ["libvirt"]
    assert libvirt.id in allowed  # a Linux structure installs on a libvirt VM
    for role in ("create", "destroy"):
        script = await bps.find_script(session, libvirt, role)
        assert script is not None
        assert script.name == f"libvirt-vm-{role}"
    host = await bps.get_structure_blueprint(session, "libvirt-host")
    assert await bps.script_roles(session, host) == {
        "create": "libvirt-host-create",
        "destroy": "linux-destroy",
        "capacity": "libvirt-host-capacity",
    }


async def test_shipped_set_round_trips(session: AsyncSession, tmp_path: Path) -> None:
    await resources.load_builtin(session)
    text = await resources.dump_resources(session)
    dumped = tmp_path / "dump.toml"
    dumped.write_text(text, encoding="utf-8")
    report = await resources.apply_resources(session, resources.read_resources([dumped]))
    assert (report.created, report.updated, report.unchanged) == ([], [], len(SHIPPED))
    assert await resources.dump_resources(session) == text


async def _run_answering_the_operator(session: AsyncSession, job: Job) -> list[str]:
    """Step the job to its end, resuming it whenever it asks the operator; the questions."""
    asked = []
    for _ in range(30):
        await step_job(session, job, settings=SETTINGS)
        if job.state == "paused":
            asked.append(job.message.rpartition(" (line ")[0])
            await job_actions.resume_job(session, job, actor="operator")
        elif job.state in ("done", "error", "aborted"):
            return asked
    raise AssertionError(f"job {job.id} did not finish: {job.state} {job.message!r}")


async def test_manual_foundation_and_linux_run_with_the_operator(session: AsyncSession) -> None:
    await resources.load_builtin(session)
    site = await make_site(session)
    foundation = await building.create_foundation(
        session,
        locator="rack1-u07",
        site=site,
        blueprint=await bps.get_foundation_blueprint(session, "manual-foundation"),
        type="manual",
    )
    interface = await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", is_provisioning=True
    )
    await building.set_located(session, foundation)
    job = await jobs.create_job(session, target=foundation, script_name="create", creator="t")
    asked = await _run_answering_the_operator(session, job)
    assert job.state == "done", job.message
    assert asked == [
        "Power off rack1-u07, then resume the job",
        "Set the boot device of rack1-u07 to pxe, then resume the job",
    ]
    assert foundation.state == "built"

    structure = await building.create_structure(
        session,
        hostname="web07",
        site=site,
        blueprint=await bps.get_structure_blueprint(session, "linux"),
        foundation=foundation,
    )
    job = await jobs.create_job(session, target=structure, script_name="create", creator="t")
    asked = await _run_answering_the_operator(session, job)
    assert job.state == "done", job.message
    assert asked == [
        "Power off rack1-u07, then resume the job",
        "Set the boot device of rack1-u07 to pxe, then resume the job",
        "Power on rack1-u07, then resume the job",
        "Resume the job once rack1-u07 is powered off",
        "Set the boot device of rack1-u07 to disk, then resume the job",
        "Power on rack1-u07, then resume the job",
    ]
    assert structure.state == "built"
    await session.refresh(interface)
    normal = (await session.execute(select(PXE).where(PXE.name == "normal-boot"))).scalar_one()
    assert interface.pxe_id == normal.id  # the installer's PXE entry, then the normal boot

    job = await jobs.create_job(session, target=structure, script_name="destroy", creator="t")
    assert await _run_answering_the_operator(session, job) == [
        "Power off rack1-u07, then resume the job"
    ]
    assert job.state == "done", job.message
    assert structure.state == "planned"
    interface = (
        await session.execute(
            select(RealNetworkInterface).where(RealNetworkInterface.id == interface.id)
        )
    ).scalar_one()
    assert interface.pxe_id is None
