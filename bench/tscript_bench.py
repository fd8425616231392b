"""TScript benchmark: parsing, running, and saving/restoring a runner.

Run: ``.venv/bin/python bench/tscript_bench.py`` (``bench/run_all.py`` calls ``measure``)

1. parse time of a generated 5,000-line script (blocks, loops, ifs, module calls, jump points);
2. run time of a 100,000-iteration counting loop, in slices of 1,000 steps as a job runs;
3. size and time of a state save (``to_json`` + ``json.dumps``) and restore (``json.loads`` +
   ``Runner.from_json``) of a realistic job stopped at a remote call.

The original implementation takes 2.3-3.2 s for (1) and 10.8-12.4 s for (2) on a 2-core
machine of this kind; the targets are at least 10x faster and under 1 ms for (3).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lark import Lark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Clock, Figure, Series
from tscript import ExternalFunction, FunctionFactory, Module, Runner, Value, parse
from tscript import lexer as tscript_lexer
from tscript import parser as tscript_parser

ORIGINAL_PARSE = (2.3, 3.2)
ORIGINAL_LOOP = (10.8, 12.4)


def generated_script(lines: int) -> str:
    out = [":start", "counter = 0", "hosts = [ 'a', 'b', 'c' ]"]
    index = 0
    while len(out) + 9 < lines - 1:
        out += [
            f"begin( description='step {index}', expected_time=0:{index % 60:02} )",
            f"  value{index} = ( ( counter + {index} ) * 2 )",
            f"  if ( value{index} > 10 ) then foundation.power_on()",
            f"  elif exists( config.flag{index} ) then counter = ( counter + 1 )",
            "  else pass",
            f"  while ( counter < {index} ) do counter = ( counter + 1 )",
            f"  info = {{ name='host{index}', ports=[ 22, 80 ], up=true }}",
            f"  message( msg=( 'done step ' . {index} ) )",
            "end",
        ]
        index += 1
    while len(out) < lines - 1:
        out.append("counter = ( counter + 1 )")
    out.append("goto start")
    return "\n".join(out)


def best(function: Callable[[], Any], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


class Remote(ExternalFunction):
    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}
        self.result: Any = None

    def setup(self, parameters: dict[str, Any]) -> None:
        self.parameters = dict(parameters)

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def value(self) -> Any:
        return self.result

    def to_subcontractor(self) -> tuple[str, dict[str, Any]]:
        return ("execute", self.parameters)

    def from_subcontractor(self, data: dict[str, Any]) -> None:
        self.result = data

    def to_json(self) -> Any:
        return {"parameters": self.parameters, "result": self.result}

    def from_json(self, state: Any) -> None:
        self.parameters = state["parameters"]
        self.result = state["result"]


class Foundation(Module):
    name = "foundation"

    def values(self) -> Mapping[str, Value]:
        return {"type": Value(lambda: "IPMI"), "locator": Value(lambda: "rack1-u12")}

    def functions(self) -> Mapping[str, FunctionFactory]:
        return {"power_on": Remote, "wait_for_port": Remote}


JOB = """\
begin( description="Create Linux", expected_time=30:00 )
  hostname = 'web01'
  interfaces = [ { name='eth0', mac='00:11:22:33:44:55', ip='10.0.0.5' },
                 { name='eth1', mac='00:11:22:33:44:56', ip='10.0.1.5' } ]
  settings = { distro='ubuntu', version='24.04', packages=[ 'openssh', 'curl', 'vim' ] }
  attempts = 0
  begin( description="Power On", expected_time=2:00 )
    while ( attempts < 3 ) do attempts = ( attempts + 1 )
    foundation.power_on( interfaces=interfaces, locator=foundation.locator )
  end
  foundation.wait_for_port( target=interfaces[0], port=22 )
  message( msg=( 'built ' . hostname ) )
end
"""


LOOP = "cnt = 0\nwhile ( cnt < %d ) do cnt = ( cnt + 1 )"


def run_loop(iterations: int) -> None:
    runner = Runner(LOOP % iterations, max_steps=10**9)
    while runner.run(1000).state != "done":
        pass
    assert runner.variables["cnt"] == iterations


def bare_lark() -> Lark:
    """The floor of a parse: lark's LALR(1) parser with TScript's grammar and lexer, and no
    callbacks at all (each rule's value is the plain list of its children: no tree, no AST)."""
    grammar = Path(tscript_parser.__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    bare = Lark(
        grammar,
        parser="lalr",
        lexer=tscript_lexer.Lexer,
        maybe_placeholders=True,
        propagate_positions=False,
    )
    bare.parser.parser.parser.callbacks = {}
    return bare


FIRST_PARSE = """\
import time
start = time.perf_counter()
import tscript
tscript.parse("aa = 1")
print(time.perf_counter() - start)
"""


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py: a generated script parsed (seconds and characters
    per second) against the bare lark parse of it, alternating; a first parse in a new
    process (import and grammar); a counting loop run in slices."""
    source = generated_script(500 if quick else 5000)
    iterations = 5_000 if quick else 100_000
    chars = len(source)
    bare = bare_lark()
    bare.parse(source)  # both warm
    parse(source)
    seconds = Figure(f"parse {source.count(chr(10)) + 1:,}-line script", note=f"{chars:,} chars")
    seconds.floor = Series("lark alone, same grammar and lexer, no tree")
    rate = Figure("parse rate", unit="chars/s", better="higher", target="≥ 1 MB/s")
    rate.floor = Series("lark alone")
    first = Figure("first parse in a new process", note="import, grammar, parse")
    loop = Figure(f"{iterations:,}-iteration loop", note="slices of 1,000 steps")
    for _ in range(rounds):
        with Clock() as floor:
            bare.parse(source)
        with Clock() as ours:
            parse(source)
        seconds.add(ours.wall, ours.wall, ours.cpu)
        seconds.floor.add(floor.wall, floor.wall, floor.cpu)
        rate.add(chars / ours.wall, ours.wall, ours.cpu)
        rate.floor.add(chars / floor.wall, floor.wall, floor.cpu)
        with Clock() as process:
            out = subprocess.run(
                [sys.executable, "-c", FIRST_PARSE], check=True, capture_output=True, text=True
            )
        first.add(float(out.stdout), process.wall, process.cpu)
        with Clock() as looped:
            run_loop(iterations)
        loop.add(looped.wall, looped.wall, looped.cpu)
    return [seconds, rate, first, loop]


def main() -> None:
    source = generated_script(5000)
    start = time.perf_counter()
    parse("aa = 1")
    grammar_build = time.perf_counter() - start
    parse_best, parse_median = best(lambda: parse(source), 5)

    loop_best, loop_median = best(lambda: run_loop(100_000), 5)

    runner = Runner(JOB, [Foundation()])
    while runner.run().state != "waiting":
        pass
    task = runner.to_subcontractor(["foundation"])
    assert task is not None
    text = json.dumps(runner.to_json(), separators=(",", ":"))
    save_best, save_median = best(lambda: json.dumps(runner.to_json()), 2000)

    def restore() -> Runner:
        return Runner.from_json(json.loads(text), [Foundation()])

    restore_best, restore_median = best(restore, 2000)
    # a process restoring this script for the first time also parses and compiles it
    cold_best, cold_median = best(lambda: Runner(parse(JOB), [Foundation()]), 200)
    restored = restore()
    assert restored.from_subcontractor(task["cookie"], {"ok": True})[0] == "Accepted"

    print("TScript benchmark")
    print(f"  lark grammar build (once per process) {grammar_build * 1000:8.1f} ms")
    print(
        f"  parse 5,000-line script      best {parse_best:7.3f} s  median {parse_median:7.3f} s"
        f"  ({len(source):,} chars)  original {ORIGINAL_PARSE[0]}-{ORIGINAL_PARSE[1]} s"
        f"  -> {ORIGINAL_PARSE[0] / parse_best:5.1f}x-{ORIGINAL_PARSE[1] / parse_best:.1f}x faster"
    )
    print(
        f"  100,000-iteration loop       best {loop_best:7.3f} s  median {loop_median:7.3f} s"
        f"  (slices of 1,000 steps)  original {ORIGINAL_LOOP[0]}-{ORIGINAL_LOOP[1]} s"
        f"  -> {ORIGINAL_LOOP[0] / loop_best:5.1f}x-{ORIGINAL_LOOP[1] / loop_best:.1f}x faster"
    )
    print(
        f"  state save (to_json+dumps)   best {save_best * 1e6:7.1f} us median "
        f"{save_median * 1e6:7.1f} us  size {len(text):,} bytes"
    )
    print(
        f"  state restore (loads+from_json) best {restore_best * 1e6:7.1f} us median "
        f"{restore_median * 1e6:7.1f} us  (program cached per process)"
    )
    print(
        f"  first restore in a process adds parse+compile: best {cold_best * 1e3:.2f} ms "
        f"median {cold_median * 1e3:.2f} ms ({JOB.count(chr(10))}-line job script)"
    )


if __name__ == "__main__":
    main()
