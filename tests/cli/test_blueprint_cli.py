"""contractor blueprint load / dump."""

from __future__ import annotations

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
    assert "12 created, 0 updated, 0 unchanged" in upgraded.output
    again = runner.invoke(main, ["db", "upgrade", "--with-resources"], env=env)
    assert "0 created, 0 updated, 12 unchanged" in again.output
    loaded = runner.invoke(main, ["blueprint", "load", "--builtin"], env=env)
    assert loaded.exit_code == 0, loaded.output
    # a summary line per file (issue 18), then the totals as before
    *per_file, total = loaded.output.strip().splitlines()
    assert total == "0 created, 0 updated, 12 unchanged"
    assert [line.split(": ", 1)[1] for line in per_file] == [
        "loaded: 0 created, 0 updated, 6 unchanged, 0 links skipped, 0 warnings",
        "loaded: 0 created, 0 updated, 5 unchanged, 0 links skipped, 0 warnings",
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
    assert "12 created, 0 updated, 0 unchanged" in loaded.output


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
