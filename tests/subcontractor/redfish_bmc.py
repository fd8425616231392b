"""The Redfish BMC of the tests: ``contractor.redfish_emulator`` (``sushy-emulator --fake``
over HTTPS), skipped (failed under CI) where sushy-tools is not installed, and a loopback HTTP
server with an image for virtual media."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from contractor import redfish_emulator
from contractor.redfish_emulator import RedfishBmc, Tls, make_tls

__all__ = ["RedfishBmc", "Tls", "image_server", "make_tls", "require_emulator", "sushy_emulator"]


def require_emulator() -> None:
    """sushy-tools (the ``redfish`` extra), or a skip; a failure under CI, where scripts/test
    installs it."""
    if not redfish_emulator.installed():
        message = "sushy-tools not installed (pip install -e '.[redfish]'; scripts/test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def sushy_emulator(directory: Path, **options: Any) -> Iterator[RedfishBmc]:
    require_emulator()
    with redfish_emulator.sushy_emulator(directory, **options) as bmc:
        yield bmc


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def image_server(directory: Path, name: str = "installer.iso") -> Iterator[str]:
    """A loopback HTTP server with a small ISO-named file; yields its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"CD001" + os.urandom(4096))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
