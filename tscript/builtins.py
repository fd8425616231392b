"""The builtin functions (calls without a module): len, slice, pop, append, index, pause,
error, fatal_error, message and delay.

They take named parameters only; a missing or unknown parameter aborts the script with a
``ScriptError``. ``len``/``slice``/``pop``/``append``/``index`` act on the live value of the
variable passed (``append( array=aa, value=1 )`` changes ``aa``). ``pause``/``error``/
``fatal_error`` return an exception instance that the runner raises after the call completed,
so a resumed job continues after the call, which yields ``none``; ``message`` makes
``Runner.run()`` return the text and continue on the next ``run()``. ``delay`` is an
``ExternalFunction`` waiting on wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tscript.errors import ExecutionError, ParameterError, Pause, ScriptError
from tscript.plugins import ExternalFunction, FunctionFactory, Signature
from tscript.values import JSONValue, to_text

__all__ = ["BUILTINS", "Delay", "Message"]


class Message:
    """What ``message( msg )`` returns: ``Runner.run()`` hands the text to the job."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _len(*, array: Any) -> int:
    return len(array)


def _slice(*, array: Any, start: Any, end: Any) -> Any:
    return array[start:end]


def _pop(*, array: Any, index: Any = -1) -> Any:
    return array.pop(index)


def _append(*, array: Any, value: Any) -> None:
    array.append(value)


def _index(*, array: Any, value: Any) -> Any:
    return array.index(value)


def _pause(*, msg: Any) -> Pause:
    return Pause(to_text(msg))


def _error(*, msg: Any) -> ExecutionError:
    return ExecutionError(to_text(msg))


def _fatal_error(*, msg: Any) -> ScriptError:
    return ScriptError(to_text(msg))


def _message(*, msg: Any) -> Message:
    return Message(to_text(msg))


class Delay(ExternalFunction):
    """``delay( seconds=0, minutes=0, hours=0 )``: done once the time has passed.

    ``clock`` is seconds since the epoch (``time.time``); tests and ``tscript run --fast``
    finish a delay at once with ``finish()``.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.seconds = 0
        self.end_at = 0.0

    def setup(self, parameters: dict[str, Any]) -> None:
        parameters = dict(parameters)
        total = 0
        for name, scale in (("seconds", 1), ("minutes", 60), ("hours", 3600)):
            raw = parameters.pop(name, 0)
            try:
                total += int(raw) * scale
            except (TypeError, ValueError, OverflowError):
                raise ParameterError(name, "must be an integer") from None
        if parameters:
            unknown = ", ".join(sorted(parameters))
            raise ScriptError(f"delay() got unknown parameters: {unknown}")
        if total == 0:
            raise ParameterError("seconds", "specified 0 delay, give seconds, minutes or hours")
        self.seconds = total
        self.end_at = self.clock() + total

    def signature(self) -> Signature:
        return Signature(frozenset({"seconds", "minutes", "hours"}))

    @property
    def done(self) -> bool:
        return self.clock() >= self.end_at

    @property
    def remaining(self) -> float:
        return max(self.end_at - self.clock(), 0.0)

    @property
    def message(self) -> str:
        return f"Waiting for {int(self.remaining + 0.999)} more seconds"

    @property
    def wake_at(self) -> float | None:
        return self.end_at

    def finish(self) -> None:
        """Complete the delay now."""
        self.end_at = float("-inf")

    def to_json(self) -> JSONValue:
        end_at = self.end_at if self.end_at != float("-inf") else None
        return {"seconds": self.seconds, "end_at": end_at}

    def from_json(self, state: JSONValue) -> None:
        self.seconds = int(state["seconds"])
        end_at = state["end_at"]
        self.end_at = float("-inf") if end_at is None else float(end_at)


def _function(function: Callable[..., Any]) -> FunctionFactory:
    return lambda: function


def builtins(clock: Callable[[], float] = time.time) -> Mapping[str, FunctionFactory]:
    """The builtin function factories, with ``delay`` measuring time by ``clock``."""
    table = dict(BUILTINS)
    table["delay"] = lambda: Delay(clock)
    return table


BUILTINS: Mapping[str, FunctionFactory] = {
    "len": _function(_len),
    "slice": _function(_slice),
    "pop": _function(_pop),
    "append": _function(_append),
    "index": _function(_index),
    "pause": _function(_pause),
    "error": _function(_error),
    "fatal_error": _function(_fatal_error),
    "message": _function(_message),
    "delay": Delay,
}
