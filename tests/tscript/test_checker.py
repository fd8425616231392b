"""``tscript.check``: every parse error the parser recovers from, and calls to functions,
modules and parameters that do not exist, each with its line and column."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tscript import (
    ExternalFunction,
    FunctionFactory,
    Module,
    ModuleSignature,
    ParseError,
    Signature,
    Value,
    check,
    describe,
    parse,
)
from tscript.parser import parse_all


def _where(errors: list[ParseError]) -> list[tuple[int, int]]:
    return [(error.line, error.column) for error in errors]


def test_every_statement_with_an_error_is_reported() -> None:
    source = (
        "aa = 1\n"
        "bb = = 2\n"  # 2:6
        "cc = ( 1 + 2 + 3 )\n"  # 3:14
        "dd = 4\n"
        "ee = $\n"  # 5:6 (the tokenizer's)
        "ff = 'open\n"  # 6:6
        "gg = -1:30\n"  # 7:6
        "hh = 5"
    )
    errors = check(source)
    assert _where(errors) == [(2, 6), (3, 14), (5, 6), (6, 6), (7, 6)]
    assert "an assignment is a statement of its own" in errors[0].message
    assert "one operator per pair of parentheses" in errors[1].message
    assert errors[2].message == "unexpected character '$'"
    assert errors[3].message.startswith("string not closed")
    assert errors[4].message == "a time cannot have a sign"
    assert errors[0].render("x.ts").splitlines() == [
        "x.ts:2:6: " + errors[0].message,
        "bb = = 2",
        "     ^",
    ]


def test_errors_inside_blocks_and_the_block_they_are_in() -> None:
    source = (
        "begin( colour='red' )\n"  # 1:8 not a block option
        "  aa = = 1\n"  # 2:8
        "  f( xx=1, xx=2 )\n"  # 3:12 given twice (and f is no builtin: 3:3)
        "  while ( aa < ) do begin()\n"  # 4:16; the block it opened is checked on
        "    if aa then break\n"  # fine: inside the while
        "    len( arr=aa )\n"  # 6:10 unknown parameter, 6:5 missing array
        "  end\n"
        "  :inner\n"  # 8:3 jump point in a block
        "end\n"
        "break\n"  # 10:1 outside a loop
        "end\n"  # 11:1 a stray end
    )
    errors = check(source)
    assert _where(errors) == [
        (1, 8),
        (2, 8),
        (3, 3),
        (3, 12),
        (4, 16),
        (6, 5),
        (6, 10),
        (8, 3),
        (10, 1),
        (11, 1),
    ]
    messages = [error.message for error in errors]
    assert "is not a block option" in messages[0]
    assert "given twice" in messages[3]
    assert messages[5] == 'len() needs the parameter "array"'
    assert messages[6].startswith('len() has no parameter "arr" (parameters: array)')
    assert "jump points are only allowed" in messages[7]
    assert "only allowed inside a while loop" in messages[8]


def test_a_missing_end_is_reported_once_and_the_block_is_still_checked() -> None:
    errors = check("begin()\n  aa = 1\n  if true then begin()\n    nosuch()\n")
    # reported where the innermost block that is not closed begins, as parse() does
    assert _where(errors) == [(3, 16), (4, 5)]
    assert "a begin( ) block is missing its end" in errors[0].message
    assert errors[1].message.startswith('unknown function "nosuch"')
    with pytest.raises(ParseError) as caught:
        parse("aa = 1\nbegin()\n  begin()\n  end\n")
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_an_unclosed_bracket_does_not_swallow_the_next_lines() -> None:
    errors = check("aa = ( 1 +\nbb = 2\ncc = [ 1,\ndd = 3 3\nee = 1")
    assert [error.line for error in errors] == [2, 4]


def test_one_error_per_line() -> None:
    assert len(check("aa = ) ) ) $ $ ( =")) == 1


def test_a_fine_script_has_no_problems_and_the_same_tree() -> None:
    source = "begin( description='x' )\n  aa = [ 1, { kk=( 2 + 3 ) } ]\n  len( array=aa )\nend"
    assert check(source) == []
    script, errors = parse_all(source)
    assert errors == []
    assert script is not None
    assert repr(script.root) == repr(parse(source).root)


# calls ------------------------------------------------------------------------------------


class _Remote(ExternalFunction):
    def signature(self) -> Signature:
        return Signature(frozenset({"target", "count"}), frozenset({"target"}))


class _Undeclared(ExternalFunction):
    pass


class _Net(Module):
    name = "net"

    def values(self) -> Mapping[str, Value]:
        return {"address": Value(lambda: "10.0.0.1")}

    def functions(self) -> Mapping[str, FunctionFactory]:
        def wait(*, seconds: int, reason: str = "") -> None:
            return None

        def anything(**parameters: Any) -> None:
            return None

        def broken() -> Any:
            raise RuntimeError("needs a database")

        return {
            "ping": _Remote,
            "wait": lambda: wait,
            "anything": lambda: anything,
            "legacy": _Undeclared,
            "rerouted": lambda: ("other", _Remote()),
            "broken": broken,
        }


def test_describe_a_module() -> None:
    net = describe(_Net())
    assert net.name == "net"
    assert net.values == frozenset({"address"})
    assert net.functions is not None
    assert net.functions["ping"] == Signature(frozenset({"target", "count"}), frozenset({"target"}))
    assert net.functions["rerouted"] == net.functions["ping"]
    assert net.functions["wait"] == Signature(
        frozenset({"seconds", "reason"}), frozenset({"seconds"})
    )
    for name in ("anything", "legacy", "broken"):
        assert net.functions[name] == Signature()  # parameters not known: any
    assert describe(_Net(), values=False).values is None


@pytest.mark.parametrize(
    ("source", "column", "words"),
    [
        ("undefined_fn()", 1, 'unknown function "undefined_fn" (builtins: append, delay, error,'),
        ("aa = lenn( array=[] )", 6, 'did you mean "len"?'),
        ("ping( target='x' )", 1, "did you mean net.ping?"),
        ("nosuchmodule.fn()", 1, 'unknown module "nosuchmodule" (modules: net)'),
        ("aa = nosuchmodule.value", 6, 'unknown module "nosuchmodule"'),
        ("net.pong( target='x' )", 1, 'module "net" has no function "pong" (functions: anything,'),
        (
            "aa = net.adress",
            6,
            'module "net" has no value "adress" (values: address); did you mean "address"?',
        ),
        ("aa = net.adress[0]", 6, 'module "net" has no value "adress"'),
        (
            "net.ping( target='x', cnt=2 )",
            23,
            'net.ping() has no parameter "cnt" (parameters: count, target)',
        ),
        ("net.ping( count=2 )", 1, 'net.ping() needs the parameter "target"'),
        ("net.wait()", 1, 'net.wait() needs the parameter "seconds"'),
        ("slice( array=[] )", 1, 'slice() needs the parameters "end", "start"'),
        (
            "delay( secs=1 )",
            8,
            'delay() has no parameter "secs" (parameters: hours, minutes, seconds)',
        ),
    ],
)
def test_calls_that_do_not_fit(source: str, column: int, words: str) -> None:
    errors = check(source, [describe(_Net())])
    assert len(errors) == 1, errors
    assert (errors[0].line, errors[0].column) == (1, column)
    assert words in errors[0].message
    assert errors[0].source_line == source


@pytest.mark.parametrize(
    "source",
    [
        "net.ping( target='x' )",
        "net.anything( what=1, ever=2 )",
        "net.legacy( x=1 )",
        "aa = net.address",
        "net.address = 'x'",  # a value the module has (whether it is settable shows at run time)
        "if exists( net.nothing ) then pass",  # how a script asks
        "if exists( elsewhere.thing ) then pass",
        "delay( minutes=1 )",
        "pop( array=[ 1 ] )",
    ],
)
def test_calls_that_fit(source: str) -> None:
    assert check(source, [describe(_Net())]) == []


def test_without_modules_only_builtins_are_checked() -> None:
    assert check("anything.at_all( x=1 )\naa = some.value") == []
    assert len(check("anything.at_all( x=1 )", [])) == 1
    assert check("any.thing()", [ModuleSignature("any")]) == []
    assert check("any.value", [ModuleSignature("any", {}, None)]) == []


def test_merged_modules_take_what_either_takes() -> None:
    one = ModuleSignature(
        "m", {"f": Signature(frozenset({"a"}), frozenset({"a"}))}, frozenset({"x"})
    )
    other = ModuleSignature(
        "m", {"f": Signature(frozenset({"b"}), frozenset({"b"})), "g": Signature()}, None
    )
    merged = one.merged(other)
    assert merged.functions == {
        "f": Signature(frozenset({"a", "b"}), frozenset()),
        "g": Signature(),
    }
    assert merged.values is None
    assert one.merged(ModuleSignature("m")).functions is None
