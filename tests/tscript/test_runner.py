"""The runner: stepping, error classes, time limits, progress, and the saved JSON state."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest

from tscript import (
    STATE_VERSION,
    ExecutionError,
    Module,
    NotDefinedError,
    ParameterError,
    Pause,
    Runner,
    RuntimeSignal,
    ScriptError,
    StepLimitExceeded,
    UnrecoverableError,
    Value,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _finish(runner: Runner, budget: int = 1000) -> None:
    for _ in range(100_000):
        if runner.run(budget).state == "done":
            return
    raise AssertionError("the script did not finish")


def _roundtrip(runner: Runner, clock: Clock | None = None) -> Runner:
    text = json.dumps(runner.to_json(), allow_nan=False)
    if clock is None:
        return Runner.from_json(text)
    return Runner.from_json(text, clock=clock)


@pytest.mark.parametrize(
    ("source", "steps"),
    [
        ("", 1),
        ("aa = 1", 4),
        ("aa = [1,2,3]", 7),
        ("cnt=0\nwhile (cnt<3) do cnt=(cnt+1)", 30),
        ("aa = not true", 6),
        ("begin()\naa = 1\nend", 4),
        ("aa = 1\nbegin()\nbb = 2\nend", 9),
    ],
)
def test_steps_count_node_visits_like_the_original(source: str, steps: int) -> None:
    runner = Runner(source)
    _finish(runner)
    assert runner.steps == steps


def test_budget_slices_and_ceiling() -> None:
    runner = Runner("cnt = 0\nwhile true do cnt = ( cnt + 1 )", max_steps=1000)
    assert runner.run(10).state == "budget"
    assert runner.steps == 10

    def until_stopped() -> None:
        while True:
            runner.run(7)

    with pytest.raises(StepLimitExceeded) as caught:
        until_stopped()
    assert caught.value.kind == "ExecutionError"
    assert caught.value.line == 2
    assert runner.variables["cnt"] == 198
    assert not runner.aborted
    runner.reset_step_ceiling()
    with pytest.raises(StepLimitExceeded):
        runner.run(10_000)
    assert runner.variables["cnt"] == 398


def test_every_run_makes_progress_with_budget_one() -> None:
    runner = Runner("aa = [ [ 1, 2 ], { kk=( 1 + 2 ) } ]")
    slices = 0
    while runner.run(1).state != "done":
        slices += 1
    assert runner.variables == {"aa": [[1, 2], {"kk": 3}]}
    assert slices > 3


def test_error_classes_and_outcomes() -> None:
    assert issubclass(NotDefinedError, UnrecoverableError)
    assert issubclass(ParameterError, UnrecoverableError)
    assert issubclass(ScriptError, UnrecoverableError)
    assert issubclass(StepLimitExceeded, ExecutionError)
    kinds = {
        NotDefinedError("x").kind,
        ParameterError("x", "y").kind,
        ScriptError("x").kind,
        ExecutionError("x").kind,
        Pause("x").kind,
    }
    assert kinds == {"NotDefined", "ParameterError", "ScriptError", "ExecutionError", "Pause"}
    assert str(NotDefinedError("aa", 3)) == 'Not Defined "aa" (line 3)'
    outcomes = [error.outcome for error in (Pause(""), ExecutionError(""), ScriptError(""))]
    assert outcomes == ["paused", "error", "aborted"]
    assert (StepLimitExceeded("").outcome, NotDefinedError("x").outcome) == ("error", "aborted")


def test_aborted_runner_stays_aborted() -> None:
    runner = Runner("aa = 1\nbb = ( aa / 0 )\ncc = 3")
    with pytest.raises(ScriptError) as caught:
        runner.run()
    assert caught.value.line == 2
    assert "ZeroDivisionError" in caught.value.message
    assert runner.aborted
    assert runner.line is None
    assert runner.run().state == "aborted"
    assert _roundtrip(runner).aborted


def test_done_runner_stays_done() -> None:
    runner = Runner("aa = 1")
    assert runner.run().state == "done"
    assert runner.done
    assert runner.run().state == "done"
    assert runner.status()["percent"] == 100.0


def test_pause_resume_and_line() -> None:
    runner = Runner("aa = 1\n\nbb = pause( msg=[ 1 ] )\ncc = 2")
    assert runner.line == 1
    with pytest.raises(Pause) as caught:
        runner.run()
    assert (caught.value.message, caught.value.line) == ("[ 1 ]", 3)
    assert runner.line == 3
    runner = _roundtrip(runner)
    assert runner.run().state == "done"
    assert runner.variables == {"aa": 1, "bb": None, "cc": 2}


def test_max_time_pauses_once_then_the_block_runs_on() -> None:
    clock = Clock()
    runner = Runner(
        "begin( description='install', max_time=0:10 )\n  delay( seconds=60 )\n  aa = 1\nend",
        clock=clock,
    )
    assert runner.run().state == "waiting"
    clock.now += 5
    assert runner.run().state == "waiting"
    clock.now += 10
    runner = _roundtrip(runner, clock)
    with pytest.raises(Pause, match="Max Time Elapsed") as caught:
        runner.run()
    assert caught.value.line == 2
    result = runner.run()
    assert (result.state, result.message) == ("waiting", "Waiting for 45 more seconds")
    clock.now += 100
    assert runner.run().state == "done"
    assert runner.variables == {"aa": 1}


def test_delay_message_and_wait() -> None:
    clock = Clock()
    runner = Runner("delay( minutes=1 )\naa = 1", clock=clock)
    assert runner.run().message == "Waiting for 60 more seconds"
    clock.now += 59.5
    runner = _roundtrip(runner, clock)
    assert runner.run().message == "Waiting for 1 more seconds"
    clock.now += 1
    assert runner.run().state == "done"


def test_status_inside_nested_blocks() -> None:
    clock = Clock()
    source = (
        "aa = 1\n"
        "begin( description='outer', expected_time=2:00 )\n"
        "  bb = 1\n"
        "  pause( msg='look' )\n"
        "end\n"
        "cc = 1\n"
    )
    runner = Runner(source, clock=clock)
    status = runner.status()
    assert (status["percent"], status["line"]) == (0.0, 1)
    with pytest.raises(Pause):
        runner.run()
    clock.now += 30
    status = _roundtrip(runner, clock).status()
    assert status["line"] == 4
    assert status["percent"] == pytest.approx(50.0)
    root, block = status["blocks"]
    assert root["percent"] == pytest.approx(50.0)
    assert block["percent"] == pytest.approx(50.0)
    assert block["description"] == "outer"
    assert block["elapsed"] == pytest.approx(30.0)
    assert block["remaining"] == pytest.approx(90.0)
    assert "remaining" not in root


def test_status_inside_an_expression_and_a_loop() -> None:
    runner = Runner(
        "cnt = 0\nwhile ( cnt < 3 ) do\n"
        "  cnt = ( cnt + pop( array=[ 1, pause( msg='p' ) ], index=0 ) )"
    )
    with pytest.raises(Pause):
        runner.run()
    status = runner.status()
    assert status["line"] == 3
    assert status["percent"] == pytest.approx(50.0)


def test_goto_keeps_block_timers() -> None:
    # DESIGN TScript 7: the original discards the root scope's start time on goto; we keep it
    # (jump points are top-level lines, so the root scope is the only block a goto stays in).
    # A block the goto leaves is entered afresh, with a new start and a new max_time deadline.
    clock = Clock()
    runner = Runner(
        "rounds = []\n"
        ":top\n"
        "append( array=rounds, value=len( array=rounds ) )\n"
        "begin( description='round', expected_time=1:00, max_time=0:30 )\n"
        "  pause( msg='look' )\n"
        "  if ( len( array=rounds ) < 3 ) then goto top\n"
        "end\n"
        "total = len( array=rounds )\n",
        clock=clock,
    )
    with pytest.raises(Pause, match="look"):
        runner.run()
    for waited, root_elapsed in ((20, 20.0), (25, 45.0)):
        clock.now += waited
        runner = _roundtrip(runner, clock)
        with pytest.raises(Pause, match="look"):  # not "Max Time Elapsed": a fresh deadline
            runner.run()
        root, block = runner.status()["blocks"]
        assert root["elapsed"] == pytest.approx(root_elapsed)
        assert root["description"] is None
        assert block["description"] == "round"
        assert block["elapsed"] == pytest.approx(0.0)
        assert block["remaining"] == pytest.approx(60.0)
        assert runner.next_wake() == pytest.approx(clock.now + 30)
    clock.now += 5
    _finish(runner)
    assert runner.variables == {"rounds": [0, 1, 2], "total": 3}


def test_goto_leaves_loops_and_blocks() -> None:
    runner = Runner(
        "cnt = 0\n:top\ncnt = ( cnt + 1 )\nwhile true do begin()\n  begin()\n"
        "    if ( cnt < 3 ) then goto top\n    goto out\n  end\nend\n:out\ndone = cnt"
    )
    _finish(runner)
    assert runner.variables == {"cnt": 3, "done": 3}


def test_state_document_shape() -> None:
    runner = Runner("aa = 1\npause( msg='x' )")
    with pytest.raises(Pause):
        runner.run()
    state = runner.to_json()
    assert state["format"] == "tscript-runner"
    assert state["version"] == STATE_VERSION
    assert state["source"] == "aa = 1\npause( msg='x' )"
    assert len(state["sha256"]) == 64
    assert state["variables"] == {"aa": 1}
    json.dumps(state, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"version": 99}, "version"),
        ({"format": "pickle"}, "not a saved"),
        ({"source": "aa = 2"}, "hash"),
    ],
)
def test_bad_state_is_refused(change: dict[str, Any], words: str) -> None:
    state = Runner("aa = 1").to_json()
    state.update(change)
    with pytest.raises(ValueError, match=words):
        Runner.from_json(state)


def test_typed_values_survive_a_save() -> None:
    runner = Runner("pause( msg='x' )")
    big = 3**200
    shared = [1, 2]
    values: dict[str, Any] = {
        "big": big,
        "negative_big": -big,
        "zero": -0.0,
        "inf": math.inf,
        "minus_inf": -math.inf,
        "time": timedelta(days=2, seconds=5, microseconds=7),
        "complex": complex(1.5, -math.inf),
        "keys": {1: "one", False: "no", None: "none", (1, 2): "pair", "__ref__": 3},
        "tuple": (1, [2]),
        "nested": {"a": shared, "b": [shared, {"c": shared}]},
    }
    runner.variables.update(values)
    values["nan"] = runner.variables["nan"] = math.nan
    restored = Runner.from_json(json.dumps(runner.to_json(), allow_nan=False)).variables
    for name in ("big", "negative_big", "inf", "minus_inf", "time", "complex", "keys", "tuple"):
        assert restored[name] == values[name], name
        assert type(restored[name]) is type(values[name])
    assert math.copysign(1.0, restored["zero"]) == -1.0
    assert math.isnan(restored["nan"])
    nested = restored["nested"]
    assert nested["a"] is nested["b"][0] is nested["b"][1]["c"]


def test_cycles_survive_a_save() -> None:
    runner = Runner("aa = [ 1 ]\nappend( array=aa, value=aa )\npause( msg='x' )\nbb = aa[1]")
    with pytest.raises(Pause):
        runner.run()
    runner = _roundtrip(runner)
    _finish(runner)
    aa = runner.variables["aa"]
    assert aa[1] is aa
    assert runner.variables["bb"][1][1] is runner.variables["bb"]


def test_saved_state_is_small_and_plain() -> None:
    runner = Runner("aa = { name='web01', ports=[ 22, 80 ] }\npause( msg='x' )")
    with pytest.raises(Pause):
        runner.run()
    text = runner.dumps()
    assert "__ref__" not in text
    assert len(text) < 600


def test_runtime_signal_without_line() -> None:
    error: RuntimeSignal = ExecutionError("plain")
    assert str(error) == "plain"


@pytest.mark.parametrize(
    "source",
    [
        "aa = ( 2 ^ 99999999 )",
        "aa = ( 2 ^ 3000000 )\nbb = ( aa * aa )",
        "aa = 'xxxxxxxx'\nwhile true do aa = ( aa . aa )",
    ],
)
def test_runaway_operations_are_script_errors(source: str) -> None:
    runner = Runner(source)
    with pytest.raises(ScriptError, match="too"):
        _finish(runner)


def test_next_wake() -> None:
    clock = Clock()
    runner = Runner("begin( max_time=1:00 )\n  delay( seconds=10 )\nend", clock=clock)
    assert runner.next_wake() is None
    assert runner.run().state == "waiting"
    assert runner.next_wake() == clock.now + 10
    clock.now += 10
    runner.run()
    assert runner.done
    assert runner.next_wake() is None


class _Inventory(Module):
    name = "inventory"

    def values(self) -> dict[str, Value]:
        return {"hosts": Value(lambda: ["web01"])}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = [ 1, 2, 3 ]\ny = x[5]", 'Not Defined "x[5]: index 5 out of range (length 3)"'),
        ("x = 'abc'\ny = x[-4]", 'Not Defined "x[-4]: index -4 out of range (length 3)"'),
        (
            "m = { aa=1, bb=2 }\ny = m['zz']",
            "Not Defined \"m['zz']: no key 'zz' (keys: 'aa', 'bb')\"",
        ),
        ("m = {}\ny = m[1]", 'Not Defined "m[1]: no key 1 (keys: none)"'),
        (
            "y = inventory.hosts[1]",
            'Not Defined "inventory.hosts[1]: index 1 out of range (length 1)"',
        ),
    ],
)
def test_a_missing_item_names_the_variable_and_the_index(source: str, message: str) -> None:
    runner = Runner(source, [_Inventory()])
    with pytest.raises(NotDefinedError) as caught:
        runner.run()
    assert caught.value.message == message
    assert caught.value.line == source.count("\n") + 1
    assert runner.aborted  # the reference's class and outcome: NotDefined, job aborted
    # exists() still answers false for it
    probe = source.replace("y = ", "y = exists( ", 1).rstrip() + " )"
    assert _run_to_end(probe).variables["y"] is False


def test_a_map_shows_at_most_ten_keys() -> None:
    keys = ", ".join(f"k{i}={i}" for i in range(12))
    with pytest.raises(NotDefinedError) as caught:
        Runner(f"m = {{ {keys} }}\ny = m['zz']").run()
    assert caught.value.message.endswith("'k8', 'k9', ...)\"")


def test_indexing_what_cannot_be_indexed_is_a_script_error() -> None:
    with pytest.raises(ScriptError) as caught:
        Runner("x = 5\ny = x[0]").run()
    assert caught.value.message == "x[0]: a number cannot be indexed with 0"
    assert caught.value.kind == "ScriptError"


def _run_to_end(source: str) -> Runner:
    runner = Runner(source, [_Inventory()])
    _finish(runner)
    return runner
