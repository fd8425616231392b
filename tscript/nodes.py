"""The TScript abstract syntax tree: frozen dataclasses, each with a 1-based line and column.

Expressions: ``Constant``, ``Variable``, ``Item``, ``Array``, ``MapLiteral``, ``Call``,
``Infix``, ``Not``, ``Exists``. Statements: any expression (evaluated and discarded),
``Assignment``, ``If``, ``While``, ``Block``, ``JumpPoint``, ``Goto``, ``Break``, ``Continue``,
``Pass``. ``Script.root`` is the outermost ``Block``: the whole script, or the script's only
statement when that statement is a ``begin( ... ) ... end`` block (its options then apply to
the whole script, as in the original).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeAlias

__all__ = [
    "Array",
    "Assignment",
    "Block",
    "Break",
    "Call",
    "Constant",
    "ConstantValue",
    "Continue",
    "Exists",
    "Expression",
    "Goto",
    "If",
    "Infix",
    "Item",
    "JumpPoint",
    "MapLiteral",
    "Not",
    "Pass",
    "Script",
    "Statement",
    "Variable",
    "While",
    "walk",
]

ConstantValue: TypeAlias = int | float | str | bool | timedelta | None


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Constant(Node):
    value: ConstantValue


@dataclass(frozen=True, slots=True, eq=False)
class Variable(Node):
    """``name`` or ``module.name`` (a module value)."""

    module: str | None
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Item(Node):
    """``name[index]`` or ``module.name[index]``."""

    module: str | None
    name: str
    index: Expression


@dataclass(frozen=True, slots=True, eq=False)
class Array(Node):
    items: tuple[Expression, ...]


@dataclass(frozen=True, slots=True, eq=False)
class MapLiteral(Node):
    """``{ key=value, ... }`` in source order (keys are unique)."""

    entries: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True, slots=True, eq=False)
class Call(Node):
    """``name( p=v, ... )`` or ``module.name( ... )``; parameters in source order;
    ``positions``: the line and column of each parameter's name."""

    module: str | None
    name: str
    parameters: tuple[tuple[str, Expression], ...]
    positions: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Infix(Node):
    operator: str
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True, eq=False)
class Not(Node):
    value: Expression


@dataclass(frozen=True, slots=True, eq=False)
class Exists(Node):
    target: Variable | Item


@dataclass(frozen=True, slots=True, eq=False)
class Assignment(Node):
    target: Variable | Item
    value: Expression


@dataclass(frozen=True, slots=True, eq=False)
class If(Node):
    """Branches in order; the ``else`` branch has condition ``None``."""

    branches: tuple[tuple[Expression | None, Statement], ...]


@dataclass(frozen=True, slots=True, eq=False)
class While(Node):
    condition: Expression
    body: Statement


@dataclass(frozen=True, slots=True, eq=False)
class Block(Node):
    """``begin( description=..., expected_time=..., max_time=... ) ... end``."""

    body: tuple[Statement, ...]
    description: ConstantValue = None
    expected_time: ConstantValue = None
    max_time: ConstantValue = None


@dataclass(frozen=True, slots=True, eq=False)
class JumpPoint(Node):
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Goto(Node):
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Break(Node):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Continue(Node):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Pass(Node):
    pass


Expression: TypeAlias = (
    Constant | Variable | Item | Array | MapLiteral | Call | Infix | Not | Exists
)
Statement: TypeAlias = (
    Expression | Assignment | If | While | Block | JumpPoint | Goto | Break | Continue | Pass
)


@dataclass(frozen=True, slots=True, eq=False)
class Script:
    """A parsed script: its root block and the source it came from."""

    root: Block
    source: str


def walk(root: Node) -> Iterator[tuple[Node, bool]]:
    """Every node under ``root`` (itself included), each with whether it is the target of an
    ``exists( ... )``. A work list, not recursion: nesting may be deeper than Python's limit."""
    todo: list[tuple[Node, bool]] = [(root, False)]
    while todo:
        node, asked = todo.pop()
        yield node, asked
        match node:
            case Item(index=index):
                todo.append((index, False))
            case Call(parameters=parameters):
                todo.extend((value, False) for _, value in reversed(parameters))
            case Assignment(target=target, value=value):
                todo.extend(((value, False), (target, False)))
            case Exists(target=target):
                todo.append((target, True))
            case Infix(left=left, right=right):
                todo.extend(((right, False), (left, False)))
            case Not(value=value):
                todo.append((value, False))
            case Array(items=items):
                todo.extend((item, False) for item in reversed(items))
            case MapLiteral(entries=entries):
                todo.extend((value, False) for _, value in reversed(entries))
            case If(branches=branches):
                for condition, body in reversed(branches):
                    todo.append((body, False))
                    if condition is not None:
                        todo.append((condition, False))
            case While(condition=condition, body=body):
                todo.extend(((body, False), (condition, False)))
            case Block(body=body):
                todo.extend((statement, False) for statement in reversed(body))
