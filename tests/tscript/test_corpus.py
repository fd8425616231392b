"""The ``tscript run --json`` contract on a corpus of scripts with known results.

Every script runs plainly and with ``--budget 1 --roundtrip`` (save and restore before every
single step); both must give exactly the expected document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tscript.cli import main, run_script

# (name, script, options, expected outcome, expected variables, expected error, events)
Case = tuple[str, str, tuple[str, ...], str, dict[str, Any], Any, list[Any]]

CASES: list[Case] = [
    ("empty", "", (), "done", {}, None, []),
    ("comment only", "# nothing\n\n   # more\n", (), "done", {}, None, []),
    (
        "literals",
        "aa = 1\nbb = -2.5\ncc = 'x'\ndd = true\nee = none\nff = 007",
        (),
        "done",
        {"aa": 1, "bb": -2.5, "cc": "x", "dd": True, "ee": None, "ff": 7},
        None,
        [],
    ),
    (
        "time literals",
        "aa = 1:30\nbb = 1:00:00\ncc = 1:00:00:05\ndd = 99:99",
        (),
        "done",
        {
            "aa": {"__timedelta__": 90},
            "bb": {"__timedelta__": 3600},
            "cc": {"__timedelta__": 86405},
            "dd": {"__timedelta__": 6039},
        },
        None,
        [],
    ),
    (
        "any case keywords",
        "aa = TRUE\nbb = False\ncc = NONE\ndd = NOT aa",
        (),
        "done",
        {"aa": True, "bb": False, "cc": None, "dd": False},
        None,
        [],
    ),
    ("one letter names", "x = 1\ny = ( x + 1 )", (), "done", {"x": 1, "y": 2}, None, []),
    (
        "keyword prefixed names",
        "trueish = 1\nnothing = 2\npassed = ( trueish + nothing )",
        (),
        "done",
        {"trueish": 1, "nothing": 2, "passed": 3},
        None,
        [],
    ),
    (
        "arithmetic",
        "aa = ( 6 / 3 )\nbb = ( 7 % -3 )\ncc = ( 2 ^ 10 )\ndd = ( 5 - -3 )\n"
        "ee = ( 1 -2 )\nff = ( 6 & 3 )\ngg = ( 6 | 3 )\nhh = ( true & false )\nii = ( 2 * 2.5 )",
        (),
        "done",
        {
            "aa": 2.0,
            "bb": -2,
            "cc": 1024,
            "dd": 8,
            "ee": -1,
            "ff": 2,
            "gg": 7,
            "hh": False,
            "ii": 5.0,
        },
        None,
        [],
    ),
    (
        "big ints",
        "aa = ( 2 ^ 100 )\nbb = ( aa * aa )",
        (),
        "done",
        {"aa": 2**100, "bb": 2**200},
        None,
        [],
    ),
    (
        "complex power",
        "aa = ( -8 ^ 0.5 )",
        (),
        "done",
        {"aa": {"__complex__": [((-8) ** 0.5).real, ((-8) ** 0.5).imag]}},
        None,
        [],
    ),
    (
        "inf literal",
        "aa = " + "9" * 400 + ".0\nbb = ( aa - aa )\ncc = ( 0 - aa )",
        (),
        "done",
        {"aa": {"__float__": "inf"}, "bb": {"__float__": "nan"}, "cc": {"__float__": "-inf"}},
        None,
        [],
    ),
    (
        "concatenation",
        "aa = ( 'a' . 1 )\nbb = ( true . none )\ncc = ( [ 1, 'x' ] . 1:30 )\n"
        "dd = ( 1.5 . { kk='v' } )",
        (),
        "done",
        {"aa": "a1", "bb": "truenone", "cc": "[ 1, 'x' ]1:30", "dd": "1.5{ kk='v' }"},
        None,
        [],
    ),
    (
        "comparisons",
        "aa = ( 1 == 1.0 )\nbb = ( [ 1, 2 ] == [ 1, 2 ] )\ncc = ( 'a' < 'b' )\n"
        "dd = ( 1:00 > 0:30 )\nee = ( true == 1 )\nff = ( 1 != 2 )\ngg = ( 2 <= 2 )",
        (),
        "done",
        {"aa": True, "bb": True, "cc": True, "dd": True, "ee": True, "ff": True, "gg": True},
        None,
        [],
    ),
    (
        "and or return operands",
        "aa = ( 0 or 'x' )\nbb = ( 5 and [] )\ncc = ( none and zz )\ndd = ( 1 or zz )",
        (),
        "done",
        {"aa": "x", "bb": [], "cc": None, "dd": 1},
        None,
        [],
    ),
    (
        "not binds to the next value",
        "aa = ( not 1 == false )\nbb = not ( 1 == 2 )",
        (),
        "done",
        {"aa": True, "bb": True},
        None,
        [],
    ),
    (
        "truthiness",
        "aa = []\nif aa then bb = 1 else bb = 2\nif 0:00 then cc = 1 else cc = 2\n"
        "if '0' then dd = 1 else dd = 2\nif -0.0 then ee = 1 else ee = 2",
        (),
        "done",
        {"aa": [], "bb": 2, "cc": 2, "dd": 1, "ee": 2},
        None,
        [],
    ),
    (
        "if elif else",
        "aa = 2\nif ( aa == 1 ) then\n  bb = 'one'\nelif ( aa == 2 ) then\n"
        "  bb = 'two'\nelse\n  bb = 'many'\n",
        (),
        "done",
        {"aa": 2, "bb": "two"},
        None,
        [],
    ),
    (
        "dangling else",
        "if true then if false then aa = 1 else aa = 2",
        (),
        "done",
        {"aa": 2},
        None,
        [],
    ),
    (
        "while",
        "cnt = 0\ntotal = 0\nwhile ( cnt < 5 ) do begin()\n  cnt = ( cnt + 1 )\n"
        "  total = ( total + cnt )\nend",
        (),
        "done",
        {"cnt": 5, "total": 15},
        None,
        [],
    ),
    (
        "break and continue",
        "cnt = 0\nodd = []\nwhile true do begin()\n  cnt = ( cnt + 1 )\n"
        "  if ( cnt > 7 ) then break\n  if ( ( cnt % 2 ) == 0 ) then continue\n"
        "  append( array=odd, value=cnt )\nend\nafter = 1",
        (),
        "done",
        {"cnt": 8, "odd": [1, 3, 5, 7], "after": 1},
        None,
        [],
    ),
    (
        "nested loops break inner",
        "ii = 0\nhits = 0\nwhile ( ii < 3 ) do begin()\n"
        "  ii = ( ii + 1 )\n  jj = 0\n  while true do begin()\n    jj = ( jj + 1 )\n"
        "    if ( jj == 2 ) then break\n    hits = ( hits + 1 )\n  end\nend",
        (),
        "done",
        {"ii": 3, "jj": 2, "hits": 3},
        None,
        [],
    ),
    ("pass", "pass\naa = 1", (), "done", {"aa": 1}, None, []),
    (
        "goto and jump points",
        "aa = 0\n:again\naa = ( aa + 1 )\nif ( aa < 3 ) then goto again\n"
        "goto done\nbb = 'skipped'\n:done\ncc = aa",
        (),
        "done",
        {"aa": 3, "cc": 3},
        None,
        [],
    ),
    (
        "goto out of a block",
        "begin( description='x' )\n  aa = 1\n  goto out\n  bb = 2\nend\n:out\ncc = 3",
        (),
        "done",
        {"aa": 1, "cc": 3},
        None,
        [],
    ),
    (
        "goto unknown",
        "aa = 1\ngoto nowhere",
        (),
        "aborted",
        {"aa": 1},
        {"kind": "NotDefined", "line": 2},
        [],
    ),
    (
        "blocks with options",
        "begin( description='setup', expected_time=1:00, max_time=10:00 )\n"
        "  aa = 1\nend\nbegin()\nend\nbegin()end",
        (),
        "done",
        {"aa": 1},
        None,
        [],
    ),
    (
        "deep copy on assignment",
        "aa = [ 1, [ 2 ] ]\nbb = aa\nbb[0] = 9\ncc = aa[1]\nappend( array=cc, value=3 )",
        (),
        "done",
        {"aa": [1, [2]], "bb": [9, [2]], "cc": [2, 3]},
        None,
        [],
    ),
    (
        "live reads in builtins",
        "aa = [ 1 ]\nappend( array=aa, value=2 )\nbb = pop( array=aa )\n"
        "cc = { kk=[ 1 ] }\nappend( array=cc['kk'], value=5 )",
        (),
        "done",
        {"aa": [1], "bb": 2, "cc": {"kk": [1, 5]}},
        None,
        [],
    ),
    (
        "indexing",
        "aa = [ 1, 2, 3 ]\nbb = aa[-1]\ncc = 'hello'\ndd = cc[1]\nee = { kk=4 }\n"
        "ff = ee['kk']\naa[0] = 7\nee['new'] = 1\nee[1] = 'one'",
        (),
        "done",
        {
            "aa": [7, 2, 3],
            "bb": 3,
            "cc": "hello",
            "dd": "e",
            "ee": {"__map__": [["kk", 4], ["new", 1], [1, "one"]]},
            "ff": 4,
        },
        None,
        [],
    ),
    (
        "exists",
        "aa = [ 1 ]\nbb = exists( aa )\ncc = exists( zz )\ndd = exists( aa[0] )\n"
        "ee = exists( aa[5] )\nff = exists( aa[ zz ] )\ngg = none\nhh = exists( gg )\n"
        "ii = exists( mod.val )",
        (),
        "done",
        {
            "aa": [1],
            "bb": True,
            "cc": False,
            "dd": True,
            "ee": False,
            "ff": False,
            "gg": None,
            "hh": True,
            "ii": False,
        },
        None,
        [],
    ),
    (
        "builtins",
        "aa = [ 1, 2, 3, 4 ]\nbb = len( array=aa )\ncc = slice( array=aa, start=1, "
        "end=none )\ndd = index( array=aa, value=3 )\nee = pop( array=aa, index=0 )\n"
        "ff = slice( array='hello', start=1, end=3 )\ngg = len( array={ kk=1 } )",
        (),
        "done",
        {"aa": [2, 3, 4], "bb": 4, "cc": [2, 3, 4], "dd": 2, "ee": 1, "ff": "el", "gg": 1},
        None,
        [],
    ),
    (
        "map and parameter order",
        "aa = []\nbb = { xx=pop( array=[ 1, 2 ] ), yy=2 }\ncc = { zz=1, aa=2 }\ndd = ( cc . '' )",
        (),
        "done",
        {"aa": [], "bb": {"xx": 2, "yy": 2}, "cc": {"zz": 1, "aa": 2}, "dd": "{ zz=1, aa=2 }"},
        None,
        [],
    ),
    (
        "multi line brackets",
        "aa = [ 1,\n  2,\n  3 ]\nbb = len(\n  array=aa\n)\ncc = { kk=1,\n  jj=2 }",
        (),
        "done",
        {"aa": [1, 2, 3], "bb": 3, "cc": {"kk": 1, "jj": 2}},
        None,
        [],
    ),
    (
        "spaces between tokens",
        "aa = len (array=[1])\nbb = exists ( aa )\nbegin ()\ncc = 1\nend",
        (),
        "done",
        {"aa": 1, "bb": True, "cc": 1},
        None,
        [],
    ),
    (
        "crlf and cr line endings",
        "aa = 1\r\nbb = 2\rcc = zz",
        (),
        "aborted",
        {"aa": 1, "bb": 2},
        {"kind": "NotDefined", "line": 3},
        [],
    ),
    (
        "not defined",
        "aa = 1\nbb = ( aa + cc )",
        (),
        "aborted",
        {"aa": 1},
        {"kind": "NotDefined", "line": 2},
        [],
    ),
    (
        "missing key",
        "aa = { kk=1 }\nbb = aa['zz']",
        (),
        "aborted",
        {"aa": {"kk": 1}},
        {"kind": "NotDefined", "line": 2},
        [],
    ),
    (
        "index out of range",
        "aa = [ 1 ]\nbb = aa[3]",
        (),
        "aborted",
        {"aa": [1]},
        {"kind": "NotDefined", "line": 2},
        [],
    ),
    (
        "unknown builtin",
        "aa = nope( xx=1 )",
        (),
        "aborted",
        {},
        {"kind": "NotDefined", "line": 1},
        [],
    ),
    (
        "unknown module",
        "aa = foundation.power_on()",
        (),
        "aborted",
        {},
        {"kind": "NotDefined", "line": 1},
        [],
    ),
    (
        "non numeric operand",
        "aa = ( 'a' + 1 )",
        (),
        "aborted",
        {},
        {"kind": "ParameterError", "line": 1},
        [],
    ),
    (
        "timedelta is not numeric",
        "aa = ( 1:30 + 0:30 )",
        (),
        "aborted",
        {},
        {"kind": "ParameterError", "line": 1},
        [],
    ),
    (
        "division by zero",
        "aa = 1\n\nbb = ( aa / 0 )",
        (),
        "aborted",
        {"aa": 1},
        {"kind": "ScriptError", "line": 3},
        [],
    ),
    ("incomparable", "aa = ( 'a' < 1 )", (), "aborted", {}, {"kind": "ScriptError", "line": 1}, []),
    (
        "float bitwise",
        "aa = ( 1.5 & 1 )",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "wrong index type",
        "aa = [ 1 ]\nbb = aa['x']",
        (),
        "aborted",
        {"aa": [1]},
        {"kind": "ScriptError", "line": 2},
        [],
    ),
    (
        "item assignment out of range",
        "aa = [ 1 ]\naa[5] = 2",
        (),
        "aborted",
        {"aa": [1]},
        {"kind": "ScriptError", "line": 2},
        [],
    ),
    (
        "item assignment to undefined",
        "zz[0] = 2",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "missing builtin parameter",
        "aa = len()",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "unknown builtin parameter",
        "aa = len( array=[], extra=1 )",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "builtin misuse",
        "aa = len( array=5 )",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "index missing value",
        "aa = index( array=[ 1 ], value=2 )",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "fatal error",
        "aa = 1\nfatal_error( msg='broken' )\nbb = 2",
        ("--resume",),
        "aborted",
        {"aa": 1},
        {"kind": "ScriptError", "message": "broken", "line": 2},
        [],
    ),
    (
        "pause",
        "aa = 1\npause( msg='check the cables' )\nbb = 2",
        (),
        "paused",
        {"aa": 1},
        {"kind": "Pause", "message": "check the cables", "line": 2},
        [],
    ),
    (
        "pause resumed",
        "aa = 1\nbb = pause( msg=( 'step ' . aa ) )\ncc = 2",
        ("--resume",),
        "done",
        {"aa": 1, "bb": None, "cc": 2},
        None,
        [["pause", "step 1", 2]],
    ),
    (
        "error",
        "error( msg='failed' )\nbb = 2",
        (),
        "error",
        {},
        {"kind": "ExecutionError", "message": "failed", "line": 1},
        [],
    ),
    (
        "error reset",
        "cnt = 0\nwhile ( cnt < 2 ) do begin()\n  cnt = ( cnt + 1 )\n  error( msg=cnt )\nend",
        ("--resume",),
        "done",
        {"cnt": 2},
        None,
        [["error", "1", 4], ["error", "2", 4]],
    ),
    (
        "message",
        "message( msg='working' )\naa = message( msg=5 )",
        (),
        "done",
        {"aa": None},
        None,
        [["message", "working", 1], ["message", "5", 2]],
    ),
    (
        "pause inside expression",
        "aa = [ 1, pause( msg='p' ), 3 ]",
        ("--resume",),
        "done",
        {"aa": [1, None, 3]},
        None,
        [["pause", "p", 1]],
    ),
    (
        "delay fast",
        "delay( seconds=5 )\ndelay( minutes=1, hours=1 )\naa = 1",
        ("--fast",),
        "done",
        {"aa": 1},
        None,
        [["delay", 5, 1], ["delay", 3660, 2]],
    ),
    (
        "zero delay",
        "delay()",
        ("--fast",),
        "aborted",
        {},
        {"kind": "ParameterError", "line": 1},
        [],
    ),
    (
        "bad delay",
        "delay( seconds='soon' )",
        ("--fast",),
        "aborted",
        {},
        {"kind": "ParameterError", "line": 1},
        [],
    ),
    (
        "step ceiling",
        "cnt = 0\nwhile true do cnt = ( cnt + 1 )",
        ("--resume",),
        "error",
        {"cnt": 199998},
        {"kind": "ExecutionError", "line": 2},
        [],
    ),
    (
        "step ceiling small",
        "cnt = 0\nwhile true do cnt = ( cnt + 1 )",
        ("--max-steps", "1000"),
        "error",
        {"cnt": 198},
        {"kind": "ExecutionError", "line": 2},
        [],
    ),
    (
        "max_time expired before a call",
        "begin( max_time=0:00 )\n  pause( msg='x' )\nend\naa = 1",
        ("--resume",),
        "done",
        {"aa": 1},
        None,
        [["pause", "Max Time Elapsed", 2], ["pause", "x", 2]],
    ),
    (
        "max_time expired in a loop",
        "begin( max_time=0:00 )\n  cnt = 0\n  while ( cnt < 3 ) do cnt = ( cnt + 1 )\nend",
        (),
        "paused",
        {"cnt": 1},
        {"kind": "Pause", "message": "Max Time Elapsed", "line": 3},
        [],
    ),
    (
        "max_time expired in a loop resumed",
        "begin( max_time=0:00 )\n  cnt = 0\n  while ( cnt < 3 ) do cnt = ( cnt + 1 )\nend",
        ("--resume",),
        "done",
        {"cnt": 3},
        None,
        [["pause", "Max Time Elapsed", 3]],
    ),
    (
        "pause inside exists",
        "aa = { kk=1 }\nbb = exists( aa[ pause( msg='p' ) ] )\n"
        "cc = [ message( msg='m' ), exists( aa[ 'kk' ] ), exists( aa[ nope( xx=1 ) ] ) ]",
        ("--resume",),
        "done",
        {"aa": {"kk": 1}, "bb": False, "cc": [None, True, False]},
        None,
        [["pause", "p", 2], ["message", "m", 3]],
    ),
    (
        "and or short circuit skip calls",
        "aa = [ 1 ]\nbb = ( false and pop( array=aa ) )\n"
        "cc = ( true or pop( array=aa ) )\ndd = ( true and pop( array=aa ) )",
        (),
        "done",
        {"aa": [], "bb": False, "cc": True, "dd": 1},
        None,
        [],
    ),
    (
        "max_time not a time",
        "begin( max_time=5 )\naa = 1\nend",
        (),
        "aborted",
        {},
        {"kind": "ScriptError", "line": 1},
        [],
    ),
    (
        "aliasing survives",
        "aa = [ 1 ]\nbb = { ll=aa }\ncc = [ aa, aa ]\n"
        "append( array=aa, value=pause( msg='wait' ) )\ndd = aa",
        ("--resume",),
        "done",
        {"aa": [1, None], "bb": {"ll": [1]}, "cc": [[1], [1]], "dd": [1, None]},
        None,
        [["pause", "wait", 4]],
    ),
    (
        "self reference",
        "aa = [ 1 ]\nappend( array=aa, value=aa )\nbb = len( array=aa )",
        (),
        "done",
        {"aa": [1, None], "bb": 2},
        None,
        [],
    ),
    ("module assignment", "mod.val = 1", (), "aborted", {}, {"kind": "NotDefined", "line": 1}, []),
    (
        "item assignment into module value",
        "mod.val[0] = 1",
        (),
        "aborted",
        {},
        {"kind": "ParameterError", "line": 1},
        [],
    ),
    (
        "statement line in bodies",
        "aa = 1\nif true then\n  bb = ( aa / 0 )\n",
        (),
        "aborted",
        {"aa": 1},
        {"kind": "ScriptError", "line": 3},
        [],
    ),
    (
        "condition line",
        "cnt = 0\nwhile ( cnt < zz ) do\n  cnt = 1",
        (),
        "aborted",
        {"cnt": 0},
        {"kind": "NotDefined", "line": 2},
        [],
    ),
    (
        "strings keep everything",
        "aa = 'a\\nb # not a comment'\nbb = \"it's\"\ncc = 'line\ntwo'\ndd = zz",
        (),
        "aborted",
        {"aa": "a\\nb # not a comment", "bb": "it's", "cc": "line\ntwo"},
        {"kind": "NotDefined", "line": 5},
        [],
    ),
]

IDS = [case[0] for case in CASES]


def _check(document: dict[str, Any], case: Case) -> None:
    _, _, _, outcome, variables, error, events = case
    assert document["outcome"] == outcome
    assert document["variables"] == variables
    assert document["events"] == events
    if error is None:
        assert document["error"] is None
    else:
        assert document["error"] is not None
        for key, value in error.items():
            assert document["error"][key] == value, key
        assert set(document["error"]) == {"kind", "message", "line"}


def _options(options: tuple[str, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {"resume": "--resume" in options, "fast": "--fast" in options}
    if "--max-steps" in options:
        result["max_steps"] = int(options[options.index("--max-steps") + 1])
    return result


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_plain(case: Case) -> None:
    _check(run_script(case[1], **_options(case[2])), case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_budget_one_roundtrip(case: Case) -> None:
    if "step ceiling" in case[0] and "--max-steps" not in case[2]:
        pytest.skip("a million single-step save/restores take too long; the small one runs")
    _check(run_script(case[1], budget=1, roundtrip=True, **_options(case[2])), case)


@pytest.mark.parametrize("budget", [2, 3, 7, 50])
def test_other_budgets_change_nothing(budget: int) -> None:
    for case in CASES:
        if "step ceiling" in case[0] and "--max-steps" not in case[2]:
            continue
        _check(run_script(case[1], budget=budget, roundtrip=True, **_options(case[2])), case)


def _cli(tmp_path: Path, source: str, *options: str) -> tuple[int, Any]:
    path = tmp_path / "script.ts"
    path.write_bytes(source.encode())
    result = CliRunner().invoke(main, ["run", str(path), "--json", *options])
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize(
    ("outcome", "source", "code"),
    [
        ("done", "aa = 1", 0),
        ("paused", "pause( msg='x' )", 1),
        ("error", "error( msg='x' )", 1),
        ("aborted", "fatal_error( msg='x' )", 1),
    ],
)
def test_cli_exit_codes(tmp_path: Path, outcome: str, source: str, code: int) -> None:
    exit_code, document = _cli(tmp_path, source)
    assert exit_code == code
    assert document["outcome"] == outcome


def test_cli_roundtrip_flag(tmp_path: Path) -> None:
    source = "aa = [ 1 ]\nappend( array=aa, value=pause( msg='p' ) )\nbb = 1:30"
    plain = _cli(tmp_path, source, "--resume")
    stepped = _cli(tmp_path, source, "--resume", "--budget", "1", "--roundtrip")
    assert plain == stepped
    assert plain[1]["variables"] == {"aa": [1, None], "bb": {"__timedelta__": 90}}


def test_cli_parse_error(tmp_path: Path) -> None:
    exit_code, document = _cli(tmp_path, "aa = 1\nbb = 1 + 2\n")
    assert exit_code == 2
    assert document["outcome"] == "parse_error"
    assert document["variables"] == {}
    assert document["events"] == []
    error = document["error"]
    assert (error["kind"], error["line"], error["column"]) == ("ParseError", 2, 8)
    assert "( a + b )" in error["message"]


def test_cli_budget_zero_is_one(tmp_path: Path) -> None:
    assert _cli(tmp_path, "aa = 1", "--budget", "0") == (0, _cli(tmp_path, "aa = 1")[1])


def test_cli_plain_output(tmp_path: Path) -> None:
    path = tmp_path / "script.ts"
    path.write_text("aa = 1\nmessage( msg='hi' )\nbb = ( aa / 0 )")
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 1
    assert "message (line 2): hi" in result.output
    assert "outcome: aborted" in result.output
    assert "ScriptError on line 3" in result.output
    assert "aa = 1" in result.output


def test_cli_check(tmp_path: Path) -> None:
    good = tmp_path / "good.ts"
    good.write_text("aa = 1\n")
    bad = tmp_path / "bad.ts"
    bad.write_text("aa = 1\nif aa = 5 then bb = 1\n")
    worse = tmp_path / "worse.ts"
    worse.write_text("x = ( 1 + 2 + 3 )\n")
    result = CliRunner().invoke(main, ["check", str(good), str(bad), str(worse)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{bad}:2:7: ")
    assert lines[1] == "if aa = 5 then bb = 1"
    assert lines[2] == "      ^"
    assert lines[3].startswith(f"{worse}:1:13: ")
    assert "one operator per pair of parentheses" in lines[3]
    assert CliRunner().invoke(main, ["check", str(good)]).exit_code == 0


def test_cli_check_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nope.ts")])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_cli_run_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ts"
    path.write_bytes(b"aa = '\xe9'\n")
    result = CliRunner().invoke(main, ["run", str(path), "--json"])
    assert result.exit_code == 2
    document = json.loads(result.output)
    assert document["outcome"] == "parse_error"
    assert "cannot read" in document["error"]["message"]
    result = CliRunner().invoke(main, ["run", str(tmp_path / "missing.ts")])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_cli_check_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{tmp_path}:0:0: cannot read")
