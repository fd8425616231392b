"""How values are written as text: ``.``, messages and error texts use TScript's own syntax
(a deliberate difference from the original, which shows Python's ``str()``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from tscript import Runner, RuntimeSignal, to_literal, to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("web01", "web01"),
        (["web01", "web02"], "[ 'web01', 'web02' ]"),
        ([], "[]"),
        ({}, "{}"),
        (True, "true"),
        (False, "false"),
        (None, "none"),
        ([True, None, 1, 1.5], "[ true, none, 1, 1.5 ]"),
        ({"name": "web01", "ports": [22, 80]}, "{ name='web01', ports=[ 22, 80 ] }"),
        ({"a b": 1, 3: "x", None: 2}, "{ 'a b'=1, 3='x', none=2 }"),
        (["it's"], '[ "it\'s" ]'),
        (timedelta(seconds=90), "1:30"),
        (timedelta(seconds=5), "0:05"),
        (timedelta(hours=2, seconds=5), "2:00:05"),
        (timedelta(days=1, minutes=2), "1:00:02:00"),
        (-timedelta(minutes=2), "-2:00"),
        (timedelta(seconds=1, milliseconds=500), "0:01.5"),
        (math.inf, "inf"),
        (10**30, str(10**30)),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


def test_to_literal_quotes_a_string_and_cuts_cycles() -> None:
    assert to_literal("web01") == "'web01'"
    cycle: list[Any] = [1]
    cycle.append(cycle)
    assert to_text(cycle) == "[ 1, ... ]"
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    assert to_text(deep).count("[") == 100


def _run(source: str) -> Runner:
    runner = Runner(source)
    assert runner.run().state == "done"
    return runner


def test_concatenation_writes_tscript() -> None:
    runner = _run(
        "hosts = [ 'web01', 'web02' ]\n"
        "aa = ( 'keeping ' . hosts )\n"
        "bb = ( ( true . ' ' ) . none )\n"
        "cc = ( { up=true, wait=1:30 } . '' )"
    )
    assert runner.variables["aa"] == "keeping [ 'web01', 'web02' ]"
    assert runner.variables["bb"] == "true none"
    assert runner.variables["cc"] == "{ up=true, wait=1:30 }"


@pytest.mark.parametrize("function", ["pause", "error", "fatal_error", "message"])
def test_messages_write_tscript(function: str) -> None:
    runner = Runner(f"{function}( msg=[ 'a', false ] )")
    try:
        text = runner.run().message
    except RuntimeSignal as error:  # pause, error and fatal_error raise
        text = error.message
    assert text == "[ 'a', false ]"
