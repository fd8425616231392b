"""contractor blueprint load / dump."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from contractor.cli import main

RESOURCES = Path(__file__).parents[1] / "services" / "resources" / "base.toml"


def test_load_dump_load(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(main, ["blueprint", "load", str(RESOURCES)], env=env)
    assert first.exit_code == 0, first.output
    assert "8 created, 0 updated, 1 unchanged" in first.output  # the sflink was already made
    assert "foundation type 'VCenter' is not installed" in first.output
    dumped = tmp_path / "dump.toml"
    out = runner.invoke(main, ["blueprint", "dump", "--out", str(dumped)], env=env)
    assert out.exit_code == 0, out.output
    again = runner.invoke(main, ["blueprint", "load", str(dumped)], env=env)
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 8 unchanged" in again.output


def test_bad_file_loads_nothing(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    bad = tmp_path / "bad.toml"
    bad.write_text("[ script.ok ]\nscript = 'pass'\n\n[ script.broken ]\nscript = 'x = ( 1 + '\n")
    result = runner.invoke(main, ["blueprint", "load", str(bad)], env=env)
    assert result.exit_code == 1
    assert "nothing was loaded" in result.output
    assert f"{bad}:4: script.broken: script line 1" in result.output
    dump = runner.invoke(main, ["blueprint", "dump"], env=env)
    assert "ok" not in dump.output
    usage = runner.invoke(main, ["blueprint", "load"], env=env)
    assert usage.exit_code == 2
    assert "name resource files to load, or --builtin" in usage.output


def test_shipped_resources_through_both_commands(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    upgraded = runner.invoke(main, ["db", "upgrade", "--with-resources"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "database is at the latest schema" in upgraded.output
    assert "created structure.linux" in upgraded.output
    assert "34 created, 0 updated, 0 unchanged" in upgraded.output
    again = runner.invoke(main, ["db", "upgrade", "--with-resources"], env=env)
    assert "0 created, 0 updated, 34 unchanged" in again.output
    loaded = runner.invoke(main, ["blueprint", "load", "--builtin"], env=env)
    assert loaded.exit_code == 0, loaded.output
    # a summary line per file (issue 18), then the totals as before
    *per_file, total = loaded.output.strip().splitlines()
    assert total == "0 created, 0 updated, 34 unchanged"
    assert [line.split(": ", 1)[1] for line in per_file] == [
        "loaded: 0 created, 0 updated, 6 unchanged, 0 links skipped, 0 warnings",  # aws.toml
        "loaded: 0 created, 0 updated, 7 unchanged, 0 links skipped, 0 warnings",  # docker.toml
        "loaded: 0 created, 0 updated, 6 unchanged, 0 links skipped, 0 warnings",
        "loaded: 0 created, 0 updated, 6 unchanged, 0 links skipped, 0 warnings",  # libvirt.toml
        "loaded: 0 created, 0 updated, 5 unchanged, 0 links skipped, 0 warnings",
        "loaded: 0 created, 0 updated, 3 unchanged, 0 links skipped, 0 warnings",  # redfish.toml
        "loaded: 0 created, 0 updated, 1 unchanged, 0 links skipped, 0 warnings",
    ]
    dump = runner.invoke(main, ["blueprint", "dump"], env=env)
    assert "[structure.linux]" in dump.output
    assert "[foundation.simulated-foundation]" in dump.output


def test_builtin_into_a_fresh_database_by_load(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    loaded = runner.invoke(main, ["blueprint", "load", "--builtin"], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "34 created, 0 updated, 0 unchanged" in loaded.output


def test_foundation_types_load_in_any_case_and_dump_in_one(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(
        "[ foundation.hw ]\nfoundation_types = [ 'SIMULATED', 'Ipmi', 'simulated', 'VCenter' ]\n"
    )
    loaded = runner.invoke(main, ["blueprint", "load", str(mixed)], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert f"{mixed}:1: foundation.hw: foundation type 'VCenter' is not installed" in loaded.output
    dump = runner.invoke(main, ["blueprint", "dump"], env=env)
    # the type that is not installed is kept by name (issue 18)
    assert 'foundation_types = [\n    "simulated",\n    "ipmi",\n    "VCenter",\n]' in dump.output
    again = runner.invoke(main, ["blueprint", "load", str(mixed)], env=env)
    assert "0 created, 0 updated, 1 unchanged" in again.output


COMPAT = Path(__file__).parents[1] / "services" / "compat"


def test_a_plugin_file_alone_loads_with_its_links_skipped(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    plugin = COMPAT / "plugin-amt.toml"
    loaded = CliRunner().invoke(main, ["blueprint", "load", str(plugin)], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert (
        f"warning: {plugin}: sflinks[0]: structure blueprint 'linux-base' is neither in the "
        "database nor in the files loaded; link skipped"
    ) in loaded.output
    assert (
        f"warning: {plugin}:9: foundation.amt-base: foundation type 'AMT' is not installed"
    ) in loaded.output
    assert (
        f"{plugin}: loaded: 2 created, 0 updated, 0 unchanged, 2 links skipped, 1 warning"
        in loaded.output
    )
    assert loaded.output.rstrip().endswith("2 created, 0 updated, 0 unchanged")


def test_each_file_loads_or_fails_on_its_own(tmp_path: Path) -> None:
    database = tmp_path / "bp.sqlite3"
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{database}"}
    runner = CliRunner()
    paths = [str(COMPAT / f"{name}.toml") for name in ("not-toml", "core", "clash", "plugin-amt")]
    loaded = runner.invoke(main, ["blueprint", "load", *paths], env=env)
    assert loaded.exit_code == 1
    lines = loaded.output.splitlines()
    assert f"{paths[0]}: failed; nothing was loaded from it:" in lines
    assert f"  {paths[0]}:5:11: not valid TOML: Invalid value" in lines
    assert f"{paths[2]}: failed; nothing was loaded from it:" in lines
    assert (
        f"  {paths[2]}:5: structure.manual-foundation-base: a foundation blueprint with this "
        "name exists"
    ) in lines
    assert (
        f"{paths[1]}: loaded: 6 created, 0 updated, 0 unchanged, 0 links skipped, 1 warning"
    ) in lines
    assert lines[-1] == "8 created, 0 updated, 1 unchanged; 2 of 4 files failed"
    # what the good files loaded was committed, and the database the command made stays
    assert database.exists()
    dump = runner.invoke(main, ["blueprint", "dump"], env=env)
    assert "[structure.linux-base]" in dump.output
    assert "[foundation.amt-base]" in dump.output
    assert "clash-script" not in dump.output


def test_all_or_nothing_loads_nothing_for_one_bad_file(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    paths = [str(COMPAT / f"{name}.toml") for name in ("core", "clash")]
    refused = runner.invoke(main, ["blueprint", "load", "--all-or-nothing", *paths], env=env)
    assert refused.exit_code == 1
    assert "a foundation blueprint with this name exists" in refused.output
    alone = runner.invoke(
        main, ["blueprint", "load", "--all-or-nothing", str(COMPAT / "plugin-amt.toml")], env=env
    )
    assert alone.exit_code == 1
    assert "script 'linux-destroy' does not exist" in alone.output
    assert runner.invoke(main, ["blueprint", "dump"], env=env).output == ""


def test_the_report_as_json(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'bp.sqlite3'}"}
    paths = [str(COMPAT / f"{name}.toml") for name in ("plugin-docker", "not-toml")]
    loaded = CliRunner().invoke(main, ["blueprint", "load", "--json", *paths], env=env)
    assert loaded.exit_code == 1
    report = json.loads(loaded.output)
    docker, broken = report["files"]
    assert (docker["path"], docker["loaded"], broken["loaded"]) == (paths[0], True, False)
    assert sorted(docker["created"]) == ["foundation.docker-base", "structure.docker-host"]
    assert len(docker["skipped"]) == 3
    assert docker["warnings"][0].startswith(f"{paths[0]}:13:1: bare key '>package_list'")
    assert broken["errors"] == [f"{paths[1]}:5:11: not valid TOML: Invalid value"]
