"""A server run as a child process (an emulator, ``contractor serve`` for a test or a
bench): waiting until it answers, and stopping it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ["ChildDidNotStart", "free_port", "stop_child", "wait_until_up"]


def free_port() -> int:
    """A loopback TCP port the kernel hands out (free when this returns)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ChildDidNotStart(Exception):
    """The child exited, or did not answer in time."""


def wait_until_up(
    process: subprocess.Popen[bytes], answers: Callable[[], bool], *, seconds: float = 30
) -> None:
    """Call ``answers`` every 0.1 s until it returns true. ``ChildDidNotStart`` when the
    process exits first or ``seconds`` pass (the process is left running: stop it)."""
    deadline = time.monotonic() + seconds
    while not answers():
        if process.poll() is not None or time.monotonic() > deadline:
            raise ChildDidNotStart(f"process {process.pid} did not answer")
        time.sleep(0.1)


def stop_child(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 20
) -> int:
    """Send ``sig`` (unless it has exited), wait ``wait`` seconds, then kill it; its exit
    status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode
