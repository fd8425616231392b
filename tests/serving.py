"""A real `contractor serve` process for tests that talk to it over the network."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from contractor.child_process import free_port

CHECKOUT = Path(__file__).resolve().parents[1]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without CONTRACTOR_ settings, plus ``settings``; the checkout comes
    first on the import path, as pytest has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), env.get("PYTHONPATH", "")])
    return env


@contextmanager
def contractor_serve(
    env: dict[str, str],
    cwd: Path,
    timeout: float = 30,
    output: Path | None = None,
    *,
    options: Sequence[str] = (),
    serve_options: Sequence[str] = (),
    stops_cleanly: bool = False,
) -> Iterator[str]:
    """Run `contractor [options] serve [serve_options]` on a free port until the block
    ends; yields its base URL. ``output``: the file its log goes to (read it after the
    block); ``stops_cleanly``: assert that it exits 0 on SIGTERM."""
    port = free_port()
    log = output.open("wb") if output is not None else subprocess.PIPE
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contractor",
            *options,
            "serve",
            "--port",
            str(port),
            *serve_options,
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if output is not None:
        log.close()  # type: ignore[union-attr]  # the server has its own copy
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    printed = server.stdout.read() if server.stdout else b""
                    if output is not None:
                        printed = output.read_bytes()
                    pytest.fail(f"contractor serve did not come up:\n{printed.decode()}")
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        if server.stdout:
            server.stdout.close()
    if stops_cleanly:
        assert server.returncode == 0, output.read_text() if output else server.returncode


@contextmanager
def serving_in_thread(app: Any, timeout: float = 30) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port the kernel chooses, in a thread of this
    process (so its log records reach ``caplog``), until the block ends; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        assert not thread.is_alive(), "uvicorn did not stop"
