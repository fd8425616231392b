"""Run every benchmark, N rounds each, and report medians against floors measured in the same run.

    .venv/bin/python bench/run_all.py                    # every bench/*_bench.py, 3 rounds
    .venv/bin/python bench/run_all.py --quick            # small sizes, 1 round (a minute)
    .venv/bin/python bench/run_all.py --only tscript --only bindgen --rounds 5
    .venv/bin/python bench/run_all.py --write-readme     # and rewrite README.md's table

Each benchmark module (``bench/<name>_bench.py``, see bench/README.md) runs in a process of
its own, with a fresh database in one throwaway PostgreSQL cluster this command starts and
stops, and returns its figures, each with one sample per round and, where it has one, its
floor measured round by round alternating with it. This prints and writes (``--out``) a JSON
file and a Markdown table: per figure the median with min-max, the wall and CPU seconds
(this process and its children, and the servers a benchmark started) beside each other, the
floor and the ratio to it; and the machine: cores, load average sampled through the run,
Python, PostgreSQL and BIND versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- bench-table"
END = "<!-- /bench-table -->"
_README_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)


def modules() -> list[str]:
    """The benchmark modules' names: every ``bench/<name>_bench.py``."""
    return sorted(path.name.removesuffix("_bench.py") for path in BENCH.glob("*_bench.py"))


def run_module(name: str, rounds: int, quick: bool) -> list[dict[str, Any]]:
    """Import ``bench/<name>_bench.py`` and return its figures as data."""
    path = BENCH / f"{name}_bench.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.measure(rounds=rounds, quick=quick)
    return [normalised(f.as_dict() if hasattr(f, "as_dict") else dict(f)) for f in figures]


def has_measure(name: str) -> bool:
    """Whether ``bench/<name>_bench.py`` follows the convention (a ``measure`` function),
    read from its text: importing it here would run its imports in this process."""
    text = (BENCH / f"{name}_bench.py").read_text(encoding="utf-8")
    return re.search(r"^def measure\(", text, re.MULTILINE) is not None


def normalised(figure: dict[str, Any]) -> dict[str, Any]:
    """A figure with every key of the convention (bench/README.md), checked."""
    for key in ("name", "samples"):
        if key not in figure:
            raise SystemExit(f"a figure has no {key!r}: {figure}")
    figure = {
        "unit": "s",
        "better": "lower",
        "wall_s": [],
        "cpu_s": [],
        "note": "",
        "target": "",
        "floor": None,
        **figure,
    }
    if figure["better"] not in ("lower", "higher"):
        raise SystemExit(f"{figure['name']}: better is 'lower' or 'higher'")
    if figure["floor"] is not None:
        floor = {"wall_s": [], "cpu_s": [], "note": "", **figure["floor"]}
        if len(floor["samples"]) != len(figure["samples"]):
            raise SystemExit(f"{figure['name']}: a floor sample for each sample, please")
        figure["floor"] = floor
    return figure


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadSampler(threading.Thread):
    """The one-minute load average, sampled every ``interval`` seconds while the run lasts."""

    def __init__(self, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[float] = [os.getloadavg()[0]]
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {
            "min": min(self.samples),
            "median": statistics.median(self.samples),
            "max": max(self.samples),
            "samples": len(self.samples),
        }


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def machine(pg_url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(pg_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
        assert row is not None
        postgres = str(row[0])
    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "postgresql": postgres,
        "bind": _version(["named", "-v"]).split(" (")[0],
        "commit": commit + ("+changes" if dirty else ""),
    }


def summarise(figure: dict[str, Any]) -> dict[str, Any]:
    """Medians and ranges of a figure, its floor and its ratio to the floor (per round, the
    sample over the floor's sample of the same round)."""

    def spread(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    summary: dict[str, Any] = {
        "value": spread(figure["samples"]),
        "wall_s": spread(figure.get("wall_s") or []),
        "cpu_s": spread(figure.get("cpu_s") or []),
    }
    floor = figure.get("floor")
    if floor:
        summary["floor"] = spread(floor["samples"])
        summary["floor_cpu_s"] = spread(floor.get("cpu_s") or [])
        pairs = zip(figure["samples"], floor["samples"], strict=True)
        ratios = [value / base for value, base in pairs if base]
        summary["ratio"] = spread(ratios)
    return summary


def _number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or value == int(value):
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _spread(values: dict[str, float] | None, unit: str = "") -> str:
    if values is None:
        return "—"
    text = _number(values["median"])
    if values["min"] != values["max"]:
        text += f" ({_number(values['min'])}-{_number(values['max'])})"
    return f"{text} {unit}".rstrip()


def _ratio(values: dict[str, float] | None, better: str) -> str:
    if values is None:
        return "—"
    if better == "higher":  # a share of the floor's rate
        text = f"{100 * values['median']:.1g}%" if values["median"] < 0.01 else ""
        text = text or f"{100 * values['median']:.0f}%"
        if values["min"] != values["max"]:
            text += f" ({100 * values['min']:.0f}-{100 * values['max']:.0f}%)"
        return text
    text = f"{values['median']:.2f}x"
    if values["min"] != values["max"]:
        text += f" ({values['min']:.2f}-{values['max']:.2f})"
    return text


def markdown(report: dict[str, Any]) -> str:
    host = report["machine"]
    load = report["load_average"]
    lines = [
        f"Generated by `python bench/run_all.py{' --quick' if report['quick'] else ''}` on "
        f"{report['date']} ({report['rounds']} rounds per figure, medians with min-max; "
        f"commit {host['commit']}): {host['cores']} cores, load average "
        f"{load['min']:.1f}-{load['max']:.1f} (median {load['median']:.1f}) during the run, "
        f"{host['implementation']} {host['python']}, PostgreSQL {host['postgresql']}, "
        f"{host['bind']}, {host['system']}. CPU is this process, its children and the "
        "servers a benchmark started, not PostgreSQL's. The ratio is the figure over its "
        "floor measured in the same round (times: x the floor; rates: % of the floor's).",
        "",
        "| benchmark | figure | median (min-max) | wall / CPU s | floor | floor median "
        "(min-max) | ratio to floor | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for bench in report["benchmarks"]:
        if bench.get("error") or bench.get("skipped"):
            why = f"failed: {bench['error']}" if bench.get("error") else "skipped: no measure()"
            lines.append(f"| {bench['name']} | {why} | | | | | | |")
            continue
        for figure in bench["figures"]:
            summary = figure["summary"]
            wall, cpu = summary["wall_s"], summary["cpu_s"]
            seconds = " / ".join(_number(s["median"]) if s else "—" for s in (wall, cpu))
            floor = figure.get("floor")
            name = figure["name"] + (f" ({figure['note']})" if figure.get("note") else "")
            floor_name = "—"
            if floor:
                floor_name = floor["name"] + (f" ({floor['note']})" if floor.get("note") else "")
            lines.append(
                f"| {bench['name']} | {name} | {_spread(summary['value'], figure['unit'])} | "
                f"{seconds} | {floor_name} | "
                f"{_spread(summary.get('floor'), figure['unit']) if floor else '—'} | "
                f"{_ratio(summary.get('ratio'), figure['better'])} | {figure.get('target') or ''} |"
            )
    return "\n".join(lines) + "\n"


def readme_text(readme: Path) -> str:
    """The README's text, refused (before anything runs) when it has no table block."""
    text = readme.read_text(encoding="utf-8")
    if not _README_BLOCK.search(text):
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to rewrite")
    return text


def write_readme(table: str, readme: Path = README) -> None:
    text = readme_text(readme)
    block = f"{BEGIN} generated by bench/run_all.py --write-readme; do not edit -->\n\n"
    block += table + "\n" + END
    readme.write_text(_README_BLOCK.sub(lambda _: block, text, count=1), encoding="utf-8")


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = args.only or modules()
    unknown = sorted(set(names) - set(modules()))
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(unknown)} (have {', '.join(modules())})")
    sampler = LoadSampler()
    sampler.start()
    url, base = harness.start_cluster()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds,
        "quick": args.quick,
        "benchmarks": [],
    }
    try:
        report["machine"] = machine(url)
        harness.migrated_template(url)
        env = dict(os.environ, **{harness.CLUSTER_ENV: url})
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not has_measure(name):
                print(f"== {name}: skipped, no measure() (see bench/README.md)", flush=True)
                report["benchmarks"].append(
                    {"name": name, "skipped": "no measure()", "error": "", "figures": []}
                )
                continue
            result = out / f"{name}.figures.json"
            result.unlink(missing_ok=True)
            print(f"== {name} ({args.rounds} rounds{', quick' if args.quick else ''})", flush=True)
            command = [sys.executable, __file__, "--child", name, "--rounds", str(args.rounds)]
            command += ["--result", str(result)] + (["--quick"] if args.quick else [])
            cpu, start = _children_cpu(), time.perf_counter()
            try:
                finished = subprocess.run(command, env=env, timeout=args.timeout)
                error = f"exit status {finished.returncode}" if finished.returncode else ""
            except subprocess.TimeoutExpired:
                error = f"timed out after {args.timeout} s"
            bench: dict[str, Any] = {
                "name": name,
                "wall_s": time.perf_counter() - start,
                "cpu_s": _children_cpu() - cpu,
                "error": error,
                "figures": [],
            }
            if not error:
                bench["figures"] = json.loads(result.read_text())
                for figure in bench["figures"]:
                    figure["summary"] = summarise(figure)
            result.unlink(missing_ok=True)
            report["benchmarks"].append(bench)
    finally:
        harness.stop_cluster(base)
        sampler.stopped.set()
        report["load_average"] = sampler.summary()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure (3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round")
    parser.add_argument("--only", action="append", help="this benchmark only (repeatable)")
    parser.add_argument("--out", default="bench-results", help="directory of the results")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument(
        "--write-readme",
        nargs="?",
        const=str(README),
        metavar="README",
        help="rewrite the table block of README.md (or of the file given)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.child:
        figures = run_module(args.child, args.rounds, args.quick)
        Path(args.result).write_text(json.dumps(figures, indent=1))
        return
    if args.write_readme:
        readme_text(Path(args.write_readme))
    report = run(args)
    table = markdown(report)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "results.md").write_text(table)
    print()
    print(table)
    print(f"written: {out / 'results.json'}, {out / 'results.md'}")
    if args.write_readme:
        write_readme(table, Path(args.write_readme))
        print(f"rewritten: the table in {args.write_readme}")
    failed = [bench["name"] for bench in report["benchmarks"] if bench["error"]]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
