"""The built parser kept in the user's cache directory: later processes load it instead of
building the grammar again, it parses exactly as a freshly built one, and a bad file, a
directory others may write to, or ``TSCRIPT_PARSER_CACHE=off`` fall back to building."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lark
import pytest

from tscript import ParseError, parse
from tscript import parser as tscript_parser
from tscript.parser import parse_all

# Nodes compare by identity in places: the trees are compared by their repr.
SCRIPT = """\
:start
begin( description='a step', expected_time=0:30 )
  value = ( ( counter + 1 ) * 2 )
  if ( value > 10 ) then foundation.power_on()
  elif exists( config.flag ) then counter = ( counter + 1 )
  else pass
  info = { name='host', ports=[ 22, 80 ], up=true }
end
goto start
"""
BROKEN = "a = ( 1 + )\nb = 2\nc = [ 1,\n"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache home of the test's own; the process's parser built again for each test and
    once more afterwards (so no later test uses one loaded from this directory)."""
    home = tmp_path / "cache"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("TSCRIPT_PARSER_CACHE", raising=False)
    tscript_parser._lark.cache_clear()
    yield home
    tscript_parser._lark.cache_clear()


def _files(home: Path) -> list[Path]:
    return sorted((home / "tscript").glob("parser-*.lark"))


def _refuse_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(self: Any) -> None:
        raise AssertionError("the grammar was built again instead of loaded")

    monkeypatch.setattr(lark.Lark, "_build_parser", build)


def test_the_first_parse_keeps_the_parser_and_the_next_process_loads_it(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = parse(SCRIPT)
    (kept,) = _files(cache_home)
    assert (cache_home / "tscript").stat().st_mode & 0o777 == 0o700
    assert kept.stat().st_size > 1000

    tscript_parser._lark.cache_clear()  # as a new process starts
    _refuse_building(monkeypatch)
    assert repr(parse(SCRIPT)) == repr(built)
    assert _files(cache_home) == [kept]


def test_a_loaded_parser_reports_errors_as_a_built_one(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ParseError) as built_error:
        parse(BROKEN)
    built_all = parse_all(BROKEN)
    tscript_parser._lark.cache_clear()
    _refuse_building(monkeypatch)
    with pytest.raises(ParseError) as loaded_error:
        parse(BROKEN)
    assert str(loaded_error.value) == str(built_error.value)
    assert (loaded_error.value.line, loaded_error.value.column) == (2 - 1, 11)
    assert [str(e) for e in parse_all(BROKEN)[1]] == [str(e) for e in built_all[1]]
    assert len(built_all[1]) == 2


def test_a_damaged_file_is_built_again_and_rewritten(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = parse(SCRIPT)
    (kept,) = _files(cache_home)
    good = kept.read_bytes()
    for damage in (b"", b"not a cache\n", good[: len(good) // 2]):
        kept.write_bytes(damage)
        tscript_parser._lark.cache_clear()
        assert repr(parse(SCRIPT)) == repr(expected)
        assert kept.read_bytes().split(b"\n", 1)[0] == good.split(b"\n", 1)[0]


def test_a_directory_others_may_write_to_is_not_used(cache_home: Path) -> None:
    shared = cache_home / "tscript"
    shared.mkdir(mode=0o700)
    os.chmod(shared, 0o777)
    assert tscript_parser.parser_cache_file("grammar") is None
    assert repr(parse(SCRIPT)) == repr(parse(SCRIPT))
    assert _files(cache_home) == []


def test_the_cache_can_be_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSCRIPT_PARSER_CACHE", "off")
    parse(SCRIPT)
    assert _files(cache_home) == []


def test_a_relative_cache_home_is_ignored(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert tscript_parser.parser_cache_file("grammar") is None


def test_the_file_is_named_by_the_grammar(cache_home: Path) -> None:
    one = tscript_parser.parser_cache_file("start: A\n")
    other = tscript_parser.parser_cache_file("start: B\n")
    assert one is not None
    assert other is not None
    assert one != other
    assert one.parent == other.parent == cache_home / "tscript"
