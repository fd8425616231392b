"""One `contractor serve` process: uvicorn on a socket bound before the app starts (so
``--port 0`` has a real port to announce, once the app is up), stopping cleanly on SIGINT or
SIGTERM with exit status 0.

uvicorn stops on those signals and then hands the signal back to the handler that was there
before it started, which by default ends the process by that signal (143 for SIGTERM, which
supervisors count as a failure). Here that handler is ours: it asks the server to stop, which
is also right for a signal that arrives before uvicorn has taken over, and does nothing more
once the server has stopped, so a clean stop returns normally.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

__all__ = ["bind", "serve", "url"]


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host`` and ``port`` (0: one the kernel picks); OSError says
    why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def url(sock: socket.socket) -> str:
    """The ``http://`` address ``sock`` listens on."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: Callable[[], None]) -> None:
        super().__init__(config)
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._started()


def serve(
    app: Starlette, sock: socket.socket, *, log_level: str, started: Callable[[], None]
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM; ``started()`` once it answers."""
    server = _Server(uvicorn.Config(app, log_level=log_level), started)

    def stop(_number: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
