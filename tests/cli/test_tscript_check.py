"""``tscript check`` as a user runs it (the installed command, a real process): the scripts
Contractor ships and the guide's examples check clean against the job modules, which the
command finds through Contractor's ``tscript.modules`` entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from contractor.services.resources import builtin_paths

ROOT = Path(__file__).parents[2]
TSCRIPT = Path(sys.executable).with_name("tscript")


def _shipped_scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for path in builtin_paths():
        for name, entry in (
            tomllib.loads(path.read_text(encoding="utf-8")).get("script", {}).items()
        ):
            scripts[f"{name}.ts"] = entry["script"]
    guide = (ROOT / "docs" / "scripts.md").read_text(encoding="utf-8")
    for index, block in enumerate(re.findall(r"^```\n(.*?)^```$", guide, re.M | re.S)):
        scripts[f"guide-{index}.ts"] = block
    return scripts


def _check(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TSCRIPT), "check", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_shipped_scripts_and_the_guide_check_clean(tmp_path: Path) -> None:
    scripts = _shipped_scripts()
    assert {"foundation-create.ts", "linux-create.ts", "power-cycle.ts"} <= set(scripts)
    files = []
    for name, source in scripts.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
        files.append(str(tmp_path / name))
    result = _check(*files)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_broken_script_lists_every_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.ts"
    path.write_text("aa = undefined_fn()\nfoundation.reboot()\nbb = = 1\n", encoding="utf-8")
    result = _check(str(path))
    assert result.returncode == 1
    heads = [
        line.split(": ")[0] for line in result.stdout.splitlines() if line.startswith(str(path))
    ]
    assert heads == [f"{path}:1:6", f"{path}:2:1", f"{path}:3:6"]
    assert result.stderr == "3 errors in 1 of 1 file\n"
    result = _check("--json", str(path))
    assert result.returncode == 1
    errors = json.loads(result.stdout)["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(1, 6), (2, 1), (3, 6)]
