"""Resource files: checked before anything is written, loaded idempotently, dumped back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.models import PXE, BluePrint, Script
from contractor.services import blueprint as bps
from contractor.services import resources

HERE = Path(__file__).parent / "resources"


async def _counts(session: AsyncSession) -> tuple[int, int, int]:
    async def count(model: type) -> int:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()

    return await count(Script), await count(PXE), await count(BluePrint)


async def test_load_is_idempotent_and_complete(session: AsyncSession) -> None:
    report = await resources.apply_resources(
        session, resources.read_resources([HERE / "base.toml"])
    )
    assert sorted(report.created) == [
        "foundation.manual-foundation-base",
        "pxe.normal-boot",
        "pxe.ubuntu",
        "script.linux-create",
        "script.manual-create",
        "script.manual-destroy",
        "structure.linux-base",
        "structure.ubuntu",
    ]
    assert report.warnings == [
        f"{HERE / 'base.toml'}:29: foundation.manual-foundation-base: foundation type "
        "'VCenter' is not installed; kept by name (it takes effect once a plugin of that name "
        "is installed)"
    ]
    ubuntu = await bps.get_structure_blueprint(session, "ubuntu")
    assert [b.name for b in await bps.blueprint_chain(session, ubuntu)] == ["linux-base", "ubuntu"]
    script = await bps.find_script(session, ubuntu, "create")
    assert script is not None
    assert script.name == "linux-create"
    base = await bps.get_structure_blueprint(session, "linux-base")
    assert list(base.config_values) == [
        "domain_name",
        ">package_list",
        "awsec2_image_id:AWSEC2",
        "guest_id:VCenter",
    ]
    metal = await bps.get_foundation_blueprint(session, "manual-foundation-base")
    assert metal.foundation_types == ["manual", "VCenter"]  # VCenter kept, not installed
    assert bps.missing_foundation_types(metal) == ["VCenter"]
    assert metal.id in await bps.combined_foundation_blueprint_ids(session, ubuntu)
    before = await _counts(session)
    again = await resources.apply_resources(session, resources.read_resources([HERE / "base.toml"]))
    assert (again.created, again.updated) == ([], [])
    assert await _counts(session) == before


async def test_changed_file_updates_in_place(session: AsyncSession, tmp_path: Path) -> None:
    await resources.apply_resources(session, resources.read_resources([HERE / "base.toml"]))
    changed = (
        (HERE / "base.toml")
        .read_text()
        .replace(
            "scripts = { 'create' = 'linux-create' }", "scripts = { 'create' = 'manual-create' }"
        )
        .replace("distro = 'ubuntu'", "distro = 'ubuntu-noble'")
    )
    path = tmp_path / "changed.toml"
    path.write_text(changed)
    report = await resources.apply_resources(session, resources.read_resources([path]))
    assert sorted(report.updated) == ["structure.linux-base", "structure.ubuntu"]
    ubuntu = await bps.get_structure_blueprint(session, "ubuntu")
    assert ubuntu.config_values["distro"] == "ubuntu-noble"
    base = await bps.get_structure_blueprint(session, "linux-base")
    assert await bps.script_roles(session, base) == {"create": "manual-create"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ script.bad ]\nscript = 'aa = '\n", "script.bad: script line 1, column"),
        ("[ script.bad ]\nscript = 'pass'\ncolour = 'red'\n", "unknown key 'colour'"),
        ("[ structure.x ]\nconfig_values = { '_no' = 1 }\n", "structure.x: config_values:"),
        ("[ widget.x ]\n", "unknown table 'widget'"),
        ("[ structure.x\n", "not valid TOML"),
        ("[ structure.'bad name' ]\n", "the name may only hold"),
        ("sflinks = [ [ 'a' ] ]\n", "sflinks[0] must be [structure, foundation]"),
        ("[ foundation.f ]\nparents = 'p'\n", "parents must be a list of names"),
    ],
)
def test_bad_files_are_refused_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as info:
        resources.read_resources([path])
    assert message in str(info.value)
    assert str(path) in str(info.value)


async def test_missing_reference_writes_nothing(session: AsyncSession, tmp_path: Path) -> None:
    path = tmp_path / "refs.toml"
    path.write_text("[ script.s ]\nscript = 'pass'\n[ structure.child ]\nparents = [ 'nowhere' ]\n")
    checked = resources.read_resources([path])
    with pytest.raises(
        InvalidInput,
        match=r"refs.toml:3: structure.child: structure blueprint 'nowhere' does not exist",
    ):
        await resources.apply_resources(session, checked)


async def test_parent_cycles_are_refused(session: AsyncSession, tmp_path: Path) -> None:
    path = tmp_path / "cycle.toml"
    path.write_text("[ structure.a ]\nparents = [ 'b' ]\n[ structure.b ]\nparents = [ 'a' ]\n")
    with pytest.raises(InvalidInput, match="parents form a cycle among: a, b"):
        await resources.apply_resources(session, resources.read_resources([path]))


async def test_dump_then_load_changes_nothing(session: AsyncSession, tmp_path: Path) -> None:
    await resources.apply_resources(session, resources.read_resources([HERE / "base.toml"]))
    dumped = tmp_path / "dump.toml"
    dumped.write_text(await resources.dump_resources(session))
    report = await resources.apply_resources(session, resources.read_resources([dumped]))
    assert (report.created, report.updated) == ([], [])
    assert report.unchanged == 8


async def test_fingerprint_requirements_load_and_dump(
    session: AsyncSession, tmp_path: Path
) -> None:
    path = tmp_path / "fingerprint.toml"
    path.write_text(
        "[ foundation.big ]\nfoundation_types = [ 'manual' ]\nmin_cpu_count = 8\n"
        "min_memory_mb = 65536\nrequired_pci_devices = [ '15B3:1017' ]\n"
        "required_disks_gb = [ 100, 200 ]\n"
    )
    await resources.apply_resources(session, resources.read_resources([path]))
    big = await bps.get_foundation_blueprint(session, "big")
    assert (big.min_cpu_count, big.min_memory_mb) == (8, 65536)
    assert (big.required_pci_devices, big.required_disks_gb) == (["15b3:1017"], [200, 100])
    dumped = tmp_path / "dump.toml"
    dumped.write_text(await resources.dump_resources(session))
    text = dumped.read_text()
    assert "min_cpu_count = 8" in text
    assert "required_disks_gb" in text
    report = await resources.apply_resources(session, resources.read_resources([dumped]))
    assert report.updated == []
    # a file without the keys keeps them (as config_values)
    path.write_text("[ foundation.big ]\nfoundation_types = [ 'manual' ]\n")
    await resources.apply_resources(session, resources.read_resources([path]))
    assert (await bps.get_foundation_blueprint(session, "big")).min_cpu_count == 8
    path.write_text("[ foundation.big ]\nmin_cpu_count = 'many'\n")
    with pytest.raises(InvalidInput, match="min_cpu_count must be a whole number"):
        resources.read_resources([path])
    path.write_text("[ foundation.big ]\nrequired_pci_devices = [ 'nvidia' ]\n")
    with pytest.raises(InvalidInput, match="vendor:device"):
        await resources.apply_resources(session, resources.read_resources([path]))
