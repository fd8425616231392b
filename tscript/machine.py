"""The execution core of the runner: the state machine that walks a compiled program.

``Machine`` holds the whole mutable state (program counter, value stack, ``exists`` handler
stack, block stack with timers, variables, step counters, the pending external function and
its cookie) and executes instructions in a loop with an explicit program counter; nothing
recurses over the script's structure. ``tscript.runner.Runner`` adds the public API on top
(running slices, the remote protocol, progress, JSON state).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tscript.builtins import Message, builtins
from tscript.checker import signature_of
from tscript.compiler import Op, Program
from tscript.errors import (
    ExecutionError,
    Interrupt,
    NotDefinedError,
    ParameterError,
    Pause,
    RuntimeSignal,
    ScriptError,
    StepLimitExceeded,
    TScriptError,
)
from tscript.plugins import ExternalFunction, FunctionFactory, Module, Value
from tscript.values import copy_value, to_literal

__all__ = ["ABORTED", "DONE", "RUNNING", "Machine", "Pending", "RunResult"]

RUNNING = "running"
DONE = "done"
ABORTED = "aborted"
_IMMUTABLE = frozenset({int, float, str, bool, type(None), timedelta, complex})
_KINDS = {
    list: "an array",
    dict: "a map",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "none",
    timedelta: "a time",
}
_SHOWN_KEYS = 10


def _item_text(module: str | None, name: str, index: Any) -> str:
    where = name if module is None else f"{module}.{name}"
    return f"{where}[{to_literal(index)}]"


def _missing_item(module: str | None, name: str, container: Any, index: Any) -> str:
    """What ``Not Defined`` names for ``name[index]`` that does not exist."""
    where = _item_text(module, name, index)
    if isinstance(container, dict):
        keys = [to_literal(key) for key in list(container)[:_SHOWN_KEYS]]
        if len(container) > _SHOWN_KEYS:
            keys.append("...")
        have = ", ".join(keys) if keys else "none"
        return f"{where}: no key {to_literal(index)} (keys: {have})"
    return f"{where}: index {to_literal(index)} out of range (length {len(container)})"


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one ``run()`` slice ended with: ``done``, ``aborted``, ``budget``, ``waiting``
    (a function is not finished; ``message`` says why) or ``message`` (``message()``)."""

    state: str
    message: str = ""
    line: int | None = None


@dataclass(slots=True)
class Pending:
    """The external function the script is waiting on."""

    module: str | None
    function: str
    dispatch_module: str | None
    handler: ExternalFunction
    dispatched: bool = False


class Machine:
    """The state and the instruction loop; see ``tscript.runner.Runner`` for the API."""

    def __init__(self, program: Program, *, max_steps: int, clock: Callable[[], float]) -> None:
        self.program = program
        self.max_steps = max_steps
        self.clock = clock
        self.variables: dict[str, Any] = {}
        self.cookie: str | None = None
        self._modules: dict[str, Module] = {}
        self._values: dict[str, Mapping[str, Value]] = {}
        self._functions: dict[str, Mapping[str, FunctionFactory]] = {}
        self._builtins = builtins(clock)
        self._state = RUNNING
        self._pc = 0
        self._stack: list[Any] = []
        self._handlers: list[list[int]] = []
        self._blocks: list[list[Any]] = []  # [block id, start time, max_time deadline]
        self._steps = 0
        self._ceiling_base = 0
        self._charged = False  # the instruction at pc was charged already (a retried call)
        self._pending: Pending | None = None
        self._timed = 0  # blocks on the block stack with a max_time deadline still pending

    @property
    def line(self) -> int | None:
        """The line of the statement being executed (``None`` once finished)."""
        if self._state != RUNNING:
            return None
        return self.program.lines[self._pc]

    def check_deadlines(self) -> None:
        """Raise ``Pause("Max Time Elapsed")`` once for a block whose ``max_time`` passed.

        Checked where a script can spend time: before a call (also every time a waiting call
        is polled again), at the back edge of a loop, at goto and continue; never at slice
        boundaries, so the budget of a slice does not change what a script does. After the
        pause the block runs on without a deadline."""
        now = self.clock()
        for record in self._blocks:
            if record[2] is not None and now >= record[2]:
                record[2] = None
                self._timed = self._count_timed()
                self._charged = True  # resuming re-executes this instruction, already paid
                raise Pause("Max Time Elapsed")

    def _count_timed(self) -> int:
        return sum(1 for record in self._blocks if record[2] is not None)

    def execute(self, budget: int) -> RunResult:
        """Execute instructions until the slice's ``budget`` of steps is used up, the script
        ends, a function waits or a signal is raised. The hot opcodes are dispatched inline;
        the rest go through ``_other``."""
        program = self.program
        ops = program.ops
        args = program.args
        costs = program.costs
        stack = self._stack
        push = stack.append
        pop = stack.pop
        variables = self.variables
        pc = self._pc
        steps = self._steps
        if self._charged:
            steps -= costs[pc]
            self._charged = False
        slice_end = steps + budget
        ceiling = self._ceiling_base + self.max_steps
        while True:
            try:
                while True:
                    if steps >= slice_end:
                        self._pc = pc
                        self._steps = steps
                        return RunResult("budget")
                    cost = costs[pc]
                    if steps + cost > ceiling:
                        raise StepLimitExceeded(
                            f"the script ran more than {self.max_steps} steps without stopping"
                        )
                    steps += cost
                    op = ops[pc]
                    if op == 0:  # VAR
                        try:
                            push(variables[args[pc]])
                        except KeyError:
                            raise NotDefinedError(args[pc]) from None
                        pc += 1
                    elif op == 1:  # CONST
                        push(args[pc])
                        pc += 1
                    elif op == 2:  # BINOP
                        right = pop()
                        stack[-1] = args[pc](stack[-1], right)
                        pc += 1
                    elif op == 3:  # JUMP_IF_FALSE
                        pc = pc + 1 if pop() else args[pc]
                    elif op == 4:  # STORE
                        value = pop()
                        variables[args[pc]] = (
                            value if type(value) in _IMMUTABLE else copy_value(value)
                        )
                        pc += 1
                    elif op == 5:  # JUMP
                        pc = args[pc]
                    elif op == 25:  # LOOP
                        if self._timed:
                            self.check_deadlines()
                        pc = args[pc]
                    elif op == 6:  # POP
                        pop()
                        pc += 1
                    elif op == 7:  # NOP
                        pc += 1
                    elif op == 8:  # CALL
                        self._pc = pc
                        self._steps = steps
                        outcome = self._call(args[pc])
                        pc = self._pc
                        if outcome is not None:
                            return outcome
                    else:
                        pc = self._other(op, args[pc], pc)
                        if pc < 0:
                            self._pc = 0
                            self._steps = steps
                            return RunResult(DONE)
            except NotDefinedError as error:
                if not self._handlers or (ops[pc] == Op.CALL and self._pc != pc):
                    self._fail(pc, steps, error)
                    raise
                # inside exists( ... ): the reference does not exist
                target, depth = self._handlers.pop()
                del stack[depth:]
                push(False)
                self._pending = None
                self._charged = False
                pc = target
            except RuntimeSignal as error:
                self._fail(pc, steps, error)
                raise
            except Exception as error:
                failure = ScriptError(f"{type(error).__name__}: {error}")
                self._fail(pc, steps, failure)
                raise failure from error

    def _fail(self, pc: int, steps: int, error: RuntimeSignal) -> None:
        """Record where an exception left the machine (a completed call moved pc itself)."""
        if self.program.ops[pc] != Op.CALL:
            self._pc = pc
        self._steps = steps
        if error.line is None:
            error.line = self.program.lines[pc]

    def _other(self, op: int, arg: Any, pc: int) -> int:
        """The less frequent instructions; returns the next pc (-1 when the script ends)."""
        stack = self._stack
        if op == Op.MODVAL:
            stack.append(self._get(arg[0], arg[1]))
        elif op == Op.ITEM:
            index = stack.pop()
            module, name = arg
            if module is None:
                try:
                    container = self.variables[name]
                except KeyError:
                    raise NotDefinedError(name) from None
            else:
                container = self._get(module, name)
            try:
                stack.append(container[index])
            except (IndexError, KeyError):
                raise NotDefinedError(_missing_item(module, name, container, index)) from None
            except TypeError:
                kind = _KINDS.get(type(container), type(container).__name__)
                where = _item_text(module, name, index)
                raise ScriptError(
                    f"{where}: {kind} cannot be indexed with {to_literal(index)}"
                ) from None
        elif op == Op.ARRAY:
            if arg:
                items = stack[-arg:]
                del stack[-arg:]
                stack.append(items)
            else:
                stack.append([])
        elif op == Op.MAP:
            count = len(arg)
            if count:
                entries = dict(zip(arg, stack[-count:], strict=True))
                del stack[-count:]
                stack.append(entries)
            else:
                stack.append({})
        elif op == Op.NOT:
            stack[-1] = not stack[-1]
        elif op == Op.AND:
            if not stack[-1]:
                return int(arg)
            stack.pop()
        elif op == Op.OR:
            if stack[-1]:
                return int(arg)
            stack.pop()
        elif op == Op.EXISTS_BEGIN:
            self._handlers.append([arg, len(stack)])
        elif op == Op.EXISTS_END:
            self._handlers.pop()
            stack[-1] = True
        elif op == Op.STORE_MODULE:
            self._set(arg[0], arg[1], stack.pop())
        elif op == Op.STORE_ITEM:
            value = stack.pop()
            index = stack.pop()
            module, name = arg
            if module is not None:
                raise ParameterError("target", "Can only assign to variables")
            try:
                container = self.variables[name]
            except KeyError:
                raise ScriptError(f'item assignment to undefined variable "{name}"') from None
            container[index] = copy_value(value)
        elif op == Op.BLOCK_ENTER:
            info = self.program.blocks[arg]
            now = self.clock()
            deadline = None
            if info.max_time is not None:
                if not isinstance(info.max_time, timedelta):
                    raise ScriptError("max_time must be a time such as 1:30")
                deadline = now + info.max_time.total_seconds()
            self._blocks.append([arg, now, deadline])
            if deadline is not None:
                self._timed += 1
        elif op == Op.BLOCK_EXIT:
            if self._blocks.pop()[2] is not None:
                self._timed -= 1
        elif op == Op.UNWIND_JUMP:
            if self._timed:
                self.check_deadlines()
            target, depth = arg
            del self._blocks[depth:]
            self._timed = self._count_timed()
            return int(target)
        elif op == Op.GOTO:
            if self._timed:
                self.check_deadlines()
            target = self.program.jump_points.get(arg)
            if target is None:
                raise NotDefinedError(arg)
            del self._blocks[1:]
            self._timed = self._count_timed()
            stack.clear()
            self._handlers.clear()
            return target
        elif op == Op.HALT:
            self._state = DONE
            self._blocks.clear()
            self._timed = 0
            stack.clear()
            return -1
        else:  # pragma: no cover - the compiler emits no other opcode
            raise ScriptError(f"unknown instruction {op}")
        return pc + 1

    # functions ----------------------------------------------------------------------
    def _call(self, arg: tuple[str | None, str, tuple[str, ...]]) -> RunResult | None:
        if self._timed:
            self.check_deadlines()
        module, name, names = arg
        count = len(names)
        stack = self._stack
        pending = self._pending
        if pending is None:
            parameters = dict(zip(names, stack[len(stack) - count :], strict=True))
            factory = self._factory(module, name)
            where = module if module is not None else "<builtin>"
            try:
                made = factory()
            except TScriptError:
                raise
            except Exception as error:
                raise ScriptError(
                    f'Handler init function failed for "{name}" in module "{where}": {error}'
                ) from error
            dispatch_module = module
            if isinstance(made, tuple):
                dispatch_module, handler = made
            else:
                handler = made
            if module is not None:
                _check_parameters(module, name, handler, parameters)
            if isinstance(handler, ExternalFunction):
                handler.runner = self
                try:
                    handler.setup(parameters)
                except Interrupt as interrupt:
                    self._charged = True
                    return RunResult("waiting", interrupt.message, self.line)
                except (Pause, ExecutionError):
                    self._charged = True
                    raise
                except TScriptError:
                    raise
                except Exception as error:
                    raise self._handler_error(name, where, error) from error
                self.cookie = str(uuid.uuid4())
                pending = self._pending = Pending(module, name, dispatch_module, handler)
            else:
                try:
                    value = handler(**parameters)
                except Interrupt as interrupt:
                    self._charged = True
                    return RunResult("waiting", interrupt.message, self.line)
                except (Pause, ExecutionError):
                    self._charged = True
                    raise
                except TScriptError:
                    raise
                except Exception as error:
                    raise self._handler_error(name, where, error) from error
                return self._finish_call(count, value)
        handler = pending.handler
        where = pending.module if pending.module is not None else "<builtin>"
        try:
            if not handler.done:
                handler.run()
                self._charged = True
                return RunResult("waiting", handler.message, self.line)
            value = handler.value
        except (Pause, ExecutionError):
            self._charged = True
            raise
        except TScriptError:
            raise
        except Exception as error:
            raise self._handler_error(pending.function, where, error) from error
        self._pending = None
        return self._finish_call(count, value)

    @staticmethod
    def _handler_error(name: str, module: str, error: Exception) -> ScriptError:
        return ScriptError(
            f'Handler "{name}" in module "{module}" error: {error} ({type(error).__name__})'
        )

    def _finish_call(self, count: int, value: Any) -> RunResult | None:
        stack = self._stack
        if count:
            del stack[-count:]
        self._pc += 1
        if isinstance(value, Message):
            stack.append(None)
            return RunResult("message", value.text, self.program.lines[self._pc - 1])
        if isinstance(value, BaseException):
            stack.append(None)
            if isinstance(value, RuntimeSignal):
                raise value
            raise ScriptError(f"{type(value).__name__}: {value}")
        stack.append(value)
        return None

    def _factory(self, module: str | None, name: str) -> FunctionFactory:
        if module is None:
            factory = self._builtins.get(name)
            if factory is None:
                raise NotDefinedError(name)
            return factory
        functions = self._functions.get(module)
        if functions is None:
            raise NotDefinedError(module)
        factory = functions.get(name)
        if factory is None:
            raise NotDefinedError(f'{name}" of module "{module}')
        return factory

    # module values ------------------------------------------------------------------
    def _value(self, module: str, name: str) -> Value:
        values = self._values.get(module)
        if values is None:
            raise NotDefinedError(module)
        value = values.get(name)
        if value is None:
            raise NotDefinedError(f'{name}" of module "{module}')
        return value

    def _get(self, module: str, name: str) -> Any:
        value = self._value(module, name)
        if value.getter is None:
            raise ParameterError("target", f'"{name}" of module "{module}" is not gettable')
        try:
            return value.getter()
        except TScriptError:
            raise
        except Exception as error:
            raise ScriptError(
                f'getter "{name}" in module "{module}" error: {error} ({type(error).__name__})'
            ) from error

    def _set(self, module: str, name: str, new: Any) -> None:
        value = self._value(module, name)
        if value.setter is None:
            raise ParameterError("target", f'"{name}" of module "{module}" is not settable')
        try:
            value.setter(copy_value(new))
        except TScriptError:
            raise
        except Exception as error:
            raise ScriptError(
                f'setter "{name}" in module "{module}" error: {error} ({type(error).__name__})'
            ) from error

    def get_value(self, module: str, name: str) -> Any:
        """Read ``module.name`` for a plugin; ``ValueError`` if it cannot be read."""
        try:
            return self._get(module, name)
        except (NotDefinedError, ParameterError) as error:
            raise ValueError(str(error)) from error


def _check_parameters(module: str, name: str, handler: object, parameters: dict[str, Any]) -> None:
    """A module function called with a parameter it does not take, or without one it needs,
    is refused naming both (as ``tscript check`` words it), before the function sees it."""
    signature = signature_of(handler)
    allowed = signature.parameters
    if allowed is None:
        return
    for given in parameters:
        if given not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise ParameterError(
                given, f'{module}.{name}() has no parameter "{given}" (parameters: {names})'
            )
    missing = sorted(signature.required - set(parameters))
    if missing:
        raise ParameterError(missing[0], f'{module}.{name}() needs the parameter "{missing[0]}"')
