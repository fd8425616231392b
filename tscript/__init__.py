"""TScript: the scripting language of Contractor's blueprints.

``parse(source)`` gives a ``Script`` (or raises ``ParseError`` with line, column and a caret
rendering); ``Runner(script, modules)`` runs it as a resumable state machine whose whole
state is versioned JSON (``to_json()`` / ``Runner.from_json()``) at every point where it can
stop. Plugins add modules through ``Module``, ``Value`` and ``ExternalFunction``
(see ``tscript.plugins`` for the remote-task protocol). ``references(script)`` tells which
module values and functions a script uses, so a host can prepare only those.
``check(source, modules)`` lists every problem of a script (all the parse errors it can
recover from, calls to functions, modules and parameters that do not exist).
"""

from tscript.checker import ModuleSignature, check, describe
from tscript.errors import (
    ExecutionError,
    Interrupt,
    NoRollback,
    NotDefinedError,
    ParameterError,
    ParseError,
    Pause,
    RuntimeSignal,
    ScriptError,
    StepLimitExceeded,
    TScriptError,
    UnrecoverableError,
)
from tscript.nodes import Script
from tscript.parser import parse
from tscript.plugins import ExternalFunction, FunctionFactory, Handler, Module, Signature, Value
from tscript.references import References, references
from tscript.runner import STATE_FORMAT, STATE_VERSION, Runner, RunResult
from tscript.values import to_literal, to_output, to_text

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "ExecutionError",
    "ExternalFunction",
    "FunctionFactory",
    "Handler",
    "Interrupt",
    "Module",
    "ModuleSignature",
    "NoRollback",
    "NotDefinedError",
    "ParameterError",
    "ParseError",
    "Pause",
    "References",
    "RunResult",
    "Runner",
    "RuntimeSignal",
    "Script",
    "ScriptError",
    "Signature",
    "StepLimitExceeded",
    "TScriptError",
    "UnrecoverableError",
    "Value",
    "check",
    "describe",
    "parse",
    "references",
    "to_literal",
    "to_output",
    "to_text",
]
