"""One supervised child process of the boot services (dnsmasq, kea-dhcp4, Kea's TFTP dnsmasq).

``Supervised`` starts its command, and whenever the process ends starts it again after a
back-off (0.5 s, doubling to 30 s while it keeps ending within a minute; 0.25 s after a
longer run) until ``stop``. ``restart`` ends the running process to start it
again at once, which is not counted in ``restarts``. The process writes its output (stdout
and stderr) to ``output``; the end of it is logged when the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

__all__ = ["START_SECONDS", "STOP_SECONDS", "Supervised", "tail"]

log = logging.getLogger("subcontractor.boot.supervisor")

START_SECONDS = 10.0
STOP_SECONDS = 10.0


def tail(path: Path, size: int = 2000) -> str:
    """The end of a file, as text ("" when there is none)."""
    try:
        return path.read_bytes()[-size:].decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


async def terminate(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after ``STOP_SECONDS``; returns once the process has ended."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


class Supervised:
    """One child process, started again with back-off whenever it ends, until ``stop``.
    ``ready`` is set while the current process is running and (``check``) answers;
    ``before_launch`` runs before each start (e.g. to mend files the process reads)."""

    def __init__(
        self,
        label: str,
        argv: Sequence[str],
        *,
        output: Path,
        env: dict[str, str] | None = None,
        check: Callable[[], Awaitable[bool]] | None = None,
        before_launch: Callable[[], None] | None = None,
    ) -> None:
        self.label = label
        self.argv = list(argv)
        self.output = output
        self.env = env
        self.check = check
        self.before_launch = before_launch
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.launched = asyncio.Event()  # set once a process was started
        self.restarts = 0
        self.launch_error = ""  # why the last launch failed, if it did
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._restart_now = asyncio.Event()

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.label)

    def restart(self) -> None:
        """End the running process and start it again at once (not a failure)."""
        self._restart_now.set()

    async def wait_ready(self, seconds: float) -> bool:
        """True once the running process is ready; False at once when none runs, or when
        ``seconds`` pass."""
        process = self.process
        if self.ready.is_set():
            return True
        if process is None or process.returncode is not None:
            return False
        ready = asyncio.ensure_future(self.ready.wait())
        ended = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({ready, ended}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            ended.cancel()
            await asyncio.gather(ready, ended, return_exceptions=True)
        return self.ready.is_set()

    async def _launch(self) -> asyncio.subprocess.Process:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
            )
        self.process = process
        self.launched.set()
        log.info("%s started (pid %d)", self.label, process.pid)
        return process

    async def _until_ready(self, process: asyncio.subprocess.Process) -> None:
        deadline = asyncio.get_running_loop().time() + START_SECONDS * 3
        while process.returncode is None:
            if self.check is None or await self.check():
                if process.returncode is None and process is self.process:
                    self.ready.set()
                return
            if asyncio.get_running_loop().time() > deadline:
                log.warning("%s (pid %d) runs but does not answer", self.label, process.pid)
                return
            await asyncio.sleep(0.05)

    async def _serve(self, process: asyncio.subprocess.Process) -> bool:
        """Until the process ends or ``restart`` is asked for; True for the latter."""
        ready = asyncio.create_task(self._until_ready(process))
        ended = asyncio.create_task(process.wait())
        restart = asyncio.create_task(self._restart_now.wait())
        try:
            await asyncio.wait({ended, restart}, return_when=asyncio.FIRST_COMPLETED)
            asked = not ended.done() and not self._stopping
            if asked:
                self._restart_now.clear()
                await terminate(process)
            return asked
        finally:
            self.ready.clear()
            for task in (ready, ended, restart):
                task.cancel()
            await asyncio.gather(ready, ended, restart, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            self._restart_now.clear()  # what a restart was asked for, this start reads
            if self.before_launch is not None:
                self.before_launch()
            try:
                process = await self._launch()
            except OSError as error:
                self.launch_error = f"{self.argv[0]}: {error.strerror or error}"
                log.error("%s could not start: %s", self.label, self.launch_error)
                process = None
            if process is not None and await self._serve(process):
                failures = 0
                continue
            if self._stopping:
                return
            failures = 0 if loop.time() - started > 60 else failures + 1
            delay = min(30.0, 0.25 * 2 ** min(failures, 7))
            self.restarts += 1
            log.warning(
                "%s ended (%s); starting it again in %.1fs: %s",
                self.label,
                "not started" if process is None else f"pid {process.pid}, {process.returncode}",
                delay,
                tail(self.output, 500),
            )
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        self._stopping = True
        if self.process is not None:
            await terminate(self.process)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._restart_now.clear()
        self.launched.clear()
        self.ready.clear()
