"""``ipmi``: power and boot through a BMC over IPMI 2.0 (RMCP+), with pyghmi.

Every function takes ``connection {host, port=623, username, password}``:

* ``set_power {state}`` with ``on``, ``off`` (hard), ``soft_off`` (ask the OS to shut down,
  wait up to ``soft_off_wait``), ``cycle`` or ``reset`` → ``{state}`` as read back from the BMC
  afterwards. ``on`` and ``off`` are confirmed: the state is read until it is the one asked for
  (or ``confirm_timeout`` passes, a retryable failure). A soft off that the OS ignores answers
  the state it found (``on``), and Contractor's ``power_off`` goes on to a hard off.
* ``power_state`` → ``{state: on | off}``.
* ``set_boot_device {device}`` with ``pxe``/``network``, ``disk``/``hd``, ``cdrom``/``optical``,
  ``setup``/``bios``, ``default`` → ``{device}`` (next boot only).
* ``link_test {count, scaler, threshold, delay}`` → ``{score}``: ``count`` power-state reads,
  ``delay`` seconds apart, scored as an exponentially weighted average of successes (1 = all
  answered), stopping early once the score falls below ``threshold``.

One operation at a time per BMC (a lock per host and port, held until pyghmi's thread really
finishes, even after a timeout). A wrong
user name or password is a non-retryable failure naming the BMC; a BMC that does not answer is
retryable. The password never reaches a command line or a message.
Sessions are kept per BMC and credentials (pyghmi keeps them alive) and dropped after any
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, probes, require, require_numbers

__all__ = ["IpmiModule"]

T = TypeVar("T")

DEVICES = {
    "pxe": "network",
    "network": "network",
    "disk": "hd",
    "hd": "hd",
    "cdrom": "optical",
    "optical": "optical",
    "setup": "setup",
    "bios": "setup",
    "default": "default",
}
POWER = ("on", "off", "soft_off", "cycle", "reset")
_CREDENTIALS = ("password", "unauthorized name", "invalid user", "privilege", "unauthorized")


class IpmiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operation_timeout: float = Field(default=60.0, gt=0, description="One whole operation.")
    confirm_timeout: float = Field(default=30.0, gt=0, description="For on/off to show.")
    confirm_interval: float = Field(default=1.0, gt=0)
    soft_off_wait: float = Field(default=30.0, ge=0)


@dataclass(frozen=True)
class _Bmc:
    host: str
    port: int
    username: str
    password: str

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def _bmc(parameters: dict[str, Any]) -> _Bmc:
    connection = require(parameters, "connection", dict)
    host = require(connection, "host", str)
    port = connection.get("port", 623)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TaskFailed(f"connection port must be 1 to 65535, got {port!r}")
    return _Bmc(
        host=host,
        port=port,
        username=require(connection, "username", str),
        password=require(connection, "password", str),
    )


def _failure(bmc: _Bmc, error: Exception) -> TaskFailed:
    text = str(error) if str(error) not in ("", "None") else ""
    lowered = text.lower()
    if any(word in lowered for word in _CREDENTIALS):
        return TaskFailed(
            f"BMC {bmc.label} refused the credentials of user {bmc.username!r} ({text}); "
            "fix the foundation's username/password, then reset the job",
            retryable=False,
        )
    if not text or "timeout" in lowered or "no longer connected" in lowered:
        return TaskFailed(f"BMC {bmc.label} did not answer", retryable=True)
    return TaskFailed(f"BMC {bmc.label}: {text}", retryable=True)


class _Session:
    """A pyghmi command object for one BMC, used in worker threads only (one at a time)."""

    def __init__(self, command: Any) -> None:
        self.command = command

    def power(self) -> str:
        state = self.command.get_power()["powerstate"]
        return str(state)


_OPENING = threading.Lock()


def _open(bmc: _Bmc) -> _Session:
    """Log in to the BMC.

    pyghmi 1.6.19 files every session it starts under ``(bmc, userid, password, port, kg)`` in
    ``Session.initting_sessions`` but removes it under the byte-encoded user and password, so
    the entry stays: a later login with the same credentials then waits forever on a finished
    session, or gets a broken one without an error. We drop the entry ourselves after each
    login, and keep one logged-in command per BMC and credentials instead of logging in again.
    """
    from pyghmi.ipmi import command
    from pyghmi.ipmi.private import session

    with _OPENING:
        try:
            return _Session(
                command.Command(
                    bmc=bmc.host, userid=bmc.username, password=bmc.password, port=bmc.port
                )
            )
        finally:
            session.Session.initting_sessions.pop(
                (bmc.host, bmc.username, bmc.password, bmc.port, None), None
            )


class IpmiModule(Module):
    Options = IpmiOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, IpmiOptions)
        self.settings = options
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.sessions: dict[_Bmc, _Session] = {}

    async def aclose(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}

        def logout() -> None:
            for session in sessions:
                with contextlib.suppress(Exception):
                    session.command.ipmi_session.logout()

        await anyio.to_thread.run_sync(logout)

    def functions(self) -> Mapping[str, Function]:
        return {
            "set_power": self.set_power,
            "power_state": self.power_state,
            "set_boot_device": self.set_boot_device,
            "link_test": self.link_test,
        }

    async def _exclusive(self, bmc: _Bmc, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread, alone on this BMC, within the operation timeout."""
        from pyghmi import exceptions

        lock = self.locks.setdefault((bmc.host, bmc.port), asyncio.Lock())
        timeout = self.settings.operation_timeout
        try:
            await asyncio.wait_for(lock.acquire(), timeout)
        except TimeoutError:
            raise TaskFailed(
                f"BMC {bmc.label} is busy with another operation", retryable=True
            ) from None
        future = asyncio.ensure_future(
            anyio.to_thread.run_sync(work, limiter=self.limiter, abandon_on_cancel=True)
        )
        # the lock is released when the thread is really done, not when we stop waiting
        future.add_done_callback(lambda _: lock.release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise TaskFailed(
                f"BMC {bmc.label}: no answer within {timeout:g}s", retryable=True
            ) from None
        except exceptions.IpmiException as error:
            raise _failure(bmc, error) from None
        except OSError as error:
            raise TaskFailed(
                f"BMC {bmc.label}: {error.strerror or error}", retryable=True
            ) from None

    def _with_session(self, bmc: _Bmc, work: Callable[[_Session], T]) -> Callable[[], T]:
        def run() -> T:
            session = self.sessions.pop(bmc, None) or _open(bmc)
            result = work(session)  # on any error the session is not kept
            self.sessions[bmc] = session
            return result

        return run

    def _wait_for(self, session: _Session, want: str, limit: float) -> str:
        deadline = time.monotonic() + limit
        state = session.power()
        while state != want and time.monotonic() < deadline:
            time.sleep(self.settings.confirm_interval)
            state = session.power()
        return state

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        want = require(parameters, "state", str)
        if want not in POWER:
            raise TaskFailed(f"parameter 'state' must be one of {', '.join(POWER)}, got {want!r}")
        settings = self.settings

        def work(session: _Session) -> tuple[str, bool]:
            current = session.power()
            if want in ("on", "off") and current == want:
                return current, True
            if want == "soft_off":
                if current == "off":
                    return current, True
                session.command.set_power("shutdown", wait=False)
                return self._wait_for(session, "off", settings.soft_off_wait), True
            if want in ("cycle", "reset"):
                session.command.set_power("boot" if want == "cycle" else "reset", wait=False)
                return self._wait_for(session, "on", settings.confirm_timeout), True
            session.command.set_power(want, wait=False)
            state = self._wait_for(session, want, settings.confirm_timeout)
            return state, state == want

        state, confirmed = await self._exclusive(bmc, self._with_session(bmc, work))
        if not confirmed:
            raise TaskFailed(
                f"BMC {bmc.label}: power still {state} {settings.confirm_timeout:g}s after "
                f"asking for {want}",
                retryable=True,
            )
        return {"state": state}

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        state = await self._exclusive(bmc, self._with_session(bmc, _Session.power))
        return {"state": state}

    async def set_boot_device(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        device = require(parameters, "device", str)
        if device not in DEVICES:
            raise TaskFailed(
                f"parameter 'device' must be one of {', '.join(DEVICES)}, got {device!r}"
            )

        def work(session: _Session) -> None:
            session.command.set_bootdev(DEVICES[device])

        await self._exclusive(bmc, self._with_session(bmc, work))
        return {"device": device}

    async def link_test(self, parameters: dict[str, Any]) -> dict[str, Any]:
        _bmc(parameters)  # a malformed connection fails now, not as a bad score
        count, scaler, threshold, delay = require_numbers(
            parameters, {"count": 20, "scaler": 0.85, "threshold": 0.8, "delay": 1}
        )
        score = 1.0
        probing = probes(lambda: self.power_state(parameters), int(count), float(delay))
        async with contextlib.aclosing(probing) as answers:
            async for answered in answers:
                score = scaler * score + (1 - scaler) * float(answered)
                if score < threshold:
                    break
        return {"score": round(score, 4)}
