"""The original's TOML dialect: bare config keys are read as quoted keys, with a warning
naming where; valid TOML comes through byte for byte (fuzzed); anything else that is not
TOML stays an error, placed in the text as written."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from contractor.services.toml_dialect import TomlSyntaxError, loads, prepare

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_bare_config_keys_are_read_as_quoted_keys_with_a_warning() -> None:
    text = (
        "[ structure.x.config_values ]\n"
        ">repo_list = [ 'main' ]  # appended\n"
        "<packages = 'vim'\n"
        "~gone = 0\n"
        "-dash_is_toml = 1\n"
        "guest_id:VCenter = 'g'\n"
        "inline = { >a = 1, b = [ { <c = 2 } ] }\n"
    )
    document, warnings = loads(text)
    assert document == {
        "structure": {
            "x": {
                "config_values": {
                    ">repo_list": ["main"],
                    "<packages": "vim",
                    "~gone": 0,
                    "-dash_is_toml": 1,
                    "guest_id:VCenter": "g",
                    "inline": {">a": 1, "b": [{"<c": 2}]},
                }
            }
        }
    }
    assert [w.split(": bare key ")[0] for w in warnings] == [
        "2:1",
        "3:1",
        "4:1",
        "6:1",
        "7:12",
        "7:28",
    ]
    assert warnings[0] == (
        "2:1: bare key '>repo_list' is not TOML; read as the quoted key '>repo_list' "
        "(as the original did; quote it to silence this warning)"
    )


@pytest.mark.parametrize(
    "text",
    [
        's = """\n>not_a_key = 1\n"""\n',
        "s = '''\n<not_a_key = 1\n'''\n",
        's = "> x = 1"\n',
        "# >commented = 1\n",
        "a = [\n  '>x',\n  # >y = 1\n]\n",
        "'>quoted' = 1\n\"<also\" = 2\n",
        "[ 'odd.>name' ]\nk = 1\n",
        's = """ends with quotes"""""\n>k = 1\n',
    ],
)
def test_keys_are_only_touched_where_a_key_may_stand(text: str) -> None:
    if ">k = 1" in text:
        # a closing triple quote may follow two quotes of the content; the key after it is real
        assert prepare(text).text == text.replace(">k", "'>k'")
        return
    assert prepare(text).text == text
    assert prepare(text).quoted == []


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("a = 1\nb = @\n", "Invalid value", 2, 5),
        (">x 1\n", "Invalid statement", 1, 1),  # no "=": not a key, left as it is
        ("<a = 1 junk\n", "Expected newline or end of document after a statement", 1, 8),
        (
            "x = { >a = 1, >b = 2 } z\n",
            "Expected newline or end of document after a statement",
            1,
            24,
        ),
        ("[ structure.x\n", "Expected ']' at the end of a table declaration", 1, 14),
        ('a = "unclosed\n', "Illegal character '\\n'", 1, 14),
        ("a = 1\na = 2\n", "Cannot overwrite a value", 2, 6),
        (">a = 1\n'>a' = 2\n", "Cannot overwrite a value", 2, 9),
    ],
)
def test_what_is_not_toml_stays_an_error_where_it_is(
    text: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(TomlSyntaxError) as raised:
        loads(text)
    assert (raised.value.message, raised.value.line, raised.value.column) == (
        message,
        line,
        column,
    )


# -- fuzzing: valid TOML is never changed ------------------------------------------------

_tricky = st.sampled_from(
    [
        "",
        "a",
        ">k = 1",
        "<x",
        "~",
        ":C",
        "'",
        '"',
        "'''",
        '"""',
        "#",
        "\n",
        "\\",
        "[",
        "{",
        "=",
        ",",
    ]
)
_strings = st.text(max_size=8) | st.lists(_tricky, max_size=5).map("".join)
_keys = _strings | st.sampled_from(["a", "b-c", "_d", ">e", "f:G", "-h"])
_values: st.SearchStrategy[Any] = st.recursive(
    _strings | st.integers(-5, 5) | st.booleans() | st.floats(allow_nan=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)
_documents = st.dictionaries(_keys, _values, max_size=5)


@FUZZ
@given(document=_documents, multiline=st.booleans(), indent=st.integers(1, 4))
def test_valid_toml_from_a_writer_comes_through_unchanged(
    document: dict[str, Any], multiline: bool, indent: int
) -> None:
    text = tomli_w.dumps(document, multiline_strings=multiline, indent=indent)
    prepared = prepare(text)
    assert prepared.text == text
    assert prepared.quoted == []
    assert loads(text) == (tomllib.loads(text), [])


_fragments = st.sampled_from(
    [
        "k{n} = 1",
        "'>k{n}' = 'quoted'",
        '"<k{n}" = "a # not a comment"',
        "-k{n} = 2",
        's{n} = """\n>in{n} = 1\n<in{n} = 2\n"""',
        "l{n} = '''\n~in{n} = 1 '''",
        "a{n} = [\n  '>x = 1',  # >c = 1\n  {{ 'p:Q' = 1, r = [ 1, 2 ] }},\n]",
        "t{n} = {{ 'a>b' = {{ c = '}}' }}, d = [ '{{', \"]\" ] }}",
        "# >comment{n} = 1",
        "[ 'tab{n}.>x' ]",
        '[[ "arr{n}" ]]',
        "[ dotted{n}.'k:C'.\"<y\" ]\nz = 1",
        "e{n}.'<f' . g = 1",
        'm{n} = """\\\n  continued \\""" """',
    ]
)


@FUZZ
@given(
    pieces=st.lists(
        st.tuples(_fragments, st.sampled_from(["", " ", "\t", "  # c"])), min_size=1, max_size=8
    )
)
def test_valid_hand_written_toml_comes_through_unchanged(pieces: list[tuple[str, str]]) -> None:
    text = "".join(f"{fragment.format(n=n)}{tail}\n" for n, (fragment, tail) in enumerate(pieces))
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assume(False)  # a value after a table header moves into that table: still valid,
        raise  # but a header twice is not, and that is not what this tests
    assert prepare(text).text == text
    assert loads(text) == (expected, [])


@FUZZ
@given(st.text(alphabet="ab1=<>~:-'\"#[]{},. \n\\", max_size=40))
def test_any_text_keeps_its_meaning_or_gains_only_quotes(text: str) -> None:
    prepared = prepare(text)
    # only quotes were added, where ``added`` says
    kept = "".join(c for i, c in enumerate(prepared.text) if i not in set(prepared.added))
    assert kept == text
    assert all(prepared.text[i] == "'" for i in prepared.added)
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    assert prepared.text == text  # valid TOML: byte for byte
    assert loads(text) == (expected, [])


_operators = st.sampled_from(["<", ">", "~", "-", ""])
_names = st.sampled_from(["a", "pkg", "repo_list", "x-1", "0"])
_classes = st.sampled_from(["", ":VCenter", ":AWSEC2"])
_config_keys = st.builds(lambda o, n, c: o + n + c, _operators, _names, _classes)
_scalars = st.sampled_from(["1", "'s'", "[ 'x', 'y' ]", "{ q = 1 }", '"""\n>n = 1\n"""'])


@FUZZ
@given(
    entries=st.dictionaries(_config_keys, _scalars, min_size=1, max_size=6),
    inline=st.booleans(),
)
def test_bare_config_keys_read_as_if_quoted(entries: dict[str, str], inline: bool) -> None:
    if inline:
        bare = "v = { " + ", ".join(f"{k} = {v}" for k, v in entries.items()) + " }\n"
        quoted = "v = { " + ", ".join(f"'{k}' = {v}" for k, v in entries.items()) + " }\n"
        assume("\n" not in bare.strip())  # inline tables are one line
    else:
        bare = "[ c ]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
        quoted = "[ c ]\n" + "".join(f"'{k}' = {v}\n" for k, v in entries.items())
    document, warnings = loads(bare)
    assert document == tomllib.loads(quoted)
    dialect = [k for k in entries if not all(c.isalnum() or c in "_-" for c in k)]
    assert [w.split("bare key ")[1].split(" ")[0] for w in warnings] == [repr(k) for k in dialect]
