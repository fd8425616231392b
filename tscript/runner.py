"""The TScript runner: a resumable state machine with versioned JSON state.

``Runner(script, modules)`` executes the flat program of ``tscript.compiler`` on the state
machine of ``tscript.machine`` (explicit program counter, value stack, block stack and
``exists`` handler stack; no Python recursion follows the script's structure).
``run(budget)`` executes one slice:

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
from datetime import timedelta
from typing import Any

from tscript.compiler import Program, compile_script
from tscript.errors import (
    NoRollback,
    RuntimeSignal,
    UnrecoverableError,
)
from tscript.machine import ABORTED, DONE, RUNNING, Machine, Pending, RunResult
from tscript.nodes import Script
from tscript.parser import parse
from tscript.plugins import ExternalFunction, Module
from tscript.values import JSONValue, StateDecoder, StateEncoder

__all__ = ["STATE_FORMAT", "STATE_VERSION", "RunResult", "Runner"]

STATE_FORMAT = "tscript-runner"
STATE_VERSION = 1


@functools.lru_cache(maxsize=128)
def _load(source: str) -> tuple[Script, Program]:
    script = parse(source)
    return script, compile_script(script)


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


class Runner(Machine):
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
            self.script, program = _load(script)
        else:
            self.script, program = script, compile_script(script)
        super().__init__(program, max_steps=max_steps, clock=clock)
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
        return self._state == DONE

    @property
    def aborted(self) -> bool:
        return self._state == ABORTED

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
        if self._state != RUNNING:
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
        if self._state == DONE:
            return RunResult(DONE)
        if self._state == ABORTED:
            return RunResult(ABORTED)
        try:
            return self.execute(max(int(budget), 1))
        except UnrecoverableError as error:
            self._state = ABORTED
            if error.line is None:
                error.line = self.program.lines[self._pc]
            raise
        except RuntimeSignal as error:
            if error.line is None:
                error.line = self.program.lines[self._pc]
            raise

    # the remote protocol ------------------------------------------------------------
    def to_subcontractor(self, modules: Collection[str]) -> dict[str, Any] | None:
        """Hand out the waiting function's task once, if its module is in ``modules``."""
        pending = self._pending
        if (
            self._state != RUNNING
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
        if self._state != RUNNING:
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
        if self._state != RUNNING:
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
        if self._state != RUNNING:
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
        runner._timed = runner._count_timed()
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
            runner._pending = Pending(
                saved["module"],
                saved["function"],
                saved["dispatch_module"],
                handler,
                bool(saved["dispatched"]),
            )
        return runner
