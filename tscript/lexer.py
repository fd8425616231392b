"""The TScript tokenizer, used by lark's LALR parser as a custom lexer.

Besides splitting the text into tokens it implements the layout rules of the language:

* ``\\n``, ``\\r\\n`` and ``\\r`` all end a line; lines and columns are exact (1-based).
* Spaces and tabs between tokens never matter; ``#`` starts a comment to the end of the line.
* A newline ends a statement, except inside ``( )``, ``[ ]`` and ``{ }``, right after ``then``,
  ``do`` and ``else``, and right before ``elif`` and ``else``; blank lines are skipped.
* ``-`` or ``+`` directly in front of digits is the sign of a number unless it follows a value
  (``( aa -2 )`` subtracts, ``[ -2 ]`` is a negative literal).
* Keywords are never names; ``true``, ``false``, ``none`` and ``not`` in any capitalisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.lexer import Lexer as LarkLexer

from tscript.errors import ParseError

__all__ = ["KEYWORDS", "MAX_BRACKETS", "Lexer", "Recovery", "source_line", "tokenize"]

MAX_BRACKETS = 200  # an implementation limit (the original fails near 150 nested levels)

KEYWORDS = {
    "if": "IF",
    "then": "THEN",
    "elif": "ELIF",
    "else": "ELSE",
    "while": "WHILE",
    "do": "DO",
    "begin": "BEGIN",
    "end": "END",
    "goto": "GOTO",
    "exists": "EXISTS",
    "continue": "CONTINUE",
    "break": "BREAK",
    "pass": "PASS",
    "and": "OP",
    "or": "OP",
}
ANY_CASE_KEYWORDS = {"true": "TRUE", "false": "FALSE", "none": "NONE", "not": "NOT"}

_TOKEN_RE = re.compile(
    r"""
    [ \t]*  # spaces and tabs before a token never matter
    (?:
    (?P<NL>\r\n|\r|\n)
  | (?P<COMMENT>\#[^\r\n]*)
  | (?P<STRING>"[^"]*"|'[^']*')
  | (?P<TIME>[0-9]{1,2}(?::[0-9]{1,2}){1,3}(?![0-9:]))
  | (?P<BADTIME>[0-9]+:[0-9:]*)
  | (?P<FLOAT>[0-9]+\.[0-9]+)
  | (?P<INT>[0-9]+)
  | (?P<QNAME>[a-zA-Z][a-zA-Z0-9_]*\.(?:[a-zA-Z][a-zA-Z0-9_]*)?)
  | (?P<NAME>[a-zA-Z][a-zA-Z0-9_]*)
  | (?P<OP>==|!=|<=|>=|<|>|\^|\*|/|%|\+|-|&|\||\.)
  | (?P<EQUAL>=)
  | (?P<LPAR>\()
  | (?P<RPAR>\))
  | (?P<LSQB>\[)
  | (?P<RSQB>\])
  | (?P<LBRACE>\{)
  | (?P<RBRACE>\})
  | (?P<COMMA>,)
  | (?P<COLON>:)
  | (?P<WS>\Z)
    )
    """,
    re.VERBOSE,
)
_SPACES = re.compile(r"[ \t]*")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_LINE_SPLIT_RE = re.compile(r"\r\n|\r|\n")
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")

# tokens after which a sign belongs to an operator, not to a number
_VALUE_END = frozenset(
    {"NAME", "QNAME", "INT", "FLOAT", "TIME", "STRING", "RPAR", "RSQB", "RBRACE"}
    | {"TRUE", "FALSE", "NONE"}
)
_OPENING = frozenset({"LPAR", "LSQB", "LBRACE"})
_CLOSING = frozenset({"RPAR", "RSQB", "RBRACE"})
# a newline right after these does not end a statement
_CONTINUES = frozenset({"THEN", "DO", "ELSE", "NL"})
# a newline right before these does not end a statement
_JOINS = frozenset({"ELIF", "ELSE"})


_new_str = str.__new__


def _token(kind: str, value: str, start: int, line: int, column: int) -> Token:
    """``Token(kind, value, start, line, column)``, made directly (lark's constructor takes
    keywords and a detour through a class method: a third of the time of a tokenize)."""
    token: Token = _new_str(Token, value)
    token.type = kind
    token.start_pos = start
    token.value = value
    token.line = line
    token.column = column
    token.end_line = None
    token.end_column = None
    token.end_pos = None
    return token


def source_line(text: str, line: int) -> str:
    """The text of 1-based ``line`` of ``text`` (any line ending counts)."""
    lines = _LINE_SPLIT_RE.split(text)
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return ""


def _error(text: str, message: str, line: int, column: int) -> ParseError:
    return ParseError(message, line, column, source_line(text, line))


class Recovery:
    """Lets ``tokenize`` go on after an error (for ``tscript check``): each error is added to
    ``errors`` and an ``ERROR`` token, which no rule accepts, stands for the bad text. The
    parser sets ``reset`` when it skips the rest of a statement, so brackets left open there
    do not swallow the following lines."""

    __slots__ = ("errors", "reset")

    def __init__(self) -> None:
        self.errors: list[ParseError] = []
        self.reset = False


def tokenize(text: str, recovery: Recovery | None = None) -> Iterator[Token]:
    """Yield the tokens of ``text`` as the grammar sees them (ending with one ``NL``).

    Without ``recovery`` the first error raises ``ParseError``."""
    match = _TOKEN_RE.match
    pos = 0
    end = len(text)
    line = 1
    line_start = 0
    depth = 0
    previous = "NL"  # type of the last token yielded
    pending_newline: Token | None = None

    def failed(error: ParseError, start: int) -> Token:
        if recovery is None:
            raise error
        recovery.errors.append(error)
        return _token("ERROR", text[start:pos], start, error.line, error.column)

    while pos < end:
        if recovery is not None and recovery.reset:
            depth = 0
            recovery.reset = False
        found = match(text, pos)
        if found is None:
            spaces = _SPACES.match(text, pos)
            if spaces is not None:
                pos = spaces.end()
            char = text[pos]
            column = pos - line_start + 1
            start = pos
            if char in "\"'":
                error = _error(
                    text,
                    f"string not closed: add the closing {char} (strings cannot contain "
                    "their own quote character)",
                    line,
                    column,
                )
                newline = _NEWLINE_RE.search(text, pos)
                pos = newline.start() if newline is not None else end
            else:
                error = _error(text, f"unexpected character {char!r}", line, column)
                pos += 1
            token = failed(error, start)
            if pending_newline is not None:
                yield pending_newline
                pending_newline = None
            previous = token.type
            yield token
            continue
        kind = found.lastgroup
        if kind is None:  # every alternative of _TOKEN_RE is a named group
            raise AssertionError("a token without a kind")
        start, pos = found.span(kind)  # the match ends where its group does
        value = text[start:pos]
        column = start - line_start + 1
        if kind == "WS" or kind == "COMMENT":
            continue
        if kind == "NL":
            token = _token("NL", value, start, line, column)
            line += 1
            line_start = pos
            if depth == 0 and previous not in _CONTINUES and pending_newline is None:
                pending_newline = token
            continue
        if kind == "STRING":
            newlines = _NEWLINE_RE.findall(value)
            token = _token("STRING", value, start, line, column)
            if newlines:
                line += len(newlines)
                line_start = start + value.rfind(newlines[-1]) + len(newlines[-1])
        elif kind == "NAME":
            keyword = KEYWORDS.get(value)
            if keyword is None:
                # true, false, none and not in any capitalisation (no longer name is one)
                keyword = ANY_CASE_KEYWORDS.get(value.lower(), "NAME") if len(value) < 6 else "NAME"
            token = _token(keyword, value, start, line, column)
        elif kind == "QNAME":
            module, _, name = value.partition(".")
            if not name:
                token = failed(
                    _error(
                        text,
                        f'a module value is written module.name with no spaces, not "{module}. "',
                        line,
                        column,
                    ),
                    start,
                )
            # only the module part is checked: ``mod.do`` is a legal module value
            elif module in KEYWORDS or module.lower() in ANY_CASE_KEYWORDS:
                token = failed(
                    _error(
                        text, f'"{module}" is a keyword and cannot be a module name', line, column
                    ),
                    start,
                )
            else:
                token = _token("QNAME", value, start, line, column)
        elif kind == "BADTIME":
            token = failed(
                _error(
                    text,
                    "bad time: write M:S, H:M:S or D:H:M:S with one or two digits in each part",
                    line,
                    column,
                ),
                start,
            )
        elif (
            kind == "OP"
            and value in "+-"
            and (previous not in _VALUE_END or pending_newline is not None)
        ):
            number = _NUMBER_RE.match(text, pos)
            if number is not None:
                digits = number.group()
                pos = number.end()
                after = text[pos : pos + 1]
                if after == ":":
                    time_text = _TOKEN_RE.match(text, start + 1)  # skip the whole time
                    pos = time_text.end() if time_text is not None else pos
                    token = failed(_error(text, "a time cannot have a sign", line, column), start)
                else:
                    kind = "FLOAT" if "." in digits else "INT"
                    value = value + digits
                    token = _token(kind, value, start, line, column)
            else:
                token = _token(kind, value, start, line, column)
        else:
            if kind in _OPENING:
                depth += 1
            elif kind in _CLOSING:
                depth = max(depth - 1, 0)
            if depth > MAX_BRACKETS:
                depth = 0  # the parser skips this statement; its brackets are not counted
                token = failed(
                    _error(
                        text, f"brackets are nested more than {MAX_BRACKETS} deep", line, column
                    ),
                    start,
                )
            else:
                token = _token(kind, value, start, line, column)
        if pending_newline is not None:
            if token.type not in _JOINS:
                yield pending_newline
            pending_newline = None
        previous = token.type
        yield token
    if previous != "NL":
        # not empty: lark places the end of the script at the last token unless it is falsy
        yield _token("NL", "\n", end, line, end - line_start + 1)


class Lexer(LarkLexer):
    """Adapter so lark's LALR parser reads tokens from ``tokenize``."""

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, data: str) -> Iterator[Token]:  # type: ignore[override]
        return tokenize(data)
