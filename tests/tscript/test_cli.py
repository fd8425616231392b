"""``tscript check``: every problem of every file, the modules it checks calls against
(``--module``, ``--no-standard``), ``--json`` and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tscript.cli import installed_modules, main

BROKEN = (
    "aa = undefined_fn()\n"  # 1:6
    "nosuchmodule.fn()\n"  # 2:1
    "bb = = 1\n"  # 3:6
    "iputils.pong( target='x' )\n"  # 4:1
    "cc = ( 1 + 2 + 3 )\n"  # 5:14
    "iputils.ping( target='x', cnt=1 )\n"  # 6:27
)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_error_of_every_file_is_listed(tmp_path: Path) -> None:
    broken = _write(tmp_path, "broken.ts", BROKEN)
    good = _write(tmp_path, "good.ts", "iputils.ping( target='x' )\n")
    other = _write(tmp_path, "other.ts", "begin()\n  x = (\n")
    result = CliRunner().invoke(main, ["check", broken, good, other])
    assert result.exit_code == 1
    heads = [line for line in result.stdout.splitlines() if line.startswith(str(tmp_path))]
    assert [head.split(": ")[0] for head in heads] == [
        f"{broken}:1:6",
        f"{broken}:2:1",
        f"{broken}:3:6",
        f"{broken}:4:1",
        f"{broken}:5:14",
        f"{broken}:6:27",
        f"{other}:1:1",
        f"{other}:3:1",
    ]
    assert 'unknown function "undefined_fn"' in heads[0]
    assert 'unknown module "nosuchmodule" (modules: complex, config, dhcp, foundation,' in heads[1]
    assert 'module "iputils" has no function "pong"' in heads[3]
    assert 'iputils.ping() has no parameter "cnt"' in heads[5]
    assert "missing its end" in heads[6]
    assert "aa = undefined_fn()\n     ^" in result.stdout
    assert "8 errors in 2 of 3 files" in result.stderr


def test_a_fine_file_exits_zero_quietly(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.ts", "foundation.power_on()\nif exists( config.x ) then pass")
    result = CliRunner().invoke(main, ["check", good])
    assert (result.exit_code, result.output) == (0, "")


def test_extra_modules_and_no_standard(tmp_path: Path) -> None:
    script = _write(tmp_path, "s.ts", "vyos.execute( command='ls' )\nfoundation.power_on()\n")
    result = CliRunner().invoke(main, ["check", script])
    assert result.exit_code == 1
    assert 'unknown module "vyos"' in result.stdout
    assert CliRunner().invoke(main, ["check", "--module", "vyos", script]).exit_code == 0
    assert CliRunner().invoke(main, ["check", "--module", "vyos.execute", script]).exit_code == 0
    result = CliRunner().invoke(main, ["check", "--module", "vyos.run", script])
    assert 'module "vyos" has no function "execute" (functions: run)' in result.stdout
    result = CliRunner().invoke(main, ["check", "--no-standard", "--module", "vyos", script])
    assert result.exit_code == 1
    assert 'unknown module "foundation" (modules: vyos)' in result.stdout
    # a function added to a standard module
    script = _write(tmp_path, "t.ts", "foundation.reseat()\n")
    assert CliRunner().invoke(main, ["check", script]).exit_code == 1
    assert (
        CliRunner().invoke(main, ["check", "--module", "foundation.reseat", script]).exit_code == 0
    )


def test_a_bad_module_option_is_refused(tmp_path: Path) -> None:
    script = _write(tmp_path, "s.ts", "aa = 1\n")
    result = CliRunner().invoke(main, ["check", "--module", "a.b.c", script])
    assert result.exit_code == 2
    assert "'a.b.c': give NAME or NAME.FUNCTION" in result.output


def test_json(tmp_path: Path) -> None:
    broken = _write(tmp_path, "broken.ts", BROKEN)
    result = CliRunner().invoke(main, ["check", "--json", broken, str(tmp_path / "missing.ts")])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["files"] == 2
    assert [(e["line"], e["column"]) for e in document["errors"]] == [
        (1, 6),
        (2, 1),
        (3, 6),
        (4, 1),
        (5, 14),
        (6, 27),
        (0, 0),
    ]
    assert document["errors"][-1]["file"] == str(tmp_path / "missing.ts")
    assert "cannot read the file" in document["errors"][-1]["message"]
    good = _write(tmp_path, "good.ts", "aa = 1")
    result = CliRunner().invoke(main, ["check", "--json", good])
    assert (result.exit_code, json.loads(result.stdout)) == (
        0,
        {"ok": True, "files": 1, "errors": []},
    )


def test_the_standard_modules_are_the_job_modules() -> None:
    names = [module.name for module in installed_modules()]
    assert names == [
        "foundation",
        "structure",
        "config",
        "dhcp",
        "iputils",
        "signaling",
        "ssh",
        "complex",
    ]
