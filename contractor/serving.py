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

import json
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from contractor.settings import Settings

__all__ = ["METRICS_ENV", "bind", "metrics_directory", "serve", "settings_json", "url"]

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode


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
    # uvicorn's lines go through contractor.logs like every other; the access line is
    # access's (written inside the request: it has the request id)
    config = uvicorn.Config(app, log_level=log_level, log_config=None, access_log=False)
    server = _Server(config, started)

    def stop(_number: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()


@contextmanager
def metrics_directory() -> Iterator[str]:
    """A private directory for the metrics of ``serve --workers`` processes, removed at the
    end (a stale one would add a previous run's counts to this one's)."""
    directory = tempfile.mkdtemp(prefix="contractor-metrics-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def settings_json(settings: Settings) -> str:
    """``settings`` as JSON for a worker process, secrets included (pydantic's own JSON
    shows them as asterisks)."""
    dumped = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            dumped[name] = value.get_secret_value()
    return json.dumps(dumped)
