"""Fuzzing: the parser only ever raises ParseError, and its lean loop gives what lark's own
loop gives; the error-recovering checker never fails, finds an error exactly when the parser
does (and on the parser's line), and builds the same tree when there is none; generated
programs behave the same when saved and restored before every step, and only ever raise the
TScript error classes."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tscript import ParseError, Runner, RuntimeSignal, StepLimitExceeded, check, parse
from tscript.cli import run_script
from tscript.parser import parse_all, parse_with_lark

TOKENS = [
    *"()[]{}=,:.+-*/%^&|<>!#'\" \t\n\r0129aAzZ_",
    "if ",
    " then ",
    "else ",
    "elif ",
    "while ",
    " do ",
    "begin(",
    "end",
    "goto ",
    "true",
    "None",
    "not ",
    " and ",
    " or ",
    "exists(",
    "break",
    "continue",
    "pass",
    "1:30",
    "aa",
    "mod.val",
    "len(array=",
    "==",
    "\r\n",
]

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses_or_parse_error(source: str) -> None:
    """``parse`` gives a script or a ParseError, and the same as lark's own parser loop."""
    failure: ParseError | None = None
    try:
        script = parse(source)
    except ParseError as error:
        failure = error
    lark_failure: ParseError | None = None
    try:
        lark_script = parse_with_lark(source)
    except ParseError as error:
        lark_failure = error
    if failure is None:
        assert lark_failure is None, "the lean loop accepted what lark rejects"
        assert script.source == source
        assert repr(script.root) == repr(lark_script.root)
        return
    assert lark_failure is not None, "the lean loop rejected what lark accepts"
    assert failure.render("a.ts") == lark_failure.render("a.ts")
    assert failure.line >= 1
    assert failure.column >= 0
    assert failure.message
    failure.render("fuzz.ts")


def _checks_like_parse(source: str) -> list[ParseError]:
    """The checker on ``source``: problems or none, never an exception of its own."""
    problems = check(source, [])
    for problem in problems:
        assert isinstance(problem, ParseError)
        assert problem.line >= 1
        assert problem.column >= 1
        assert problem.message
        problem.render("fuzz.ts")
    assert problems == sorted(problems, key=lambda p: (p.line, p.column))
    script, errors = parse_all(source)
    assert len({error.line for error in errors}) == len(errors)  # one per line
    failure: ParseError | None = None
    try:
        parsed = parse(source)
    except ParseError as error:
        failure = error
    if failure is not None:
        assert errors, "parse() failed where the checker found nothing"
        assert failure.line in {error.line for error in errors}
    else:
        assert errors == [], "the checker found an error where parse() found none"
        assert script is not None
        assert repr(script.root) == repr(parsed.root)
    return problems


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_checker_token_soup(source: str) -> None:
    _checks_like_parse(source)


@FUZZ
@given(st.text(max_size=60))
def test_checker_any_text(source: str) -> None:
    _checks_like_parse(source)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_parser_token_soup(source: str) -> None:
    _parses_or_parse_error(source)


@FUZZ
@given(st.text(max_size=60))
def test_parser_any_text(source: str) -> None:
    _parses_or_parse_error(source)


VALID = (
    "begin( description='x' )\n  aa = [ 1, { kk=( 2 + 3 ) } ]\n  if exists( aa[0] ) then\n"
    "    bb = len( array=aa )\n  elif not aa then pass\n  else\n    pause( msg='p' )\n"
    "  while ( bb < 3 ) do bb = ( bb + 1 )\nend\n:top\ngoto top\n"
)


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(0, 3), st.sampled_from(TOKENS))
def test_parser_mutated_script(position: int, deleted: int, inserted: str) -> None:
    _parses_or_parse_error(VALID[:position] + inserted + VALID[position + deleted :])


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 3), st.sampled_from(TOKENS)),
        max_size=5,
    )
)
def test_checker_script_with_several_mutations(mutations: list[tuple[int, int, str]]) -> None:
    source = VALID
    for position, deleted, inserted in mutations:
        position = min(position, len(source))
        source = source[:position] + inserted + source[position + deleted :]
    _checks_like_parse(source)


# generated programs -----------------------------------------------------------------------

NAMES = st.sampled_from(["aa", "bb", "cc"])
CONSTANTS = st.one_of(
    st.integers(-4, 4).map(str),
    st.sampled_from(["1.5", "-0.0", "'x'", '"yy"', "true", "false", "none", "1:30", "0:00"]),
)
OPERATORS = st.sampled_from(
    [".", "^", "*", "/", "%", "+", "-", "&", "|", "and", "or", "==", "!=", "<", ">=", "<="]
)


def _expressions(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(NAMES, children)
    return st.one_of(
        st.tuples(children, OPERATORS, children).map(lambda t: f"( {t[0]} {t[1]} {t[2]} )"),
        children.map(lambda c: f"not {c}"),
        st.lists(children, max_size=3).map(lambda xs: "[ " + ", ".join(xs) + " ]"),
        st.lists(children, max_size=2).map(
            lambda xs: "{ " + ", ".join(f"k{i}={x}" for i, x in enumerate(xs)) + " }"
        ),
        children.map(lambda c: f"len( array={c} )"),
        pair.map(lambda t: f"{t[0]}[ {t[1]} ]"),
        NAMES.map(lambda n: f"exists( {n} )"),
        pair.map(lambda t: f"exists( {t[0]}[ {t[1]} ] )"),
        pair.map(lambda t: f"append( array={t[0]}, value={t[1]} )"),
        NAMES.map(lambda n: f"pop( array={n} )"),
        children.map(lambda c: f"pause( msg={c} )"),
        children.map(lambda c: f"message( msg={c} )"),
        children.map(lambda c: f"error( msg={c} )"),
    )


EXPRESSIONS = st.recursive(st.one_of(CONSTANTS, NAMES), _expressions, max_leaves=5)

SIMPLE = st.one_of(
    st.tuples(NAMES, EXPRESSIONS).map(lambda t: [f"{t[0]} = {t[1]}"]),
    st.tuples(NAMES, EXPRESSIONS, EXPRESSIONS).map(lambda t: [f"{t[0]}[ {t[1]} ] = {t[2]}"]),
    EXPRESSIONS.map(lambda e: [e]),
    st.just(["pass"]),
)


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]


def _statements(children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    body = st.lists(children, min_size=1, max_size=3).map(lambda xs: [y for x in xs for y in x])
    loop_body = st.tuples(body, st.sampled_from(["", "break", "continue"]), EXPRESSIONS)

    def loop(parts: tuple[int, tuple[list[str], str, str]]) -> list[str]:
        counter, (lines, exit_word, condition) = parts
        name = f"lp{counter}"
        inner = [f"{name} = ( {name} + 1 )", *lines]
        if exit_word:
            inner.append(f"if {condition} then {exit_word}")
        return [f"{name} = 0", f"while ( {name} < 3 ) do begin()", *_indent(inner), "end"]

    return st.one_of(
        body.map(lambda lines: ["begin( description='b' )", *_indent(lines), "end"]),
        st.tuples(EXPRESSIONS, body, body).map(
            lambda t: [
                f"if {t[0]} then begin()",
                *_indent(t[1]),
                "end",
                "else begin()",
                *_indent(t[2]),
                "end",
            ]
        ),
        st.tuples(st.integers(0, 3), loop_body).map(loop),
    )


STATEMENTS = st.recursive(SIMPLE, _statements, max_leaves=6)
PREAMBLE = "aa = [ 1, 2, 3 ]\nbb = { k0=1, k1=[ 4 ] }\ncc = 2\n"
PROGRAMS = st.lists(STATEMENTS, max_size=5).map(
    lambda xs: PREAMBLE + "\n".join(line for statement in xs for line in statement)
)


KINDS = ("Pause", "ExecutionError", "ScriptError", "ParameterError", "NotDefined")


def _run(source: str, **options: Any) -> dict[str, Any]:
    return run_script(source, resume=True, fast=True, max_steps=1500, **options)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_generated_programs_resume_at_every_step(source: str) -> None:
    plain = _run(source)
    assert plain["outcome"] in ("done", "error", "aborted")
    assert _run(source, budget=1, roundtrip=True) == plain
    assert _run(source, budget=5, roundtrip=True) == plain


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_generated_programs_raise_only_tscript_errors(source: str) -> None:
    runner = Runner(source, max_steps=1500)
    for _ in range(200):
        failure: RuntimeSignal | None = None
        try:
            if runner.run(50).state == "done":
                break
        except RuntimeSignal as error:
            failure = error
        if failure is not None:
            assert failure.line is not None
            assert failure.kind in KINDS
            if runner.aborted or isinstance(failure, StepLimitExceeded):
                break


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_generated_programs_check_clean(source: str) -> None:
    assert _checks_like_parse(source) == []
