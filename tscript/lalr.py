"""A lean LALR(1) loop over the tables and callbacks of TScript's lark parser.

lark's own loop (``ParserState.feed_token``) looks each action up in a table of ``Shift`` /
``Reduce`` objects and checks assertions for every token; for a script that parses, that
loop was most of the time of a parse. ``Tables`` turns the same parse table into plain
dicts (a shift is the next state, a reduce the rule's length, its AST callback and the
name of the rule) once per process, and ``Tables.run`` drives the same LALR(1) automaton
with the same callbacks: the same script gives the same AST.

It has no error handling of its own: on any token the table has no action for it raises
``Rejected``, and the caller parses the script again with lark, whose error (what was
expected, where) is the one reported. So the messages stay exactly lark's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lark import Lark, Token
from lark.parsers.lalr_analysis import Shift

__all__ = ["Rejected", "Tables"]

_Reduce = tuple[int, Callable[[list[Any]], Any], str]


class Rejected(Exception):
    """The script does not parse (a token with no action); lark is to say why."""


class Tables:
    """The parse table of ``parser`` (an LALR ``Lark`` with an inline transformer) as
    plain dicts, one per state: terminal or rule name to the next state (a shift or a
    goto) or to ``(length, callback, rule name)`` (a reduce)."""

    __slots__ = ("_end", "_rows", "_start")

    def __init__(self, parser: Lark) -> None:
        lalr = parser.parser.parser.parser  # ParsingFrontend -> LALR_Parser -> _Parser
        table = lalr.parse_table
        callbacks = lalr.callbacks
        if any(isinstance(name, str) for name in callbacks):
            raise ValueError("terminal callbacks are not supported by the lean loop")
        (start,) = parser.options.start
        rows: dict[Any, dict[str, int | _Reduce]] = {}
        for state, actions in table.states.items():
            row: dict[str, int | _Reduce] = {}
            for name, (action, argument) in actions.items():
                if action is Shift:
                    row[name] = argument
                else:
                    row[name] = (len(argument.expansion), callbacks[argument], argument.origin.name)
            rows[state] = row
        self._rows = rows
        self._start = table.start_states[start]
        self._end = table.end_states[start]

    def run(self, tokens: Iterable[Token]) -> Any:
        """The value of the start rule for ``tokens`` (without ``$END``: it is added)."""
        rows = self._rows
        end = self._end
        states = [self._start]
        values: list[Any] = []
        row = rows[self._start]
        push_state = states.append
        push_value = values.append
        for token in tokens:
            kind = token.type
            while True:
                action = row.get(kind)
                if action.__class__ is int:
                    push_state(action)
                    push_value(token)
                    row = rows[action]
                    break
                if action is None:
                    raise Rejected(kind)
                size, callback, name = action  # type: ignore[misc]
                if size:
                    children = values[-size:]
                    del values[-size:]
                    del states[-size:]
                else:
                    children = []
                push_value(callback(children))
                goto = rows[states[-1]][name]
                push_state(goto)
                row = rows[goto]
        while True:
            action = row.get("$END")
            if action is None or action.__class__ is int:
                raise Rejected("$END")
            size, callback, name = action  # type: ignore[misc]
            if size:
                children = values[-size:]
                del values[-size:]
                del states[-size:]
            else:
                children = []
            push_value(callback(children))
            goto = rows[states[-1]][name]
            push_state(goto)
            if goto == end:
                return values[-1]
            row = rows[goto]
