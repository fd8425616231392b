"""The plugin interface: how other packages add modules to TScript.

A **module** (subclass ``Module``) is registered with a runner under its ``name``; a script then
reads ``name.value``, assigns ``name.value = ...`` and calls ``name.function( p=... )``.

* ``values()`` maps a value name to ``Value(getter, setter=None)``. The getter is called on every
  read (nothing is cached); the setter receives a deep copy of the assigned value. A missing
  getter/setter makes the read/assignment a ``ParameterError``; an exception inside either
  aborts the script (``ScriptError``).
* ``functions()`` maps a function name to a **factory** called with no arguments for every call.
  The factory returns either a plain callable (a *local* function, called at once with the
  evaluated parameters as keyword arguments; it returns the value, or raises
  ``tscript.Interrupt(message)`` to be called again, with the same parameters, on the next
  ``Runner.run()``), or an ``ExternalFunction`` (below), or a tuple
  ``(module_name, handler)`` whose first element overrides the module name a task is sent to.
* ``to_json()``/``from_json(state)`` persist the module's own state with the runner.
  ``encode_value(value)``/``decode_value(data)`` let a module save the opaque objects it hands
  to scripts (return ``None`` from ``encode_value`` for values it does not own).

An **external function** (subclass ``ExternalFunction``) lives across ``run()`` calls and
saves; its protocol (the reference's §9, with our spelling)::

    setup(parameters)      once per call, with the evaluated parameters; validate strictly and
                           raise ParameterError. Pause / ExecutionError / Interrupt here mean
                           "try again on the next run()" (a fresh handler is made then).
    done                   True -> the call yields ``value``; False -> the runner calls run()
                           and returns ``message`` from Runner.run() (the job waits).
    run()                  called on every Runner.run() while not done; may raise Pause,
                           ExecutionError or UnrecoverableError (e.g. "too many attempts").
    message                status text while waiting.
    value                  the call's result; an exception instance is raised instead (the call
                           yields none if the job is resumed/reset).
    to_subcontractor()     -> (function_name, parameters) for a remote task, or None.
    from_subcontractor(data)  the subcontractor's result (a dict).
    rollback()             prepare to redo the task; raise NoRollback when impossible.
    to_json()/from_json()  the handler's own fields, saved with the runner (JSON only).
    signature()            the parameters it takes (a ``Signature``), so ``tscript check``
                           can report unknown and missing ones; ``None``: not declared.

The runner side of the remote protocol (``tscript.Runner``): after a ``run()`` that left a
function waiting, ``to_subcontractor(modules)`` hands out the task
``{"module", "function", "cookie", "parameters"}`` **once** (the function is then
*dispatched*); ``from_subcontractor(cookie, data)`` accepts a result only with the current
cookie and only while dispatched; ``clear_dispatched()`` lets a lost task be handed out again;
``rollback()`` asks the handler to roll back and rotates the cookie, so a late result of the
old task is refused. The cookie is a fresh random string every time a function is set up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from tscript.errors import NoRollback
from tscript.values import JSONValue

if TYPE_CHECKING:
    from tscript.machine import Machine

__all__ = ["ExternalFunction", "FunctionFactory", "Handler", "Module", "Signature", "Value"]


@dataclass(frozen=True, slots=True)
class Signature:
    """The named parameters a function takes: ``parameters`` (``None``: any) of which
    ``required`` must be given."""

    parameters: frozenset[str] | None = None
    required: frozenset[str] = frozenset()


class ExternalFunction:
    """Base class of a function whose result may take several ``run()`` calls to arrive.

    The defaults describe a function that is done at once with value ``None``.
    ``self.runner`` is set by the runner before ``setup()`` and after a restore; use
    ``get_script_value(module, name)`` to read another module's value.
    """

    runner: Machine | None = None

    def setup(self, parameters: dict[str, Any]) -> None:
        """Validate and keep the evaluated parameters."""

    @property
    def done(self) -> bool:
        return True

    def run(self) -> None:
        """Make progress (never block); called while not ``done``."""

    @property
    def message(self) -> str:
        return ""

    @property
    def wake_at(self) -> float | None:
        """When (epoch seconds) this waiting function can make progress by itself, if ever;
        the job engine steps the job again at that time (``delay`` uses it)."""
        return None

    @property
    def value(self) -> Any:
        return None

    def to_subcontractor(self) -> tuple[str, dict[str, Any]] | None:
        """The remote task: ``(function_name, parameters)``, or ``None`` for no task."""
        return None

    def from_subcontractor(self, data: dict[str, Any]) -> None:
        """Receive the subcontractor's result."""

    def rollback(self) -> None:
        """Get ready to send the task again; raise ``NoRollback`` if that is impossible."""
        raise NoRollback("rollback not supported")

    def to_json(self) -> JSONValue:
        """This handler's state as JSON (saved with the runner)."""
        return None

    def from_json(self, state: JSONValue) -> None:
        """Restore what ``to_json`` returned."""

    def signature(self) -> Signature | None:
        """The parameters this function takes, for ``tscript check``; ``None``: not declared."""
        return None

    def get_script_value(self, module: str, name: str) -> Any:
        """Read ``module.name`` through the runner; ``ValueError`` if it cannot be read."""
        if self.runner is None:
            raise ValueError("not attached to a runner")
        return self.runner.get_value(module, name)


Handler: TypeAlias = ExternalFunction | Callable[..., Any]
FunctionFactory: TypeAlias = Callable[[], "Handler | tuple[str, Handler]"]


@dataclass(frozen=True, slots=True)
class Value:
    """A module value: ``getter()`` on every read, ``setter(value)`` on assignment."""

    getter: Callable[[], Any] | None
    setter: Callable[[Any], None] | None = None


class Module:
    """Base class of a TScript module; set ``name`` (class attribute or in ``__init__``)."""

    name: str = ""

    def values(self) -> Mapping[str, Value]:
        return {}

    def functions(self) -> Mapping[str, FunctionFactory]:
        return {}

    def to_json(self) -> JSONValue:
        """This module's own state, saved with the runner."""
        return None

    def from_json(self, state: JSONValue) -> None:
        """Restore what ``to_json`` returned."""

    def encode_value(self, value: Any) -> JSONValue | None:
        """Encode an opaque object this module gave to the script, or ``None`` if not ours."""
        return None

    def decode_value(self, data: JSONValue) -> Any:
        """Rebuild an object from what ``encode_value`` returned."""
        raise ValueError(f'module "{self.name}" cannot restore objects')
