"""What a script refers to: the module values it reads, tests or assigns, and the functions it
calls, found by walking its syntax tree once.

A module is only ever named with its qualified ``module.name``, so this is everything a run of
the script can touch in its modules: a host that prepares data for its modules (a job reads
rows before a step) prepares only what is referred to. Words in strings and comments are not
references.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tscript.nodes import Call, Item, Script, Variable, walk
from tscript.parser import parse

__all__ = ["References", "references"]


@dataclass(frozen=True, slots=True)
class References:
    """The names a script uses. ``values``: ``(module, name)`` of every module value it reads,
    indexes, tests with ``exists`` or assigns; ``functions``: ``(module, name)`` of every
    function it calls, ``module`` None for the built-in ones; ``modules``: every module named
    by either."""

    values: frozenset[tuple[str, str]]
    functions: frozenset[tuple[str | None, str]]
    modules: frozenset[str]

    def uses(self, module: str, name: str | None = None) -> bool:
        """Whether the script names ``module`` at all, or (with ``name``) that value or
        function of it."""
        if name is None:
            return module in self.modules
        return (module, name) in self.values or (module, name) in self.functions


def references(script: Script | str) -> References:
    """What ``script`` (a parsed ``Script``, or source text, parsed here: ``ParseError`` when
    it does not parse) refers to in its modules. Source text is remembered for the next call
    with the same text, so asking before every run of a script costs a look-up."""
    if isinstance(script, str):
        return _of_source(script)
    return _walk(script)


@functools.lru_cache(maxsize=256)
def _of_source(source: str) -> References:
    return _walk(parse(source))


def _walk(script: Script) -> References:
    values: set[tuple[str, str]] = set()
    functions: set[tuple[str | None, str]] = set()
    for node, _ in walk(script.root):
        match node:
            case Variable(module=str() as module, name=name):
                values.add((module, name))
            case Item(module=str() as module, name=name):
                values.add((module, name))
            case Call(module=module, name=name):
                functions.add((module, name))
    modules = {module for module, _ in values}
    modules.update(module for module, _ in functions if module is not None)
    return References(frozenset(values), frozenset(functions), frozenset(modules))
