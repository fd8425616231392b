"""TScript errors: parse errors and the run-time error classes.

The run-time classes decide what happens to a job (the reference's mapping)::

    TScriptError
     ├─ ParseError                 the script does not parse (never reaches a runner)
     └─ RuntimeSignal              raised by Runner.run(); carries ``line`` and ``kind``
         ├─ Pause                  resumable: job -> paused, the operator resumes
         ├─ ExecutionError         resumable: job -> error, the operator resets or rolls back
         │   └─ StepLimitExceeded  the per-job step ceiling was reached (a runaway loop)
         └─ UnrecoverableError     final: job -> aborted
             ├─ ScriptError        division by zero, type errors, fatal_error(), bad builtin use
             ├─ ParameterError     a bad operand or parameter, a value that cannot be read/set
             └─ NotDefinedError    unknown variable, module, value, function, key or jump point

``kind`` is the stable name used in machine output (``tscript run --json``): ``Pause``,
``ExecutionError``, ``ScriptError``, ``ParameterError`` or ``NotDefined``.

``Interrupt`` and ``NoRollback`` are signals for plugin authors (see ``tscript.plugins``).
"""

from __future__ import annotations

__all__ = [
    "ExecutionError",
    "Interrupt",
    "NoRollback",
    "NotDefinedError",
    "ParameterError",
    "ParseError",
    "Pause",
    "RuntimeSignal",
    "ScriptError",
    "StepLimitExceeded",
    "TScriptError",
    "UnrecoverableError",
]


class TScriptError(Exception):
    """Base of every error this package raises on purpose."""


class ParseError(TScriptError):
    """The script does not parse.

    ``line`` and ``column`` are 1-based; ``source_line`` is the text of that line, so
    ``render()`` can show it with a caret under the offending column.
    """

    def __init__(self, message: str, line: int, column: int, source_line: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line

    def caret(self) -> str:
        """The source line and a caret line under the error column."""
        text = self.source_line.expandtabs(1)
        return f"{text}\n{' ' * max(self.column - 1, 0)}^"

    def render(self, filename: str | None = None) -> str:
        """``FILE:LINE:COLUMN: message`` followed by the caret rendering."""
        where = f"{filename}:" if filename is not None else ""
        return f"{where}{self.line}:{self.column}: {self.message}\n{self.caret()}"

    def __str__(self) -> str:
        return self.render()


class RuntimeSignal(TScriptError):
    """Base of everything ``Runner.run()`` raises; ``line`` is the statement's line.

    ``outcome`` is the job state it leads to: ``paused``, ``error`` or ``aborted``.
    """

    kind = "ScriptError"
    outcome = "aborted"

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} (line {self.line})"


class Pause(RuntimeSignal):
    """The job pauses; resuming continues after the point that paused."""

    kind = "Pause"
    outcome = "paused"


class ExecutionError(RuntimeSignal):
    """The job goes to error; a reset continues, a rollback asks the function to undo."""

    kind = "ExecutionError"
    outcome = "error"


class StepLimitExceeded(ExecutionError):
    """The per-job step ceiling was reached."""


class UnrecoverableError(RuntimeSignal):
    """The job is aborted; the runner cannot continue."""

    kind = "ScriptError"


class ScriptError(UnrecoverableError):
    """A failure inside the script: bad operation, ``fatal_error()``, misuse of a builtin."""


class ParameterError(UnrecoverableError):
    """A bad parameter or operand; ``name`` says which."""

    kind = "ParameterError"

    def __init__(self, name: str, message: str, line: int | None = None) -> None:
        super().__init__(f'Parameter Error parameter "{name}": {message}', line)
        self.name = name
        self.detail = message


class NotDefinedError(UnrecoverableError):
    """A name, module, value, function, index, key or jump point does not exist."""

    kind = "NotDefined"

    def __init__(self, name: str, line: int | None = None) -> None:
        super().__init__(f'Not Defined "{name}"', line)
        self.name = name


class Interrupt(TScriptError):
    """Raised by a plain (local) plugin function that is not finished yet.

    ``Runner.run()`` returns the message; the next ``run()`` calls the function again with the
    same, already evaluated parameters (this is how polling functions are written).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoRollback(TScriptError):
    """Raised by ``ExternalFunction.rollback()`` when the function cannot be rolled back."""
