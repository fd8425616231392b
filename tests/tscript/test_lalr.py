"""The lean LALR loop (``tscript.lalr``) that ``parse`` uses: it builds the same tree as
lark's own loop for every script of the corpus, the shipped resources, the guide and the
benchmark; it is what parses a valid script (lark is not asked), and for a script that does
not parse lark's error is the one raised, word for word."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bench.tscript_bench import generated_script
from tests.tscript.test_corpus import CASES
from tscript import ParseError, parse
from tscript import parser as tscript_parser
from tscript.lalr import Rejected, Tables
from tscript.lexer import tokenize
from tscript.parser import parse_with_lark

ROOT = Path(__file__).parents[2]


def _resource_scripts() -> list[str]:
    scripts = []
    for path in sorted((ROOT / "contractor" / "resources").glob("*.toml")):
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in document.get("script", {}).values():
            scripts.append(entry["script"])
    return scripts


def _guide_scripts() -> list[str]:
    text = (ROOT / "docs" / "scripts.md").read_text(encoding="utf-8")
    return re.findall(r"^```\n(.*?)^```$", text, re.M | re.S)


SCRIPTS = [case[1] for case in CASES] + _resource_scripts() + _guide_scripts()


def _outcome(function: object, source: str) -> str:
    try:
        return repr(function(source).root)  # type: ignore[operator]
    except ParseError as error:
        return "error: " + error.render("x.ts")


def test_there_are_scripts_of_every_source() -> None:
    assert len(_resource_scripts()) >= 10
    assert len(_guide_scripts()) >= 4
    assert len(SCRIPTS) > 100


@pytest.mark.parametrize("source", SCRIPTS)
def test_the_same_tree_or_error_as_lark(source: str) -> None:
    assert _outcome(parse, source) == _outcome(parse_with_lark, source)


def test_the_benchmark_script_builds_the_same_tree() -> None:
    source = generated_script(2000)
    assert repr(parse(source).root) == repr(parse_with_lark(source).root)


def test_a_valid_script_is_parsed_without_lark(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: str) -> None:
        raise AssertionError("lark's loop was used for a valid script")

    monkeypatch.setattr(tscript_parser, "parse_with_lark", refuse)
    script = parse("aa = [ 1, { kk=( 2 + 3 ) } ]\nwhile ( aa < 3 ) do aa = ( aa + 1 )\n")
    assert [type(node).__name__ for node in script.root.body] == ["Assignment", "While"]


@pytest.mark.parametrize(
    "source",
    [
        "aa = 1 + 2",  # no action for a token
        "begin()\naa = 1\n",  # no action for the end of the script
        "aa = 'open",  # the tokenizer's error
        "aa = { kk=1, kk=2 }",  # the tree builder's error
        "while aa do begin()\n:x\nend",  # a structure error, after the tree is built
    ],
)
def test_an_error_is_lark_s_error(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ParseError) as expected:
        parse_with_lark(source)
    asked: list[str] = []
    original = tscript_parser.parse_with_lark

    def spy(text: str) -> object:
        asked.append(text)
        return original(text)

    monkeypatch.setattr(tscript_parser, "parse_with_lark", spy)
    with pytest.raises(ParseError) as raised:
        parse(source)
    assert asked == [source]
    assert raised.value.render("x.ts") == expected.value.render("x.ts")


def test_the_loop_rejects_a_token_without_an_action() -> None:
    tables = tscript_parser._tables()
    with pytest.raises(Rejected):
        tables.run(tokenize("aa = ( 1 + )"))
    with pytest.raises(Rejected):
        tables.run(tokenize("begin()\n"))  # the end of the script while a block is open
    assert tables.run(tokenize("")) is not None  # an empty script is a script


def test_the_tables_follow_a_rebuilt_parser() -> None:
    first = tscript_parser._tables()
    assert tscript_parser._tables() is first
    tscript_parser._lark.cache_clear()
    try:
        second = tscript_parser._tables()
        assert second is not first
        assert repr(parse("aa = 1").root) == repr(parse_with_lark("aa = 1").root)
    finally:
        tscript_parser._lark.cache_clear()


def test_terminal_callbacks_are_refused() -> None:
    parser = tscript_parser._lark()
    callbacks = parser.parser.parser.parser.callbacks
    callbacks["NAME"] = lambda token: token
    try:
        with pytest.raises(ValueError, match="terminal callbacks"):
            Tables(parser)
    finally:
        del callbacks["NAME"]
