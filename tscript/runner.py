"""The TScript runner: a resumable state machine with versioned JSON state.

``Runner(script, modules)`` executes the flat program of ``tscript.compiler`` with an explicit
program counter, value stack, block stack and ``exists`` handler stack; no Python recursion
follows the script's structure. ``run(budget)`` executes one slice:

* it returns ``RunResult("done")`` when the script finished, ``RunResult("budget")`` when the
  slice's step budget is used up (call ``run()`` again), ``RunResult("waiting", message)``
  while a function waits (a delay, a remote task), ``RunResult("message", text)`` after
  ``message( msg=... )``;
* it raises ``Pause`` (job paused; ``run()`` again to resume), ``ExecutionError`` (job error;
  ``run()`` again to reset, or ``rollback()`` first), ``StepLimitExceeded`` (the per-job step
  ceiling; ``reset_step_ceiling()`` then ``run()`` to continue) or an ``UnrecoverableError``
  (``ScriptError``, ``ParameterError``, ``NotDefinedError``: the runner is aborted for good).

Between any two ``run()`` calls ``to_json()`` gives the whole state as JSON (the script source
and its hash, the program counter and stacks, variables, block timers, the pending function's
handler and the cookie) and ``Runner.from_json(data, modules)`` continues exactly where it
stopped, in any process. Values shared between variables and the stack stay shared.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tscript.builtins import Message, builtins
from tscript.compiler import Op, Program, compile_script
from tscript.errors import (
    ExecutionError,
    Interrupt,
    NoRollback,
    NotDefinedError,
    ParameterError,
    Pause,
    RuntimeSignal,
    ScriptError,
    StepLimitExceeded,
    TScriptError,
    UnrecoverableError,
)
from tscript.nodes import Script
from tscript.parser import parse
from tscript.plugins import ExternalFunction, FunctionFactory, Module, Value
from tscript.values import JSONValue, StateDecoder, StateEncoder, copy_value

__all__ = ["STATE_FORMAT", "STATE_VERSION", "RunResult", "Runner"]

STATE_FORMAT = "tscript-runner"
STATE_VERSION = 1

_RUNNING = "running"
_DONE = "done"
_ABORTED = "aborted"
_IMMUTABLE = frozenset({int, float, str, bool, type(None), timedelta, complex})


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one ``run()`` slice ended with: ``done``, ``aborted``, ``budget``, ``waiting``
    (a function is not finished; ``message`` says why) or ``message`` (``message()``)."""

    state: str
    message: str = ""
    line: int | None = None


@dataclass(slots=True)
class _Pending:
    """The external function the script is waiting on."""

    module: str | None
    function: str
    dispatch_module: str | None
    handler: ExternalFunction
    dispatched: bool = False


@functools.lru_cache(maxsize=128)
def _load(source: str) -> tuple[Script, Program]:
    script = parse(source)
    return script, compile_script(script)


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


class Runner:
    """Runs one script; see the module docstring for the protocol."""

    def __init__(
        self,
        script: Script | str,
        modules: Iterable[Module] = (),
        *,
        max_steps: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(script, str):
            self.script, self.program = _load(script)
        else:
            self.script, self.program = script, compile_script(script)
        self.max_steps = max_steps
        self.clock = clock
        self.variables: dict[str, Any] = {}
        self.cookie: str | None = None
        self._modules: dict[str, Module] = {}
        self._values: dict[str, Mapping[str, Value]] = {}
        self._functions: dict[str, Mapping[str, FunctionFactory]] = {}
        self._builtins = builtins(clock)
        self._state = _RUNNING
        self._pc = 0
        self._stack: list[Any] = []
        self._handlers: list[list[int]] = []
        self._blocks: list[list[Any]] = []  # [block id, start time, max_time deadline]
        self._steps = 0
        self._ceiling_base = 0
        self._charged = False  # the instruction at pc was charged already (a retried call)
        self._pending: _Pending | None = None
        for module in modules:
            self.register(module)

    # modules ------------------------------------------------------------------------
    def register(self, module: Module) -> None:
        """Make ``module`` available to the script under ``module.name`` (replacing any)."""
        self._modules[module.name] = module
        self._values[module.name] = module.values()
        self._functions[module.name] = module.functions()

    @property
    def modules(self) -> Mapping[str, Module]:
        return dict(self._modules)

    # properties ---------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def aborted(self) -> bool:
        return self._state == _ABORTED

    @property
    def line(self) -> int | None:
        """The line of the statement being executed (``None`` once finished)."""
        if self._state != _RUNNING:
            return None
        return self.program.lines[self._pc]

    @property
    def steps(self) -> int:
        """Steps executed so far (node visits, as the original counts them)."""
        return self._steps

    @property
    def pending_function(self) -> tuple[str | None, str] | None:
        """``(module, function)`` of the function the script waits on, if any."""
        if self._pending is None:
            return None
        return (self._pending.module, self._pending.function)

    @property
    def pending_handler(self) -> ExternalFunction | None:
        return None if self._pending is None else self._pending.handler

    def next_wake(self) -> float | None:
        """The earliest time (epoch seconds) at which running again can make progress by
        itself: the waiting function's ``wake_at`` or a block's ``max_time`` deadline."""
        if self._state != _RUNNING:
            return None
        times = [record[2] for record in self._blocks if record[2] is not None]
        if self._pending is not None:
            wake = self._pending.handler.wake_at
            if wake is not None:
                times.append(wake)
        return min(times) if times else None

    def reset_step_ceiling(self) -> None:
        """Allow another ``max_steps`` steps (an operator's reset after a runaway loop)."""
        self._ceiling_base = self._steps

    # running ------------------------------------------------------------------------
    def run(self, budget: int = 1000) -> RunResult:
        """Run one slice of at most ``budget`` steps (at least one instruction)."""
        if self._state == _DONE:
            return RunResult(_DONE)
        if self._state == _ABORTED:
            return RunResult(_ABORTED)
        try:
            self._check_deadlines()
            return self._execute(max(int(budget), 1))
        except UnrecoverableError as error:
            self._state = _ABORTED
            if error.line is None:
                error.line = self.program.lines[self._pc]
            raise
        except RuntimeSignal as error:
            if error.line is None:
                error.line = self.program.lines[self._pc]
            raise

    def _check_deadlines(self) -> None:
        now: float | None = None
        for record in self._blocks:
            if record[2] is not None:
                if now is None:
                    now = self.clock()
                if now >= record[2]:
                    record[2] = None  # pause once; after the resume the block runs on
                    raise Pause("Max Time Elapsed")

    def _execute(self, budget: int) -> RunResult:
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
                            return RunResult(_DONE)
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
                raise NotDefinedError("Index/Key does not exist") from None
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
        elif op == Op.BLOCK_EXIT:
            self._blocks.pop()
        elif op == Op.UNWIND_JUMP:
            target, depth = arg
            del self._blocks[depth:]
            return int(target)
        elif op == Op.GOTO:
            target = self.program.jump_points.get(arg)
            if target is None:
                raise NotDefinedError(arg)
            del self._blocks[1:]
            stack.clear()
            self._handlers.clear()
            return target
        elif op == Op.HALT:
            self._state = _DONE
            self._blocks.clear()
            stack.clear()
            return -1
        else:  # pragma: no cover - the compiler emits no other opcode
            raise ScriptError(f"unknown instruction {op}")
        return pc + 1

    # functions ----------------------------------------------------------------------
    def _call(self, arg: tuple[str | None, str, tuple[str, ...]]) -> RunResult | None:
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
                pending = self._pending = _Pending(module, name, dispatch_module, handler)
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

    # the remote protocol ------------------------------------------------------------
    def to_subcontractor(self, modules: Collection[str]) -> dict[str, Any] | None:
        """Hand out the waiting function's task once, if its module is in ``modules``."""
        pending = self._pending
        if (
            self._state != _RUNNING
            or pending is None
            or pending.dispatched
            or pending.dispatch_module not in modules
        ):
            return None
        try:
            task = pending.handler.to_subcontractor()
        except Exception:
            return None
        if task is None:
            return None
        pending.dispatched = True
        function, parameters = task
        return {
            "module": pending.dispatch_module,
            "function": function,
            "cookie": self.cookie,
            "parameters": parameters,
        }

    def from_subcontractor(self, cookie: str, data: dict[str, Any]) -> tuple[str, str | None]:
        """Deliver a task's result. Returns ``("Accepted", message)`` or a refusal:
        ``Script not Running``, ``Bad Cookie``, ``Not At a Function``,
        ``Not Expecting Anything`` or ``Error`` (the handler rejected the data)."""
        if self._state != _RUNNING:
            return ("Script not Running", None)
        if cookie != self.cookie:
            return ("Bad Cookie", None)
        pending = self._pending
        if pending is None:
            return ("Not At a Function", None)
        if not pending.dispatched:
            return ("Not Expecting Anything", None)
        try:
            pending.handler.from_subcontractor(data)
            message = pending.handler.message
        except Exception:
            return ("Error", None)
        pending.dispatched = False
        return ("Accepted", message)

    def clear_dispatched(self) -> bool:
        """Let the waiting function's task be handed out again (the task was lost)."""
        if self._pending is None:
            return False
        self._pending.dispatched = False
        return True

    def rollback(self) -> str:
        """Ask the waiting function to roll back: ``Done`` (with a fresh cookie, so a late
        result of the old task is refused), ``Rollback not possible``,
        ``Exception while trying to rollback``, ``Not At a Function`` or
        ``Script not Running``."""
        if self._state != _RUNNING:
            return "Script not Running"
        pending = self._pending
        if pending is None:
            return "Not At a Function"
        try:
            pending.handler.rollback()
        except NoRollback:
            return "Rollback not possible"
        except Exception:
            return "Exception while trying to rollback"
        self.cookie = str(uuid.uuid4())
        pending.dispatched = False
        return "Done"

    # progress -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Progress: ``percent`` complete, ``line``, and per enclosing block its
        ``description``, ``percent``, ``elapsed`` and ``remaining`` seconds (``remaining``
        only with ``expected_time``). Works wherever the script stopped."""
        if self._state != _RUNNING:
            return {"state": self._state, "percent": 100.0, "line": None, "blocks": []}
        program = self.program
        path = program.paths[program.scopes[self._pc]]
        records = {record[0]: record for record in self._blocks}
        now = self.clock()
        blocks: list[dict[str, Any]] = []
        for block_id, index in path:
            info = program.blocks[block_id]
            record = records.get(block_id)
            elapsed = now - record[1] if record is not None else 0.0
            entry: dict[str, Any] = {
                "description": info.description,
                "line": info.line,
                "position": index,
                "children": info.children,
                "elapsed": elapsed,
            }
            if isinstance(info.expected_time, timedelta):
                entry["remaining"] = info.expected_time.total_seconds() - elapsed
            blocks.append(entry)
        percent = 0.0
        for entry in reversed(blocks):
            children = entry["children"]
            if children:
                percent = percent / children + 100.0 * entry["position"] / children
            else:
                percent = 100.0
            entry["percent"] = percent
        return {"state": self._state, "percent": percent, "line": self.line, "blocks": blocks}

    # saving -------------------------------------------------------------------------
    def _encode_object(self, value: Any) -> tuple[str, JSONValue] | None:
        for name, module in self._modules.items():
            encoded = module.encode_value(value)
            if encoded is not None:
                return (name, encoded)
        return None

    def _decode_object(self, module: str, data: JSONValue) -> Any:
        owner = self._modules.get(module)
        if owner is None:
            raise ValueError(f'module "{module}" is not registered')
        return owner.decode_value(data)

    def to_json(self) -> dict[str, Any]:
        """The whole state as a JSON-able dict (``json.dumps`` it to store it).

        ``TypeError`` if a value cannot be saved (an object no module encodes),
        ``ValueError`` if a value is nested too deeply to save."""
        try:
            return self._to_json()
        except RecursionError:
            raise ValueError("a value is nested too deeply to save") from None

    def _to_json(self) -> dict[str, Any]:
        encoder = StateEncoder(self._encode_object)
        pending = self._pending
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "sha256": _digest(self.script.source),
            "source": self.script.source,
            "state": self._state,
            "pc": self._pc,
            "steps": self._steps,
            "ceiling_base": self._ceiling_base,
            "max_steps": self.max_steps,
            "charged": self._charged,
            "cookie": self.cookie,
            "blocks": [list(record) for record in self._blocks],
            "handlers": [list(handler) for handler in self._handlers],
            "variables": encoder.encode(self.variables),
            "stack": encoder.encode(self._stack),
            "pending": None
            if pending is None
            else {
                "module": pending.module,
                "function": pending.function,
                "dispatch_module": pending.dispatch_module,
                "dispatched": pending.dispatched,
                "handler": pending.handler.to_json(),
            },
            "modules": {name: module.to_json() for name, module in self._modules.items()},
        }

    def dumps(self) -> str:
        """``to_json()`` as compact JSON text."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(
        cls,
        data: Mapping[str, Any] | str,
        modules: Iterable[Module] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> Runner:
        """Rebuild a runner saved by ``to_json()``; ``modules`` are registered again first
        (each gets its saved state through ``Module.from_json``)."""
        state: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
        if state.get("format") != STATE_FORMAT:
            raise ValueError("not a saved TScript runner")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported TScript state version {state.get('version')!r}")
        source = state["source"]
        if _digest(source) != state["sha256"]:
            raise ValueError("the saved script does not match its hash")
        runner = cls(source, modules, max_steps=int(state["max_steps"]), clock=clock)
        saved_modules = state.get("modules") or {}
        for name, module_state in saved_modules.items():
            module = runner._modules.get(name)
            if module is None:
                raise ValueError(f'the saved runner needs module "{name}"')
            module.from_json(module_state)
        runner._state = state["state"]
        runner._pc = int(state["pc"])
        runner._steps = int(state["steps"])
        runner._ceiling_base = int(state["ceiling_base"])
        runner._charged = bool(state["charged"])
        runner.cookie = state["cookie"]
        runner._blocks = [list(record) for record in state["blocks"]]
        runner._handlers = [list(handler) for handler in state["handlers"]]
        decoder = StateDecoder(runner._decode_object)
        runner.variables = decoder.decode(state["variables"])
        runner._stack = decoder.decode(state["stack"])
        saved = state["pending"]
        if saved is not None:
            made = runner._factory(saved["module"], saved["function"])()
            handler = made[1] if isinstance(made, tuple) else made
            if not isinstance(handler, ExternalFunction):
                raise ValueError(f'"{saved["function"]}" is no longer an external function')
            handler.runner = runner
            handler.from_json(saved["handler"])
            runner._pending = _Pending(
                saved["module"],
                saved["function"],
                saved["dispatch_module"],
                handler,
                bool(saved["dispatched"]),
            )
        return runner
