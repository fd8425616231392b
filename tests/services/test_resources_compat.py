"""Loading as forgivingly as the original did (issue 18): links to nothing are skipped with
a warning, each file loads or fails on its own, the later of two files wins, links reach
into later files of the same load, and foundation types that are not installed are kept.

The files are in ``compat/`` (written for these tests; see its README)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput, NotFound
from contractor.models import PXE, BluePrint, Script
from contractor.services import blueprint as bps
from contractor.services import building, resources
from tests.factories import make_site

COMPAT = Path(__file__).parent / "compat"
NOWHERE = "is neither in the database nor in the files loaded; link skipped"


def files(*names: str) -> list[Path]:
    return [COMPAT / f"{name}.toml" for name in names]


async def counts(session: AsyncSession) -> tuple[int, int, int]:
    async def count(model: type) -> int:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()

    return await count(Script), await count(PXE), await count(BluePrint)


async def names_of(session: AsyncSession, ids: list[int]) -> list[str]:
    rows = {b.id: b.name for b in (await session.execute(select(BluePrint))).scalars()}
    return [rows[i] for i in ids]


async def foundation_names(session: AsyncSession, structure: str) -> list[str]:
    row = await bps.get_structure_blueprint(session, structure)
    ids = await bps.combined_foundation_blueprint_ids(session, row)
    return sorted(await names_of(session, list(ids)))


async def test_a_plugin_file_alone_skips_its_links_to_nothing(session: AsyncSession) -> None:
    [path] = files("plugin-docker")
    report = await resources.load_resources(session, [path])
    [file] = report.files
    assert file.loaded
    assert sorted(file.created) == ["foundation.docker-base", "structure.docker-host"]
    assert file.skipped == [
        f"{path}:8: structure.docker-host: structure blueprint 'linux-base' {NOWHERE}",
        f"{path}: sflinks[0]: structure blueprint 'linux-base' {NOWHERE}",
        f"{path}: sflinks[1]: foundation blueprint 'manual-foundation-base' {NOWHERE}",
    ]
    assert f"{path}:13:1: bare key '>package_list' is not TOML" in file.warnings[0]
    host = await bps.get_structure_blueprint(session, "docker-host")
    assert await bps.parent_links(session, [host.id]) == {host.id: []}
    assert host.config_values == {">package_list": ["docker.io"]}
    docker = await bps.get_foundation_blueprint(session, "docker-base")
    # the docker type is installed: the file's spelling becomes its own name
    assert docker.foundation_types == ["docker", "manual"]
    assert bps.missing_foundation_types(docker) == []

    # the same file again changes nothing; once the core is there, its links are made
    again = (await resources.load_resources(session, [path])).files[0]
    assert (again.created, again.updated, again.unchanged) == ([], [], 2)
    await resources.load_resources(session, files("core"))
    linked = (await resources.load_resources(session, [path])).files[0]
    assert linked.skipped == []
    assert sorted(linked.updated) == [
        "sflink linux-base -> docker-base",
        "structure.docker-host",
    ]
    assert [b.name for b in await bps.blueprint_chain(session, host)] == [
        "linux-base",
        "docker-host",
    ]
    assert await foundation_names(session, "docker-host") == [
        "docker-base",
        "manual-foundation-base",
    ]


async def test_links_reach_entries_of_later_files(session: AsyncSession) -> None:
    # every file before the one it links to: the links resolve all the same
    report = await resources.load_resources(
        session, files("plugin-amt", "plugin-docker", "ubuntu", "extras", "core")
    )
    assert [f.loaded for f in report.files] == [True] * 5
    assert [f.skipped for f in report.files] == [[]] * 5
    ubuntu = await bps.get_structure_blueprint(session, "ubuntu")
    assert await bps.script_roles(session, ubuntu) == {
        "create": "linux-create",
        "utility": "ubuntu-utility",
    }
    minimal = await bps.get_structure_blueprint(session, "ubuntu-minimal")
    assert [b.name for b in await bps.blueprint_chain(session, minimal)] == [
        "linux-base",
        "ubuntu",
        "ubuntu-minimal",
    ]
    assert list(minimal.config_values) == [
        ">package_list",
        "~old_setting",
        "-package_list",
        "guest_id:VCenter",
        "quoted:VCenter",
        "note",
    ]
    assert minimal.config_values["note"] == ">not_a_key = 'this is inside a string'\n"
    assert await foundation_names(session, "linux-base") == [
        "amt-base",
        "docker-base",
        "manual-foundation-base",
    ]
    amt = await bps.get_foundation_blueprint(session, "amt-base")
    assert await bps.script_roles(session, amt) == {
        "create": "amt-create",
        "destroy": "linux-destroy",
    }
    before = await counts(session)
    again = await resources.load_resources(
        session, files("plugin-amt", "plugin-docker", "ubuntu", "extras", "core")
    )
    assert (again.created, again.updated) == ([], [])
    assert await counts(session) == before


async def test_the_later_of_two_files_wins_and_both_are_told(session: AsyncSession) -> None:
    core, ubuntu, extras = files("core", "ubuntu", "extras")
    report = await resources.load_resources(session, [core, ubuntu, extras])
    script = await bps.get_script(session, "linux-create")
    assert script.description == "Install Linux (extras)"
    duplicates = [[w for w in f.warnings if "linux-create" in w] for f in report.files]
    assert duplicates == [
        [f"{core}:2: script.linux-create: also in {extras}:7, a later file, whose entry wins"],
        [f"{ubuntu}:22: script.linux-create: also in {extras}:7, a later file, whose entry wins"],
        [
            f"{extras}:7: script.linux-create: also in {core}:2, {ubuntu}:22 (earlier); "
            "this one wins"
        ],
    ]
    # the entry is counted once, in the file it was taken from
    assert "script.linux-create" in report.files[2].created
    assert "script.linux-create" not in report.files[0].created
    await resources.load_resources(session, [extras, core])
    assert (await bps.get_script(session, "linux-create")).description == "Install Linux (core)"


async def test_a_failing_file_changes_nothing_and_the_others_load(
    session: AsyncSession,
) -> None:
    paths = files("not-toml", "core", "clash", "plugin-amt")
    report = await resources.load_resources(session, paths)
    broken, core, clash, amt = report.files
    assert (broken.loaded, core.loaded, clash.loaded, amt.loaded) == (False, True, False, True)
    assert broken.errors == [f"{paths[0]}:5:11: not valid TOML: Invalid value"]
    assert clash.errors == [
        f"{paths[2]}:5: structure.manual-foundation-base: a foundation blueprint with this name "
        "exists"
    ]
    assert clash.created == []
    with pytest.raises(Exception, match="clash-script"):
        await bps.get_script(session, "clash-script")
    with pytest.raises(Exception, match="fine"):
        await bps.get_script(session, "fine")
    assert len(core.created) == 6
    assert sorted(amt.created) == ["foundation.amt-base", "script.amt-create"]
    assert amt.updated == []  # linux-base was written with the sflink of this load
    assert "amt-base" in await foundation_names(session, "linux-base")
    assert report.failed == [broken, clash]


async def test_a_link_into_a_failing_file_is_a_link_to_nothing(
    session: AsyncSession, tmp_path: Path
) -> None:
    child = tmp_path / "child.toml"
    child.write_text("[ structure.child ]\nparents = [ 'parent' ]\nscripts = { 'create' = 's' }\n")
    parent = tmp_path / "parent.toml"
    parent.write_text("[ structure.parent ]\n[ script.s ]\nscript = 'x = ( 1 + '\n")
    report = await resources.load_resources(session, [child, parent])
    assert [f.loaded for f in report.files] == [True, False]
    assert report.files[0].skipped == [
        f"{child}:1: structure.child: structure blueprint 'parent' {NOWHERE}",
        f"{child}:1: structure.child: script 's' (role 'create') {NOWHERE}",
    ]
    assert "script line 1, column" in report.files[1].errors[0]


async def test_parent_cycles_across_files_fail_those_files(
    session: AsyncSession, tmp_path: Path
) -> None:
    one, two, other = tmp_path / "one.toml", tmp_path / "two.toml", tmp_path / "other.toml"
    one.write_text("[ structure.a ]\nparents = [ 'b' ]\n")
    two.write_text("[ structure.b ]\nparents = [ 'a' ]\n[ structure.c ]\nparents = [ 'b' ]\n")
    other.write_text("[ structure.d ]\n")
    report = await resources.load_resources(session, [one, two, other])
    assert [f.loaded for f in report.files] == [False, False, True]
    assert report.files[0].errors == [f"{one}:1: structure.a: parents form a cycle among: a, b"]
    assert report.files[1].errors == [f"{two}:1: structure.b: parents form a cycle among: a, b"]
    assert report.files[2].created == ["structure.d"]


async def test_all_or_nothing_keeps_the_strict_loader(session: AsyncSession) -> None:
    before = await counts(session)
    with pytest.raises(InvalidInput, match="not valid TOML") as bad:
        await resources.load_resources(session, files("core", "not-toml"), all_or_nothing=True)
    assert "not-toml.toml:5:11" in bad.value.message
    with pytest.raises(
        InvalidInput, match=r"foundation.amt-base: script 'linux-destroy' does not exist"
    ):
        await resources.load_resources(session, files("plugin-amt"), all_or_nothing=True)
    with pytest.raises(InvalidInput, match=r"script.linux-create: defined again \(first at"):
        await resources.load_resources(session, files("core", "ubuntu"), all_or_nothing=True)
    assert await counts(session) == before
    report = await resources.load_resources(
        session, files("core", "plugin-amt"), all_or_nothing=True
    )
    assert len(report.created) == 8


async def test_kept_types_are_dumped_back(session: AsyncSession, tmp_path: Path) -> None:
    await resources.load_resources(session, files("core", "plugin-amt", "plugin-docker"))
    dumped = tmp_path / "dump.toml"
    dumped.write_text(await resources.dump_resources(session))
    text = dumped.read_text()
    assert 'foundation_types = [\n    "AMT",\n]' in text
    assert 'foundation_types = [\n    "manual",\n    "ManualComplex",\n]' in text
    report = await resources.load_resources(session, [dumped])
    assert (report.created, report.updated, report.failed) == ([], [], [])


async def test_a_kept_type_takes_effect_once_installed(
    session: AsyncSession, install_amt: Callable[[], None]
) -> None:
    await resources.load_resources(session, files("core", "plugin-amt"))
    amt = await bps.get_foundation_blueprint(session, "amt-base")
    assert bps.missing_foundation_types(amt) == ["AMT"]
    site = await make_site(session)
    with pytest.raises(NotFound, match="unknown foundation type 'AMT'"):
        await building.create_foundation(
            session, locator="amt-box", site=site, blueprint=amt, type="AMT"
        )
    install_amt()
    # the blueprint accepts the type as it stands, with nothing loaded again
    assert bps.missing_foundation_types(amt) == []
    box = await building.create_foundation(
        session, locator="amt-box", site=site, blueprint=amt, type="AMT"
    )
    assert box.blueprint_id == amt.id
    # loading the file again writes the type in the plugin's own spelling
    again = await resources.load_resources(session, files("plugin-amt"))
    assert again.files[0].updated == ["foundation.amt-base"]
    assert again.files[0].warnings == []
    assert amt.foundation_types == ["amt"]


async def test_every_kind_of_link_to_nothing_is_skipped_and_named(
    session: AsyncSession, tmp_path: Path
) -> None:
    path = tmp_path / "links.toml"
    path.write_text(
        "sflinks = [ [ 's', 'no-fbp' ], [ 'no-sbp', 'f' ] ]\n"
        "[ foundation.f ]\nparents = [ 'no-parent' ]\nscripts = { 'create' = 'no-script' }\n"
        "[ structure.s ]\nparents = [ 'f' ]\nfoundation_blueprints = [ 'no-fbp2', 'f' ]\n"
    )
    [file] = (await resources.load_resources(session, [path])).files
    assert file.skipped == [
        f"{path}:2: foundation.f: foundation blueprint 'no-parent' {NOWHERE}",
        f"{path}:2: foundation.f: script 'no-script' (role 'create') {NOWHERE}",
        # a foundation blueprint is not a structure's parent: a link to nothing as well
        f"{path}:5: structure.s: structure blueprint 'f' {NOWHERE}",
        f"{path}:5: structure.s: foundation blueprint 'no-fbp2' {NOWHERE}",
        f"{path}: sflinks[0]: foundation blueprint 'no-fbp' {NOWHERE}",
        f"{path}: sflinks[1]: structure blueprint 'no-sbp' {NOWHERE}",
    ]
    assert await foundation_names(session, "s") == ["f"]
    again = (await resources.load_resources(session, [path])).files[0]
    assert (again.created, again.updated, again.skipped) == ([], [], file.skipped)


def test_strictly_a_file_given_twice_defines_its_entries_twice() -> None:
    [core] = files("core")
    with pytest.raises(InvalidInput, match=rf"{core}:2: script.linux-create: defined again"):
        resources.read_resources([core, core])
