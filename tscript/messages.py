"""TScript's syntax errors in words: what the parser met, what it expected, and a hint
at the usual mistake behind it (``translate`` turns lark's ``UnexpectedInput`` into a
``ParseError``)."""

from __future__ import annotations

from lark import Token
from lark.exceptions import UnexpectedInput, UnexpectedToken

from tscript.errors import ParseError
from tscript.lexer import Recovery, tokenize

__all__ = ["translate"]

_WORDS = {
    "NAME": "a name",
    "QNAME": "a module value",
    "INT": "a number",
    "FLOAT": "a number",
    "TIME": "a time",
    "STRING": "a string",
    "NL": "the end of the line",
    "$END": "the end of the script",
    "LPAR": '"("',
    "RPAR": '")"',
    "LSQB": '"["',
    "RSQB": '"]"',
    "LBRACE": '"{"',
    "RBRACE": '"}"',
    "COMMA": '","',
    "EQUAL": '"="',
    "COLON": '":"',
    "OP": "an operator",
}
_VALUE_STARTS = frozenset(
    {"NAME", "QNAME", "INT", "FLOAT", "TIME", "STRING", "LPAR", "LSQB", "LBRACE"}
    | {"TRUE", "FALSE", "NONE", "NOT", "EXISTS"}
)
_LABELS = frozenset(
    {"NAME", "TRUE", "FALSE", "NONE", "NOT", "IF", "THEN", "ELIF", "ELSE", "WHILE", "DO"}
    | {"BEGIN", "END", "GOTO", "EXISTS", "CONTINUE", "BREAK", "PASS"}
)
_STATEMENT_STARTS = frozenset(
    {"IF", "WHILE", "BEGIN", "GOTO", "COLON", "CONTINUE", "BREAK", "PASS"}
)


def _describe(token: Token) -> str:
    if token.type == "NL":
        return "end of the line"
    if token.type == "$END":
        return "end of the script"
    if token.type == "OP":
        return f'operator "{token.value}"'
    return f'"{token.value}"'


def _expected_words(expected: set[str]) -> str:
    names = set(expected)
    words: list[str] = []
    if names >= _LABELS:
        words.append("a parameter name")
        names -= _LABELS
    if names >= _STATEMENT_STARTS and names >= _VALUE_STARTS:
        words.append("a statement")
        names -= _STATEMENT_STARTS | _VALUE_STARTS
    elif len(names & _VALUE_STARTS) > 4:
        words.append("a value")
        names -= _VALUE_STARTS
    for name in sorted(names):
        word = _WORDS.get(name, name.lower())
        if word not in words:
            words.append(word)
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else "nothing"


def _hint(token: Token, expected: set[str]) -> str:
    kind = token.type
    if kind == "OP" and "OP" not in expected:
        if "RPAR" in expected:
            return "only one operator per pair of parentheses: ( ( a + b ) + c )"
        return "infix expressions need parentheses: ( a + b )"
    if kind == "EQUAL" and "EQUAL" not in expected:
        return "an assignment is a statement of its own, not a value; compare with =="
    if expected == {"EQUAL"} or (expected >= _LABELS and kind in _VALUE_STARTS):
        return "parameters and map entries are named: name( parameter=value ), { key=value }"
    if kind == "RPAR" and expected == {"OP"}:
        return "parentheses hold one infix operation such as ( a + b ), not a single value"
    if kind == "LSQB":
        return "only a variable can be indexed, with one index: name[ index ]"
    if kind in ("ELSE", "ELIF"):
        return (
            f"an if takes one statement per branch; put several in begin( ) ... end "
            f"before {token.value}"
        )
    if kind == "$END" and "END" in expected:
        return "a begin( ) block is missing its end"
    if kind == "LPAR" and "OP" in expected:
        return "infix expressions need parentheses: ( a + b )"
    return ""


def _unclosed_begin(source: str) -> Token | None:
    """The innermost ``begin`` of ``source`` that has no ``end``."""
    opened: list[Token] = []
    for token in tokenize(source, Recovery()):
        if token.type == "BEGIN":
            opened.append(token)
        elif token.type == "END" and opened:
            opened.pop()
    return opened[-1] if opened else None


def translate(error: UnexpectedInput, source: str) -> ParseError:
    if isinstance(error, UnexpectedToken):
        token: Token = error.token
        try:
            expected = set(error.accepts or error.expected)
        except Exception:  # the precise set is a nicety; fall back to lark's estimate
            expected = set(error.expected)
        message = f"unexpected {_describe(token)}; expected {_expected_words(expected)}"
        hint = _hint(token, expected)
        if hint:
            message = f"{message} ({hint})"
        line, column = int(error.line or 1), int(error.column or 1)
        if token.type == "$END" and "END" in expected:
            # where the block that is not closed begins, as the reference reports it
            begin = _unclosed_begin(source)
            if begin is not None:
                line, column = int(begin.line or 1), int(begin.column or 1)
        return ParseError(message, line, column)
    return ParseError(str(error), int(getattr(error, "line", 1)), int(getattr(error, "column", 1)))
