"""Parse TScript source into a ``tscript.nodes.Script``.

lark's LALR(1) parser reads tokens from ``tscript.lexer.tokenize`` and builds the frozen AST
directly through an inline transformer (no intermediate parse tree). Structural rules that a
context-free grammar cannot express are checked afterwards, without recursion: jump points
only at the top level, ``break``/``continue`` only inside ``while``, valid block options, no
duplicated map key or parameter name. Every failure is a ``ParseError`` with line, column, a
message in words and a caret rendering.

The built LALR(1) tables are kept in the user's cache directory (``tscript.parser_cache``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput, VisitError
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser_state import ParserState

from tscript.errors import ParseError
from tscript.lalr import Tables
from tscript.lexer import Lexer, Recovery, source_line, tokenize
from tscript.messages import translate
from tscript.nodes import (
    Array,
    Assignment,
    Block,
    Break,
    Call,
    Constant,
    Continue,
    Exists,
    Expression,
    Goto,
    If,
    Infix,
    Item,
    JumpPoint,
    MapLiteral,
    Node,
    Not,
    Pass,
    Script,
    Statement,
    Variable,
    While,
)
from tscript.parser_cache import parser_cache_file

__all__ = ["parse", "parse_all", "parse_with_lark"]

BLOCK_OPTIONS = ("description", "expected_time", "max_time")


class _Branch:
    __slots__ = ("condition", "statement")

    def __init__(self, condition: Expression | None, statement: Statement) -> None:
        self.condition = condition
        self.statement = statement


_Parameters = tuple[tuple[str, Expression, Token], ...]


def _fail(message: str, token: Token | Node) -> ParseError:
    return ParseError(message, int(token.line or 0), int(token.column or 0))


# Where the AST builder puts the errors it finds while ``parse_all`` recovers from errors;
# ``None`` (``parse``): the first error raises.
_SINK: ContextVar[list[ParseError] | None] = ContextVar("tscript_parse_sink", default=None)


def _report(error: ParseError) -> None:
    sink = _SINK.get()
    if sink is None:
        raise error
    sink.append(error)


def _time(text: str) -> timedelta:
    parts = [int(part) for part in text.split(":")]
    seconds = parts[-1]
    minutes = parts[-2]
    hours = parts[-3] if len(parts) > 2 else 0
    days = parts[-4] if len(parts) > 3 else 0
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _nodes(children: Sequence[Any]) -> list[Any]:
    return [child for child in children if child is not None and not isinstance(child, Token)]


class _Builder(Transformer[Token, Any]):
    """Inline LALR callbacks: each turns one rule's children into an AST node."""

    def reference(self, children: list[Token]) -> Variable:
        (token,) = children
        module, _, name = token.value.rpartition(".")
        return Variable(token.line or 0, token.column or 0, module or None, name)

    def variable(self, children: list[Variable]) -> Variable:
        return children[0]

    def assignment(self, children: list[Any]) -> Assignment:
        target: Variable = children[0]
        return Assignment(target.line, target.column, target, children[2])

    def item_assignment(self, children: list[Any]) -> Assignment:
        ref: Variable = children[0]
        item = Item(ref.line, ref.column, ref.module, ref.name, children[2])
        return Assignment(ref.line, ref.column, item, children[5])

    def item(self, children: list[Any]) -> Item:
        ref: Variable = children[0]
        return Item(ref.line, ref.column, ref.module, ref.name, children[2])

    def parameters(self, children: list[Any]) -> _Parameters:
        seen: set[str] = set()
        result = []
        for name, value, token in _nodes(children):
            if name in seen:
                _report(_fail(f'"{name}" is given twice; each name may appear only once', token))
                continue
            seen.add(name)
            result.append((name, value, token))
        return tuple(result)

    def label(self, children: list[Token]) -> Token:
        return children[0]

    def parameter(self, children: list[Any]) -> tuple[str, Expression, Token]:
        token: Token = children[0]
        return (token.value, children[2], token)

    def call(self, children: list[Any]) -> Call:
        ref: Variable = children[0]
        parameters: _Parameters = children[2] or ()
        return Call(
            ref.line,
            ref.column,
            ref.module,
            ref.name,
            tuple((n, v) for n, v, _ in parameters),
            tuple((int(t.line or 0), int(t.column or 0)) for _, _, t in parameters),
        )

    def infix(self, children: list[Any]) -> Infix:
        token: Token = children[0]
        return Infix(
            token.line or 0, token.column or 0, children[2].value, children[1], children[3]
        )

    def not_value(self, children: list[Any]) -> Not:
        token: Token = children[0]
        return Not(token.line or 0, token.column or 0, children[1])

    def exists(self, children: list[Any]) -> Exists:
        token: Token = children[0]
        return Exists(token.line or 0, token.column or 0, children[2])

    def exists_item(self, children: list[Any]) -> Exists:
        token: Token = children[0]
        ref: Variable = children[2]
        item = Item(ref.line, ref.column, ref.module, ref.name, children[4])
        return Exists(token.line or 0, token.column or 0, item)

    def array(self, children: list[Any]) -> Array:
        token: Token = children[0]
        return Array(token.line or 0, token.column or 0, tuple(_nodes(children)))

    def map(self, children: list[Any]) -> MapLiteral:
        token: Token = children[0]
        parameters: _Parameters = children[1] or ()
        return MapLiteral(
            token.line or 0, token.column or 0, tuple((n, v) for n, v, _ in parameters)
        )

    def constant(self, children: list[Token]) -> Constant:
        (token,) = children
        kind = token.type
        text: str = token.value
        value: Any
        if kind == "INT":
            value = int(text)
        elif kind == "FLOAT":
            value = float(text)
        elif kind == "STRING":
            value = text[1:-1]
        elif kind == "TIME":
            value = _time(text)
        elif kind == "TRUE":
            value = True
        elif kind == "FALSE":
            value = False
        else:
            value = None
        return Constant(token.line or 0, token.column or 0, value)

    def if_stmt(self, children: list[Any]) -> If:
        token: Token = children[0]
        branches: list[tuple[Expression | None, Statement]] = [(children[1], children[3])]
        for child in children[4:]:
            if isinstance(child, _Branch):
                branches.append((child.condition, child.statement))
        return If(token.line or 0, token.column or 0, tuple(branches))

    def elif_clause(self, children: list[Any]) -> _Branch:
        return _Branch(children[1], children[3])

    def else_clause(self, children: list[Any]) -> _Branch:
        return _Branch(None, children[1])

    def while_stmt(self, children: list[Any]) -> While:
        token: Token = children[0]
        return While(token.line or 0, token.column or 0, children[1], children[3])

    def block(self, children: list[Any]) -> Block:
        token: Token = children[0]
        parameters: _Parameters = children[2] or ()
        options: dict[str, Any] = {}
        for name, value, name_token in parameters:
            if name not in BLOCK_OPTIONS:
                _report(
                    _fail(
                        f'"{name}" is not a block option; use description, expected_time or '
                        "max_time",
                        name_token,
                    )
                )
            elif not isinstance(value, Constant):
                _report(
                    _fail(
                        f'block option "{name}" must be a constant (a string, number or time)',
                        value,
                    )
                )
            else:
                options[name] = value.value
        body = tuple(_nodes(children[5:-1]))
        return Block(token.line or 0, token.column or 0, body, **options)

    def jump_point(self, children: list[Token]) -> JumpPoint:
        return JumpPoint(children[0].line or 0, children[0].column or 0, children[1].value)

    def goto_stmt(self, children: list[Token]) -> Goto:
        return Goto(children[0].line or 0, children[0].column or 0, children[1].value)

    def continue_stmt(self, children: list[Token]) -> Continue:
        return Continue(children[0].line or 0, children[0].column or 0)

    def break_stmt(self, children: list[Token]) -> Break:
        return Break(children[0].line or 0, children[0].column or 0)

    def pass_stmt(self, children: list[Token]) -> Pass:
        return Pass(children[0].line or 0, children[0].column or 0)

    def start(self, children: list[Any]) -> Block:
        statements = tuple(_nodes(children))
        if len(statements) == 1 and isinstance(statements[0], Block):
            root = statements[0]
            lines: tuple[Statement, ...] = (root,)
        else:
            root = Block(1, 1, statements)
            lines = statements
        for problem in structure_problems(lines):
            _report(problem)
        return root


MAX_NESTING = 200


def structure_problems(lines: Sequence[Statement]) -> list[ParseError]:
    """What a context-free grammar cannot check, for the top-level ``lines`` of a script, in
    source order: jump points only at the top level (a script that is one ``begin( ) ... end``
    block has its jump points inside that block, so they are errors too); break/continue only
    inside while; statements nested at most ``MAX_NESTING`` deep (an implementation limit;
    the original stops near 100). A work list, not recursion: nesting may be deep."""
    problems: list[ParseError] = []
    todo: list[tuple[Statement, bool, Block | None, int]] = [
        (s, False, None, 1) for s in reversed(lines)
    ]
    while todo:
        statement, in_loop, block, depth = todo.pop()
        if depth > MAX_NESTING:
            problems.append(_fail(f"statements are nested more than {MAX_NESTING} deep", statement))
            continue
        if isinstance(statement, JumpPoint) and depth > 1:
            where = "not inside begin/end, if or while"
            if block is not None and len(lines) == 1 and lines[0] is block:
                where = (
                    "not inside begin/end, if or while; this script is one begin( ) ... end "
                    "block, so put the jump point and its goto outside it"
                )
            problems.append(
                _fail(
                    "jump points are only allowed at the top level of the script, "
                    f'{where} (jump point "{statement.name}")',
                    statement,
                )
            )
        if isinstance(statement, Break | Continue) and not in_loop:
            word = "break" if isinstance(statement, Break) else "continue"
            problems.append(_fail(f"{word} is only allowed inside a while loop", statement))
        if isinstance(statement, Block):
            todo.extend(
                (child, in_loop, statement, depth + 1) for child in reversed(statement.body)
            )
        elif isinstance(statement, If):
            todo.extend(
                (body, in_loop, block, depth + 1) for _, body in reversed(statement.branches)
            )
        elif isinstance(statement, While):
            todo.append((statement.body, True, block, depth + 1))
    return problems


@functools.cache
def _lark() -> Lark:
    grammar = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    cache = parser_cache_file(grammar)
    return Lark(
        grammar,
        parser="lalr",
        lexer=Lexer,
        transformer=_Builder(),
        maybe_placeholders=True,
        propagate_positions=False,
        cache=False if cache is None else str(cache),
    )


_TABLES: list[tuple[Lark, Tables]] = []


def _tables() -> Tables:
    """The lean loop's tables of the process's parser (made again if the parser is)."""
    parser = _lark()
    if not _TABLES or _TABLES[0][0] is not parser:
        _TABLES[:] = [(parser, Tables(parser))]
    return _TABLES[0][1]


def parse(source: str) -> Script:
    """Parse ``source``; raise ``ParseError`` if it is not a valid TScript script.

    The lean LALR loop (``tscript.lalr``) parses it; if it stops for any reason, lark's own
    parser parses it again and its error is the one raised (what was expected, and where)."""
    try:
        root: Block = _tables().run(tokenize(source))
    except Exception:
        return parse_with_lark(source)
    return Script(root, source)


def parse_with_lark(source: str) -> Script:
    """``parse`` through lark's own parser loop (what ``parse`` falls back to for errors)."""
    try:
        root: Block = _lark().parse(source)  # type: ignore[assignment]
    except ParseError as error:
        error.source_line = source_line(source, error.line)
        raise
    except VisitError as error:
        inner = error.orig_exc
        if isinstance(inner, ParseError):
            inner.source_line = source_line(source, inner.line)
            raise inner from None
        raise
    except UnexpectedInput as error:
        parse_error = translate(error, source)
        parse_error.source_line = source_line(source, parse_error.line)
        raise parse_error from None
    except RecursionError:
        raise ParseError("the script is nested too deeply", 1, 1, source_line(source, 1)) from None
    return Script(root, source)


# Blocks a skipped statement opened are opened again (so their lines are still checked and
# their ``end`` is not an error of its own); one opened by a while is opened as a loop's body,
# so a break inside it is not reported.
_OPEN_BLOCK = ("BEGIN", "LPAR", "RPAR", "NL")
_OPEN_LOOP = ("WHILE", "TRUE", "DO", *_OPEN_BLOCK)
_CLOSE_BLOCK = ("END", "NL")
_MAX_CLOSES = MAX_NESTING + 1


def _feed(state: ParserState[Any], kinds: Sequence[str], where: Token) -> bool:
    """Feed made-up tokens of ``kinds`` (at ``where``); False, and ``state`` unusable, if the
    parser refuses one."""
    try:
        for kind in kinds:
            state.feed_token(Token.new_borrow_pos(kind, kind.lower(), where))
    except UnexpectedInput:
        return False
    return True


def parse_all(source: str) -> tuple[Script | None, list[ParseError]]:
    """Parse ``source`` and go on after errors: every error found, in source order, at most
    one per line (the first; later ones on a line are mostly its echoes), and the script
    made of the statements that parsed (``None`` if the parser could not finish).

    After an error the rest of the statement is skipped and parsing restarts at the next
    statement of the same block. ``parse_all`` finds no error exactly when ``parse`` raises
    none, and then the script is the same."""
    recovery = Recovery()
    errors = recovery.errors
    sink = _SINK.set(errors)
    try:
        root = _parse_recovering(source, recovery)
    except RecursionError:
        errors.append(ParseError("the script is nested too deeply", 1, 1))
        root = None
    finally:
        _SINK.reset(sink)
    first: dict[int, ParseError] = {}
    for error in sorted(errors, key=lambda e: (e.line, e.column)):
        if error.line not in first:
            error.source_line = source_line(source, error.line)
            first[error.line] = error
    return (None if root is None else Script(root, source)), list(first.values())


def _parse_recovering(source: str, recovery: Recovery) -> Block | None:
    interactive = _lark().parse_interactive("")
    state: ParserState[Any] = interactive.parser_state
    checkpoint = state.copy(deepcopy_values=False)
    statement: list[Token] = []  # the tokens since the checkpoint
    tokens = tokenize(source, recovery)
    last = Token("NL", "", 0, 1, 1)
    for token in tokens:
        last = token
        try:
            state.feed_token(token)
        except UnexpectedInput as error:
            if token.type != "ERROR":  # the lexer has reported that one
                recovery.errors.append(_translate_at(error, interactive.parser, state, source))
            statement.append(token)
            recovery.reset = True
            while token.type != "NL":
                token = next(tokens, last)
                if token is last:
                    break
                last = token
                statement.append(token)
            kinds = [t.type for t in statement]
            opened = kinds.count("BEGIN") - kinds.count("END")
            state = checkpoint.copy(deepcopy_values=False)
            restart = _OPEN_LOOP if "WHILE" in kinds else _OPEN_BLOCK
            for _ in range(abs(opened)):
                attempt = state.copy(deepcopy_values=False)
                if not _feed(attempt, restart if opened > 0 else _CLOSE_BLOCK, token):
                    break
                state = attempt
            checkpoint = state.copy(deepcopy_values=False)
            statement = []
            continue
        if token.type == "NL":
            checkpoint = state.copy(deepcopy_values=False)
            statement = []
        else:
            statement.append(token)
    end = Token.new_borrow_pos("$END", "", last)
    for closed in range(_MAX_CLOSES):
        attempt = state.copy(deepcopy_values=False)
        try:
            root: Block = attempt.feed_token(end, True)
        except UnexpectedInput as error:
            if not closed:  # the first time only: the blocks closed below are that error
                recovery.errors.append(_translate_at(error, interactive.parser, attempt, source))
        else:
            return root
        # blocks left open at the end: close them, so their lines are still checked
        if not _feed(state, _CLOSE_BLOCK, last):
            return None
    return None


def _translate_at(
    error: UnexpectedInput, parser: Any, state: ParserState[Any], source: str
) -> ParseError:
    """``translate`` for an error met while feeding tokens by hand: the tokens the parser
    would have accepted are worked out on copies, with the AST builder's reports muted."""
    copy = state.copy(deepcopy_values=False)
    error.interactive_parser = InteractiveParser(parser, copy, None)  # type: ignore[arg-type]
    muted = _SINK.set([])
    try:
        return translate(error, source)
    finally:
        _SINK.reset(muted)
