"""Building blocks for TScript functions that run on a subcontractor or ask the operator.

``RemoteCall`` sends one task and, when asked to, sends it again until the answer is the one
wanted (``until``), waiting ``interval`` seconds between answers and giving up with an
ExecutionError after ``max_attempts`` (a rollback starts the count again). ``AskOperator``
pauses the job once with a message and finishes when the operator resumes it.

Only the call's own progress is saved with the runner; what a task needs from the database
(addresses, credentials) is built when the task is handed out, so secrets never reach the
runner state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from tscript import (
    ExecutionError,
    ExternalFunction,
    FunctionFactory,
    ParameterError,
    Pause,
    Signature,
)
from tscript.values import JSONValue

__all__ = [
    "AskOperator",
    "RemoteCall",
    "answer_field",
    "destroy_call",
    "interface_map_call",
    "power_functions",
]

Parameters = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")


class RemoteCall(ExternalFunction):
    """A call answered by a subcontractor.

    ``parameters(script_parameters)`` builds the task's parameters at hand-out time;
    ``accepts`` names the script parameters allowed (with their defaults, ``...`` for
    required); ``until(result)`` says whether an answer finishes the call (default: any);
    ``value(result)`` gives the call's value (default: the result).
    """

    def __init__(
        self,
        function: str,
        parameters: Parameters,
        *,
        label: str,
        accepts: Mapping[str, Any] | None = None,
        until: Callable[[dict[str, Any]], bool] | None = None,
        value: Callable[[dict[str, Any]], Any] | None = None,
        interval: float = 0.0,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.function = function
        self.build = parameters
        self.label = label
        self.accepts = dict(accepts or {})
        self.until = until
        self.extract = value
        self.interval = interval
        self.max_attempts = max_attempts
        self.clock = clock
        # saved with the runner
        self.parameters: dict[str, Any] = {}
        self.attempts = 0
        self.result: dict[str, Any] | None = None
        self.finished = False
        self.retry_at = 0.0

    def setup(self, parameters: dict[str, Any]) -> None:
        for name in parameters:
            if name not in self.accepts:
                allowed = ", ".join(sorted(self.accepts)) or "none"
                raise ParameterError(name, f"unknown parameter (allowed: {allowed})")
        checked: dict[str, Any] = {}
        for name, default in self.accepts.items():
            if name in parameters:
                checked[name] = parameters[name]
            elif default is ...:
                raise ParameterError(name, "required")
            else:
                checked[name] = default
        self.parameters = checked
        self.build(dict(checked))  # fail now, not silently when the task is handed out

    def signature(self) -> Signature:
        required = {name for name, default in self.accepts.items() if default is ...}
        return Signature(frozenset(self.accepts), frozenset(required))

    @property
    def done(self) -> bool:
        return self.finished

    def run(self) -> None:
        if (
            self.max_attempts is not None
            and self.attempts >= self.max_attempts
            and self.result is not None
        ):
            raise ExecutionError(
                f"{self.label}: no success after {self.attempts} attempts "
                f"(last answer {self.result!r}); roll back to try again"
            )

    @property
    def message(self) -> str:
        if self.finished:
            return f"{self.label}: done"
        if self.result is None:
            return f"{self.label}: waiting for the subcontractor"
        return f"{self.label}: answer {self.result!r}, asking again"

    @property
    def wake_at(self) -> float | None:
        return self.retry_at if not self.finished and self.retry_at > self.clock() else None

    @property
    def value(self) -> Any:
        result = self.result or {}
        return self.extract(result) if self.extract is not None else result

    def to_subcontractor(self) -> tuple[str, dict[str, Any]] | None:
        if self.finished or self.clock() < self.retry_at:
            return None
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            return None
        self.attempts += 1
        return (self.function, self.build(dict(self.parameters)))

    def from_subcontractor(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise ValueError("a result must be a JSON object")
        if self.extract is not None:
            self.extract(data)  # a malformed answer is refused, not stored
        self.result = data
        if self.until is None or self.until(data):
            self.finished = True
        else:
            self.retry_at = self.clock() + self.interval

    def rollback(self) -> None:
        self.attempts = 0
        self.result = None
        self.finished = False
        self.retry_at = 0.0

    def to_json(self) -> JSONValue:
        return {
            "parameters": self.parameters,
            "attempts": self.attempts,
            "result": self.result,
            "finished": self.finished,
            "retry_at": self.retry_at,
        }

    def from_json(self, state: JSONValue) -> None:
        assert isinstance(state, dict)
        self.parameters = state["parameters"]
        self.attempts = int(state["attempts"])
        self.result = state["result"]
        self.finished = bool(state["finished"])
        self.retry_at = float(state["retry_at"])


class AskOperator(ExternalFunction):
    """Pause once with ``text`` (formatted with the call's parameters); done when the operator
    resumes the job."""

    def __init__(self, text: str, accepts: tuple[str, ...] = (), value: Any = True) -> None:
        self.text = text
        self.accepts = accepts
        self.result = value
        self.parameters: dict[str, Any] = {}
        self.asked = False

    def setup(self, parameters: dict[str, Any]) -> None:
        for name in self.accepts:
            if name not in parameters:
                raise ParameterError(name, "required")
        for name in parameters:
            if name not in self.accepts:
                raise ParameterError(name, "unknown parameter")
        self.parameters = dict(parameters)

    def signature(self) -> Signature:
        return Signature(frozenset(self.accepts), frozenset(self.accepts))

    @property
    def done(self) -> bool:
        return self.asked

    def run(self) -> None:
        self.asked = True
        raise Pause(self.message)

    @property
    def message(self) -> str:
        return self.text.format(**self.parameters)

    @property
    def value(self) -> Any:
        return self.result

    def rollback(self) -> None:
        self.asked = False

    def to_json(self) -> JSONValue:
        return {"asked": self.asked, "parameters": self.parameters}

    def from_json(self, state: JSONValue) -> None:
        assert isinstance(state, dict)
        self.asked = bool(state["asked"])
        self.parameters = state["parameters"]


POWER_ATTEMPTS = 5
POLL_INTERVAL = 5.0


def power_functions(
    module: str, connection: Callable[[], dict[str, Any]], *, soft_off: bool = True
) -> dict[str, FunctionFactory]:
    """The power functions every remotely powered foundation type offers, sent to
    ``module``: ``power_on``, ``power_off``, ``power_state``, ``wait_for_poweroff`` and
    ``set_boot_device( device=... )``; ``connection()`` gives the parameters that reach the
    machine (read when the task is handed out)."""

    def with_connection(extra: Callable[[dict[str, Any]], dict[str, Any]]) -> Parameters:
        return lambda parameters: {"connection": connection(), **extra(parameters)}

    def set_power(want: str) -> FunctionFactory:
        def factory() -> tuple[str, ExternalFunction]:
            call: RemoteCall

            def state(_: dict[str, Any]) -> dict[str, Any]:
                # a gentle shutdown first, then hard off (as the original's IPMI plugin)
                if want == "off" and soft_off and call.attempts <= 2:
                    return {"state": "soft_off"}
                return {"state": want}

            call = RemoteCall(
                "set_power",
                with_connection(state),
                label=f"power {want}",
                until=lambda result: _state(result) == want,
                interval=1.0,
                max_attempts=POWER_ATTEMPTS,
            )
            return (module, call)

        return factory

    def power_state() -> tuple[str, ExternalFunction]:
        return (
            module,
            RemoteCall(
                "power_state", with_connection(lambda _: {}), label="power state", value=_state
            ),
        )

    def wait_for_poweroff() -> tuple[str, ExternalFunction]:
        return (
            module,
            RemoteCall(
                "power_state",
                with_connection(lambda _: {}),
                label="wait for power off",
                until=lambda result: _state(result) == "off",
                interval=POLL_INTERVAL,
                value=lambda _: True,
            ),
        )

    def set_boot_device() -> tuple[str, ExternalFunction]:
        return (
            module,
            RemoteCall(
                "set_boot_device",
                with_connection(lambda parameters: {"device": parameters["device"]}),
                label="set boot device",
                accepts={"device": ...},
                value=lambda _: True,
            ),
        )

    return {
        "power_on": set_power("on"),
        "power_off": set_power("off"),
        "power_state": power_state,
        "wait_for_poweroff": wait_for_poweroff,
        "set_boot_device": set_boot_device,
    }


def answer_field(key: str, kind: type[T]) -> Callable[[dict[str, Any]], T]:
    """A reader of an answer's ``key``, a ``ValueError`` when it is not a ``kind``."""
    name = {bool: "flag", str: "string"}.get(kind, kind.__name__)

    def read(result: dict[str, Any]) -> T:
        value = result.get(key)
        if not isinstance(value, kind):
            raise ValueError(f'the answer needs a "{key}" {name}')
        return value

    return read


_state = answer_field("state", str)


def interface_map_call(
    module: str, connection: Callable[[], dict[str, Any]], locations: Sequence[str]
) -> FunctionFactory:
    """``get_interface_map()`` sent to ``module``: the task names the interfaces'
    ``physical_locations`` and the answer is ``{interface_map: {location: mac}}``, one MAC
    for each of them; that map is the value (for ``set_interface_macs( interface_map=... )``)."""
    wanted = list(locations)

    def value(result: dict[str, Any]) -> dict[str, str]:
        found = result.get("interface_map")
        if not isinstance(found, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in found.items()
        ):
            raise ValueError('the answer needs an "interface_map" of location to MAC strings')
        missing = [location for location in wanted if location not in found]
        if wanted and missing:
            raise ValueError(f"the interface map has no MAC for {', '.join(missing)}")
        return dict(found)

    def factory() -> tuple[str, ExternalFunction]:
        return (
            module,
            RemoteCall(
                "get_interface_map",
                lambda _: {"connection": connection(), "physical_locations": wanted},
                label="get interface map",
                value=value,
            ),
        )

    return factory


def destroy_call(module: str, connection: Callable[[], dict[str, Any]]) -> FunctionFactory:
    """``destroy()`` sent to ``module``: the machine is gone once any answer comes."""
    return lambda: (
        module,
        RemoteCall(
            "destroy",
            lambda _: {"connection": connection()},
            label="destroy",
            value=lambda _: True,
        ),
    )
