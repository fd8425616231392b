"""What a subcontractor module is, and how the agent finds them.

A module is a class registered under the entry-point group ``subcontractor.modules`` (the entry
point's name is the module name Contractor sends). It is built once with its options (the
``[modules.<name>]`` table minus ``concurrency`` and ``task_timeout``), checked by its
``Options`` model, and offers async functions taking the task's parameters and returning a
JSON object. A function that cannot do its work raises ``TaskFailed``: ``retryable=True`` when
trying again later may help (a BMC that does not answer), ``False`` when it cannot (wrong
credentials, bad parameters). Blocking libraries run in worker threads (``anyio.to_thread``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from subcontractor.config import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Function",
    "Module",
    "NoOptions",
    "TaskFailed",
    "available_modules",
    "load_modules",
    "probes",
    "require",
    "require_host",
    "require_numbers",
    "require_port",
]

ENTRY_POINT_GROUP = "subcontractor.modules"

Function = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


class TaskFailed(Exception):
    """The task could not be done; the message goes to the job (no secrets in it)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Module:
    """Base class of a module; subclasses set ``Options`` and implement ``functions``."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        self.name = name
        self.options = options
        self.concurrency = concurrency

    def functions(self) -> Mapping[str, Function]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the module holds (sessions, sockets)."""


def require(parameters: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """The task parameter ``name``, of type ``kind``, or a non-retryable failure naming it."""
    if name not in parameters:
        raise TaskFailed(f"parameter {name!r} is missing")
    value = parameters[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        expected = " or ".join(k.__name__ for k in _tuple(kind))
        raise TaskFailed(f"parameter {name!r} must be {expected}, got {type(value).__name__}")
    return value


_HOST = re.compile(r"[A-Za-z0-9.:_\-]{1,253}\Z")


def require_host(parameters: Mapping[str, Any], name: str, *, where: str = "parameter") -> str:
    """The host name or address ``name`` (never an option-like ``-x``), or a failure."""
    host: str = require(parameters, name, str)
    if not _HOST.match(host) or host.startswith("-"):
        raise TaskFailed(f"{where} {name!r} is not a host name or address: {host!r}")
    return host


def require_port(
    parameters: Mapping[str, Any],
    name: str,
    *,
    default: int | None = None,
    where: str = "parameter",
) -> int:
    """The port ``name`` (1 to 65535; ``default`` when it is not given), or a failure."""
    port = parameters.get(name, default) if default is not None else require(parameters, name, int)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TaskFailed(f"{where} {name!r} must be 1 to 65535, got {port!r}")
    return port


def require_numbers(parameters: Mapping[str, Any], defaults: Mapping[str, float]) -> list[Any]:
    """The task parameters named in ``defaults`` (each its default when not given), in that
    order, or a non-retryable failure naming the first that is not a number ≥ 0."""
    values = [parameters.get(name, default) for name, default in defaults.items()]
    for name, value in zip(defaults, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise TaskFailed(f"parameter {name!r} must be a number ≥ 0, got {value!r}")
    return values


async def probes(
    probe: Callable[[], Awaitable[object]], count: int, delay: float
) -> AsyncGenerator[bool, None]:
    """Call ``probe`` ``count`` times, ``delay`` seconds apart (a link test), yielding whether
    each answered: a retryable failure is no answer, any other one ends the test."""
    for number in range(count):
        if number:
            await asyncio.sleep(delay)
        try:
            await probe()
        except TaskFailed as failure:
            if not failure.retryable:
                raise
            answered = False
        else:
            answered = True
        yield answered


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def available_modules() -> dict[str, str]:
    """Installed module names and the objects they point to."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_modules(
    wanted: Mapping[str, int], options: Mapping[str, Mapping[str, Any]]
) -> dict[str, Module]:
    """Build the ``wanted`` modules (name → concurrency) with their options."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    modules: dict[str, Module] = {}
    for name, concurrency in wanted.items():
        if name not in found:
            have = ", ".join(sorted(found)) or "none"
            raise ConfigError(f"modules.{name}: no such module is installed (installed: {have})")
        try:
            cls = found[name].load()
        except ImportError as error:  # its extra is not installed (boto3 for aws)
            raise ConfigError(
                f"modules.{name}: cannot be loaded ({error}); is its extra installed? "
                f"(pip install 'contractor[{name}]')"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise ConfigError(f"modules.{name}: {found[name].value} is not a subcontractor Module")
        try:
            checked = cls.Options.model_validate(dict(options.get(name, {})))
        except ValidationError as error:
            problems = []
            for item in error.errors():
                key = ".".join(["modules", name, *(str(p) for p in item["loc"])])
                message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
                problems.append(f"{key}: {message}")
            raise ConfigError("; ".join(problems)) from None
        modules[name] = cls(name, checked, concurrency=concurrency)
    return modules
