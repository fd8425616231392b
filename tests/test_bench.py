"""``bench/run_all.py --quick`` end to end: every benchmark module runs (one round, small
sizes) and the JSON report has the shape bench/README.md documents; the README's table
block is rewritten in place. The numbers themselves are not judged here: timings belong in
``bench/``, not in tests."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serving import CHECKOUT

RUN_ALL = CHECKOUT / "bench" / "run_all.py"

pytestmark = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="needs a PostgreSQL server"
)

# What a floor stands beside, per benchmark (bench/README.md's table of floors).
FLOORED = {
    "foreman": "task round trips",
    "bindgen": "re-export after one changed address",
    "graphql": "nested page of 1,000 structures",
    "tscript": "parse rate",
    "events": "commit -> subscription p99",
    "dns_update": "records of one commit answered",
    "subcontractor": "redfish power-state reads",
}


def _spread(value: Any) -> None:
    assert set(value) == {"median", "min", "max"}
    assert value["min"] <= value["median"] <= value["max"]


@pytest.mark.timeout(900)  # about a minute on an idle machine; several under load
def test_quick_run_reports_every_benchmark_against_its_floor(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n\n<!-- bench-table old -->\nstale figures\n<!-- /bench-table -->\nend\n"
    )
    out = tmp_path / "results"
    finished = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--out", str(out), "--write-readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=840,
        cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())

    assert report["rounds"] == 1
    assert report["quick"] is True
    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert machine["postgresql"][0].isdigit()
    load = report["load_average"]
    assert load["samples"] >= 1
    assert 0 <= load["min"] <= load["median"] <= load["max"]

    names = sorted(p.name.removesuffix("_bench.py") for p in RUN_ALL.parent.glob("*_bench.py"))
    assert [bench["name"] for bench in report["benchmarks"]] == names
    by_name = {bench["name"]: bench for bench in report["benchmarks"]}
    for bench in report["benchmarks"]:
        assert bench["error"] == "", bench
        if bench.get("skipped"):
            continue
        assert bench["figures"], bench["name"]
        assert bench["wall_s"] > 0
        for figure in bench["figures"]:
            assert figure["better"] in ("lower", "higher")
            assert len(figure["samples"]) == 1
            assert all(isinstance(value, float | int) for value in figure["samples"])
            summary = figure["summary"]
            _spread(summary["value"])
            if figure["floor"] is not None:
                assert len(figure["floor"]["samples"]) == 1
                _spread(summary["floor"])
                _spread(summary["ratio"])
                assert summary["ratio"]["median"] > 0
    for name, figure_name in FLOORED.items():
        figures = [f for f in by_name[name]["figures"] if figure_name in f["name"]]
        assert figures, f"{name}: no figure named like {figure_name!r}"
        assert all(f["floor"] is not None for f in figures), name
        assert all(f["cpu_s"] or f["wall_s"] or name in ("events", "dns_update") for f in figures)

    table = (out / "results.md").read_text()
    assert table.count("\n| ") >= sum(len(b["figures"]) for b in report["benchmarks"])
    assert report["date"] in table
    text = readme.read_text()
    assert text.startswith("intro\n\n<!-- bench-table generated")
    assert text.endswith("<!-- /bench-table -->\nend\n")
    assert "stale figures" not in text
    assert table in text


def test_write_readme_refuses_a_readme_without_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    finished = subprocess.run(
        [sys.executable, str(RUN_ALL), "--only", "nonesuch", "--write-readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert "README.md: no <!-- bench-table" in finished.stderr
    assert readme.read_text() == "no block here\n"


def test_an_unknown_benchmark_is_named() -> None:
    finished = subprocess.run(
        [sys.executable, str(RUN_ALL), "--only", "nonesuch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert "no such benchmark: nonesuch" in finished.stderr
