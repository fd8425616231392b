"""``iputils``: reachability from where the agent runs.

* ``ping {target, count=5}`` → ``{result: percent of replies received}``, through the system
  ``ping`` (no privileges needed where ``ping`` has them).
* ``port_state {target, port}`` → ``{state: open | closed | timeout | unreachable | error: ...}``,
  one TCP connect bounded by the ``connect_timeout`` option.
* ``wait_for_port {target, port, timeout=60}`` → the same, trying until the port is open or the
  deadline passes.
* ``snmp_get {connection, oid}`` → ``{value}`` and ``snmp_set {connection, oid, value}`` →
  ``{done: true}`` (``subcontractor.modules.snmp``), each bounded by the ``snmp_timeout`` option.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import shutil
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require_host, require_port
from subcontractor.modules import snmp

__all__ = ["IputilsModule"]

_LOSS = re.compile(r"(\d+(?:\.\d+)?)% packet loss")


class IputilsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ping_command: str = "ping"
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    retry_interval: float = Field(default=1.0, gt=0, le=60)
    snmp_timeout: float = Field(default=5.0, gt=0, le=120)


def _target(parameters: dict[str, Any]) -> str:
    return require_host(parameters, "target")


def _port(parameters: dict[str, Any]) -> int:
    return require_port(parameters, "port")


class IputilsModule(Module):
    Options = IputilsOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, IputilsOptions)
        self.settings = options

    def functions(self) -> Mapping[str, Function]:
        return {
            "ping": self.ping,
            "port_state": self.port_state,
            "wait_for_port": self.wait_for_port,
            "snmp_get": self.snmp_get,
            "snmp_set": self.snmp_set,
        }

    async def snmp_get(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return await snmp.snmp_get(parameters, wait_seconds=self.settings.snmp_timeout)

    async def snmp_set(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return await snmp.snmp_set(parameters, wait_seconds=self.settings.snmp_timeout)

    async def ping(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = _target(parameters)
        count = parameters.get("count", 5)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise TaskFailed(f"parameter 'count' must be 1 to 100, got {count!r}")
        command = shutil.which(self.settings.ping_command)
        if command is None:
            raise TaskFailed(f"no {self.settings.ping_command!r} command on this subcontractor")
        process = await asyncio.create_subprocess_exec(
            command,
            "-n",
            "-q",
            "-c",
            str(count),
            "-i",
            "0.2",
            "-W",
            "1",
            target,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), count * 1.5 + 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TaskFailed(f"ping {target} did not finish", retryable=True) from None
        text = output.decode(errors="replace")
        match = _LOSS.search(text)
        if match is None:
            # unknown host and the like: ping says so on its last line
            last = text.strip().splitlines()[-1:] or ["no output"]
            raise TaskFailed(f"ping {target}: {last[0]}", retryable=True)
        return {"result": round(100.0 - float(match.group(1)), 1)}

    async def _connect(self, target: str, port: int) -> str:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(target, port), self.settings.connect_timeout
            )
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "closed"
        except OSError as error:
            if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return "unreachable"
            return f"error: {error.strerror or error}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return "open"

    async def port_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return {"state": await self._connect(_target(parameters), _port(parameters))}

    async def wait_for_port(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target, port = _target(parameters), _port(parameters)
        timeout = parameters.get("timeout", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise TaskFailed(f"parameter 'timeout' must be a positive number, got {timeout!r}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await self._connect(target, port)
            if state == "open" or loop.time() >= deadline:
                return {"state": state}
            await asyncio.sleep(min(self.settings.retry_interval, deadline - loop.time()))
