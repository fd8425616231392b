"""Compile a parsed script into the flat program the runner's state machine executes.

The runner never recurses over the AST: it walks this flat list of instructions with an
explicit program counter, a value stack, a block stack and a handler stack (for ``exists``).
Every point between two instructions is a point where the runner can stop and be saved.

Each instruction records:

* ``cost`` — the steps it is charged. Steps count AST node visits exactly like the original
  runner (every node costs 1 when first entered, scope lines cost 1, ``not v`` costs 2 plus
  ``v``), charged in the order the original enters nodes, so the step ceiling stops a runaway
  script at the same statement the original would have;
* ``line`` — the line of the innermost statement the instruction belongs to;
* ``scope`` — the position in the enclosing blocks, for progress reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    Not,
    Pass,
    Script,
    Statement,
    Variable,
    While,
)
from tscript.values import OPERATORS

__all__ = ["BlockInfo", "Op", "Program", "compile_script"]


class Op:
    """Opcodes (plain ints: the dispatch loop compares them)."""

    VAR = 0  # push variables[arg]
    CONST = 1  # push arg
    BINOP = 2  # right = pop; top = arg(top, right)
    JUMP_IF_FALSE = 3  # if not pop: pc = arg
    STORE = 4  # variables[arg] = copy(pop)
    JUMP = 5  # pc = arg
    POP = 6  # discard top
    NOP = 7
    CALL = 8  # arg = (module, name, parameter names)
    MODVAL = 9  # push module value, arg = (module, name)
    ITEM = 10  # index = pop; push container[index], arg = (module, name)
    ARRAY = 11  # arg = count
    MAP = 12  # arg = keys
    NOT = 13
    AND = 14  # if not top: pc = arg (keep top) else pop
    OR = 15  # if top: pc = arg (keep top) else pop
    EXISTS_BEGIN = 16  # push handler (arg = pc after EXISTS_END, stack depth)
    EXISTS_END = 17  # pop handler; top = True
    STORE_MODULE = 18  # arg = (module, name)
    STORE_ITEM = 19  # value = pop, index = pop; arg = (module, name)
    BLOCK_ENTER = 20  # arg = block id
    BLOCK_EXIT = 21
    UNWIND_JUMP = 22  # arg = (target pc, block depth): break / continue
    GOTO = 23  # arg = jump point name
    HALT = 24
    LOOP = 25  # pc = arg: the back edge of a while loop (checks block max_time)


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """Static facts of one ``begin( ... ) ... end`` block (or of the whole script)."""

    line: int
    children: int
    description: Any
    expected_time: Any
    max_time: Any


@dataclass(slots=True)
class Program:
    ops: list[int] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    scopes: list[int] = field(default_factory=list)
    paths: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    blocks: list[BlockInfo] = field(default_factory=list)
    jump_points: dict[str, int] = field(default_factory=dict)


class _Compiler:
    def __init__(self) -> None:
        self.program = Program()
        self.pending = 0  # steps to charge on the next instruction
        self.line = 0
        self.path: tuple[tuple[int, int], ...] = ()
        self.path_index: dict[tuple[tuple[int, int], ...], int] = {}
        self.scope = self._path_id(())
        self.depth = 0  # runtime block stack depth at this point
        self.loops: list[tuple[int, list[int], int]] = []  # (top, breaks, depth) per while

    def _path_id(self, path: tuple[tuple[int, int], ...]) -> int:
        index = self.path_index.get(path)
        if index is None:
            index = len(self.program.paths)
            self.program.paths.append(path)
            self.path_index[path] = index
        return index

    def emit(self, op: int, arg: Any = None, cost: int = 0) -> int:
        program = self.program
        pc = len(program.ops)
        program.ops.append(op)
        program.args.append(arg)
        program.costs.append(cost + self.pending)
        program.lines.append(self.line)
        program.scopes.append(self.scope)
        self.pending = 0
        return pc

    def label(self) -> int:
        """The pc of the next instruction, as a jump target (pending charges stay before it)."""
        if self.pending:
            self.emit(Op.NOP)
        return len(self.program.ops)

    def patch(self, pc: int, arg: Any) -> None:
        self.program.args[pc] = arg

    # expressions: work list of (node, phase) instead of recursion ---------------------
    def expression(self, root: Expression) -> None:
        """Emit ``root`` in post-order. Phase 0 is a node's first visit (its step is charged
        to the next instruction: the original enters nodes before their children), phase 1
        comes after its children; an ``int`` entry is the pc of a jump to patch (phase 2:
        the end of ``exists``, phase 3: the end of a short-circuit ``and``/``or``)."""
        todo: list[tuple[Any, int]] = [(root, 0)]
        emit = self.emit
        while todo:
            node, phase = todo.pop()
            if phase == 0:
                self.pending += 1
            if isinstance(node, Constant):
                emit(Op.CONST, node.value)
            elif isinstance(node, Variable):
                if node.module is None:
                    emit(Op.VAR, node.name)
                else:
                    emit(Op.MODVAL, (node.module, node.name))
            elif isinstance(node, Infix):
                if node.operator in ("and", "or"):
                    if phase == 0:
                        todo.append((node, 1))
                        todo.append((node.left, 0))
                    elif phase == 1:
                        jump = emit(Op.AND if node.operator == "and" else Op.OR)
                        todo.append((jump, 3))
                        todo.append((node.right, 0))
                elif phase == 0:
                    todo.append((node, 1))
                    todo.append((node.right, 0))
                    todo.append((node.left, 0))
                else:
                    emit(Op.BINOP, OPERATORS[node.operator])
            elif isinstance(node, int):
                if phase == 2:  # end of exists: a NotDefined inside continues after it
                    end = emit(Op.EXISTS_END)
                    self.patch(node, end + 1)
                else:  # end of and/or: the short-circuit jump lands here
                    self.patch(node, self.label())
            elif isinstance(node, Not):
                if phase == 0:
                    todo.append((node, 1))
                    todo.append((node.value, 0))
                else:
                    emit(Op.NOT, cost=1)
            elif isinstance(node, Item):
                if phase == 0:
                    todo.append((node, 1))
                    todo.append((node.index, 0))
                else:
                    emit(Op.ITEM, (node.module, node.name))
            elif isinstance(node, Array):
                if phase == 0:
                    todo.append((node, 1))
                    todo.extend((item, 0) for item in reversed(node.items))
                else:
                    emit(Op.ARRAY, len(node.items))
            elif isinstance(node, MapLiteral):
                if phase == 0:
                    todo.append((node, 1))
                    todo.extend((value, 0) for _, value in reversed(node.entries))
                else:
                    emit(Op.MAP, tuple(key for key, _ in node.entries))
            elif isinstance(node, Call):
                if phase == 0:
                    todo.append((node, 1))
                    todo.extend((value, 0) for _, value in reversed(node.parameters))
                else:
                    names = tuple(name for name, _ in node.parameters)
                    emit(Op.CALL, (node.module, node.name, names))
            elif isinstance(node, Exists):
                begin = emit(Op.EXISTS_BEGIN)
                todo.append((begin, 2))
                todo.append((node.target, 0))
            else:
                raise TypeError(f"not an expression: {node!r}")

    # statements -----------------------------------------------------------------------
    def statement(self, node: Statement) -> None:
        saved_line = self.line
        self.line = node.line
        if isinstance(node, Assignment):
            self.pending += 1
            target = node.target
            if isinstance(target, Item):
                self.expression(target.index)
                self.expression(node.value)
                self.emit(Op.STORE_ITEM, (target.module, target.name))
            else:
                self.expression(node.value)
                if target.module is None:
                    self.emit(Op.STORE, target.name)
                else:
                    self.emit(Op.STORE_MODULE, (target.module, target.name))
        elif isinstance(node, If):
            self.pending += 1
            ends: list[int] = []
            for condition, body in node.branches:
                if condition is None:
                    self.statement(body)
                    break
                self.line = node.line
                self.expression(condition)
                skip = self.emit(Op.JUMP_IF_FALSE)
                self.statement(body)
                ends.append(self.emit(Op.JUMP))
                self.patch(skip, self.label())
            end = self.label()
            for jump in ends:
                self.patch(jump, end)
        elif isinstance(node, While):
            self.pending += 1
            top = self.label()
            self.expression(node.condition)
            exit_jump = self.emit(Op.JUMP_IF_FALSE)
            self.loops.append((top, [], self.depth))
            self.statement(node.body)
            _, breaks, _ = self.loops.pop()
            self.line = node.line
            self.emit(Op.LOOP, top)
            end = self.label()
            self.patch(exit_jump, end)
            for jump in breaks:
                self.patch(jump, (end, self.depth))
        elif isinstance(node, Block):
            self.pending += 1
            self.block(node)
        elif isinstance(node, JumpPoint):
            self.pending += 1
            self.program.jump_points[node.name] = self.emit(Op.NOP)
        elif isinstance(node, Goto):
            self.pending += 1
            self.emit(Op.GOTO, node.name)
        elif isinstance(node, Break):
            self.pending += 1
            self.loops[-1][1].append(self.emit(Op.UNWIND_JUMP))
        elif isinstance(node, Continue):
            self.pending += 1
            top, _, depth = self.loops[-1]
            self.emit(Op.UNWIND_JUMP, (top, depth))
        elif isinstance(node, Pass):
            self.pending += 1
            self.emit(Op.NOP)
        else:
            self.expression(node)
            self.emit(Op.POP)
        self.line = saved_line

    def block(self, node: Block) -> None:
        program = self.program
        block_id = len(program.blocks)
        program.blocks.append(
            BlockInfo(
                node.line, len(node.body), node.description, node.expected_time, node.max_time
            )
        )
        self.emit(Op.BLOCK_ENTER, block_id)
        saved_path, saved_scope = self.path, self.scope
        self.depth += 1
        for index, child in enumerate(node.body):
            self.path = (*saved_path, (block_id, index))
            self.scope = self._path_id(self.path)
            self.pending += 1  # the line itself
            self.statement(child)
        self.path = (*saved_path, (block_id, len(node.body)))
        self.scope = self._path_id(self.path)
        self.emit(Op.BLOCK_EXIT)
        self.depth -= 1
        self.path, self.scope = saved_path, saved_scope


def compile_script(script: Script) -> Program:
    """Compile ``script`` into a ``Program``."""
    compiler = _Compiler()
    compiler.line = script.root.line
    compiler.pending = 1  # the root scope itself
    compiler.block(script.root)
    compiler.emit(Op.HALT)
    return compiler.program
