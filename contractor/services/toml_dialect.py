"""The TOML dialect the original's resource files were written in.

The original read its resource files with a lenient TOML package that took bare keys
beginning with a config operator (``>repo_list = [ ... ]``, ``<packages = ...``,
``~gone = 0``) or ending in a ``:Class`` filter (``guest_id:VCenter = ...``), which
``tomllib`` refuses ("Invalid statement"). ``loads`` reads such keys as the original did,
as if they were quoted, and warns about each one; the text is otherwise given to
``tomllib`` unchanged, so anything else that is not TOML stays an error, with its line and
column in the file as written.

Only keys are touched: the scanner follows TOML's structure (table headers, strings of the
four kinds, comments, arrays, inline tables) and looks at a bare key only where a key may
stand, at the start of a statement or of an inline table's entry. Valid TOML comes through
byte for byte (``tests/services/test_toml_dialect.py`` checks this with hypothesis).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dialect", "TomlSyntaxError", "loads", "prepare"]

# A config key (model-original §9.1): an optional operator, a name, an optional ":Class".
_CONFIG_KEY = re.compile(r"[<>~\-]?[A-Za-z0-9][A-Za-z0-9_\-]*(?::[A-Za-z0-9]+)?")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_EQUALS = re.compile(r"[ \t]*=")
_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)$")


class TomlSyntaxError(ValueError):
    """Text that is not TOML, even in the original's dialect; ``line`` and ``column``
    (from 1) are where it is in the text as written."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message, self.line, self.column = message, line, column


@dataclass
class Dialect:
    """The text as ``tomllib`` is given it, what was changed, and where."""

    text: str
    # (line, column, key) of each bare key that was quoted, in the text as written.
    quoted: list[tuple[int, int, str]] = field(default_factory=list)
    # Offsets in ``text`` of every quote that was added.
    added: list[int] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return [
            f"{line}:{column}: bare key {key!r} is not TOML; read as the quoted key "
            f"'{key}' (as the original did; quote it to silence this warning)"
            for line, column, key in self.quoted
        ]

    def original_position(self, line: int, column: int) -> tuple[int, int]:
        """A ``tomllib`` position in ``text`` as a position in the text as written (quotes
        are added within lines, so only the column moves)."""
        start = 0
        for _ in range(line - 1):
            start = self.text.index("\n", start) + 1
        shift = sum(1 for offset in self.added if start <= offset < start + column - 1)
        return line, column - shift


def _string_end(text: str, start: int) -> int:
    """The offset just past the string starting at ``start`` (best effort on bad input:
    an unclosed string ends where ``tomllib`` will complain)."""
    for quote in ('"""', "'''"):
        if text.startswith(quote, start):
            at = start + 3
            while at < len(text):
                if quote == '"""' and text[at] == "\\":
                    at += 2
                elif text.startswith(quote, at):
                    at += 3
                    # up to two quotes of the content may come right before the closing three
                    for _ in range(2):
                        if at < len(text) and text[at] == quote[0]:
                            at += 1
                    return at
                else:
                    at += 1
            return len(text)
    quote, at = text[start], start + 1
    while at < len(text) and text[at] not in (quote, "\n"):
        at += 2 if quote == '"' and text[at] == "\\" else 1
    return at + 1 if at < len(text) and text[at] == quote else at


def _header_end(text: str, start: int) -> int:
    """The offset just past a ``[table]`` or ``[[array]]`` header's closing bracket."""
    at = start
    while at < len(text) and text[at] != "\n":
        if text[at] in "\"'":
            at = _string_end(text, at)
        elif text[at] == "]":
            return at + 2 if text.startswith("]]", at) else at + 1
        else:
            at += 1
    return at


def prepare(text: str) -> Dialect:
    """The text with every bare config key at a key position quoted."""
    pieces: list[str] = []
    dialect = Dialect(text="")
    copied = 0  # text[:copied] is in pieces
    added = 0  # quotes added so far
    nested: list[str] = []  # open "[" (array) and "{" (inline table) in a value
    at_key = True
    line, line_start = 1, 0
    at = 0
    while at < len(text):
        char = text[at]
        if char == "\n":
            line, line_start = line + 1, at + 1
            if not nested:
                at_key = True
            at += 1
        elif char in " \t\r":
            at += 1
        elif char == "#":
            newline = text.find("\n", at)
            at = len(text) if newline < 0 else newline
        elif char in "\"'":
            end = _string_end(text, at)
            line += text.count("\n", at, end)
            if "\n" in text[at:end]:
                line_start = text.rindex("\n", at, end) + 1
            at = end
        elif at_key:
            if char == "[" and not nested:
                at, at_key = _header_end(text, at), False
            elif char == "=":
                at, at_key = at + 1, False
            elif char == "}" and nested and nested[-1] == "{":
                nested.pop()
                at, at_key = at + 1, False
            elif match := _CONFIG_KEY.match(text, at):
                key = match.group()
                if _BARE_KEY.fullmatch(key) is None and _EQUALS.match(text, match.end()):
                    pieces += [text[copied:at], f"'{key}'"]
                    copied = match.end()
                    dialect.added += [at + added, match.end() + added + 1]
                    added += 2
                    dialect.quoted.append((line, at - line_start + 1, key))
                at = match.end()
            elif match := _BARE_KEY.match(text, at):
                at = match.end()
            else:
                at += 1
        elif char in "[{":
            nested.append(char)
            at_key = char == "{"
            at += 1
        elif char in "]}":
            if nested and nested[-1] == ("[" if char == "]" else "{"):
                nested.pop()
            at += 1
        elif char == ",":
            at_key = bool(nested) and nested[-1] == "{"
            at += 1
        else:
            at += 1
    pieces.append(text[copied:])
    dialect.text = "".join(pieces)
    return dialect


def loads(text: str) -> tuple[dict[str, Any], list[str]]:
    """The document and a warning (``LINE:COLUMN: ...``) for each bare config key read;
    ``TomlSyntaxError`` for text that is not TOML even so."""
    dialect = prepare(text)
    try:
        document = tomllib.loads(dialect.text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _POSITION.search(message)
        if found is None:
            raise TomlSyntaxError(message, 1, 1) from None
        line, column = dialect.original_position(int(found.group(1)), int(found.group(2)))
        raise TomlSyntaxError(message[: found.start()].rstrip(), line, column) from None
    return document, dialect.warnings()
