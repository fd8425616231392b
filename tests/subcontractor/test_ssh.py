"""The ``ssh`` module against a real OpenSSH server on loopback (a throwaway host key, a
client key of its own): commands and their exit status, files put by SFTP from an HTTP
source, host keys checked when ``known_hosts`` is set, and refusals that show no secret."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subcontractor.module import TaskFailed
from tests.subcontractor.peers import Sshd, sshd
from tests.subcontractor.test_modules import module


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Sshd]:
    with sshd(tmp_path / "sshd") as running:
        yield running


def ssh(server: Sshd, **options: Any) -> Any:
    defaults: dict[str, Any] = {
        "client_keys": [str(server.client_key)],
        "known_hosts": str(server.known_hosts),
        "connect_timeout": 5,
    }
    return module("ssh", **{**defaults, **options}).functions()


def at(server: Sshd, **parameters: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "username": server.username, **parameters}


async def test_execute_returns_the_exit_status_and_output(server: Sshd) -> None:
    functions = ssh(server)
    answer = await functions["execute"](at(server, command="echo out; echo err >&2; exit 3"))
    assert answer["rc"] == 3
    assert answer["output"].split() == ["out", "err"]
    assert (await functions["execute"](at(server, command="true")))["rc"] == 0
    with pytest.raises(TaskFailed, match=r"did not finish in 0\.5 s"):
        await functions["execute"](at(server, command="sleep 5", timeout=0.5))


async def test_file_is_downloaded_and_put_by_sftp(server: Sshd, tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    (served / "firmware.bin").write_bytes(b"\x00\x01firmware" * 1000)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}"
        destination = tmp_path / "on-the-host.bin"
        functions = ssh(server)
        answer = await functions["file"](
            at(server, source=f"{url}/firmware.bin", destination=str(destination))
        )
        assert answer == {"rc": True}
        assert destination.read_bytes() == (served / "firmware.bin").read_bytes()
        with pytest.raises(TaskFailed, match="answered 404") as missing:
            await functions["file"](at(server, source=f"{url}/nothing", destination="/tmp/x"))
        assert missing.value.retryable
        with pytest.raises(TaskFailed, match="http or https URL"):
            await functions["file"](at(server, source="file:///etc/shadow", destination="/x"))
    finally:
        web.shutdown()
        web.server_close()
        thread.join(timeout=10)


async def test_a_wrong_password_is_refused_without_showing_it(server: Sshd) -> None:
    functions = ssh(server, client_keys=[])
    with pytest.raises(TaskFailed) as refused:
        await functions["execute"](at(server, command="true", password="not-the-password-42"))
    assert refused.value.message == (
        f"ssh {server.username}@127.0.0.1:{server.port}: the credentials were refused"
    )
    assert not refused.value.retryable


async def test_host_keys_are_checked_against_known_hosts(server: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_known_hosts"
    other.write_text(
        f"[127.0.0.1]:{server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIB3o0Lq1JyQyNN0Ykh0r0g2lJm3vT7vXkq7XgQx0cS7Q\n"
    )
    with pytest.raises(TaskFailed, match="the host key is not the one in") as refused:
        await ssh(server, known_hosts=str(other))["execute"](at(server, command="true"))
    assert not refused.value.retryable
    # without known_hosts, any host key is taken (as the original's agent did)
    answer = await ssh(server, known_hosts=None)["execute"](at(server, command="true"))
    assert answer["rc"] == 0


async def test_unreachable_is_retryable_and_parameters_are_checked(server: Sshd) -> None:
    functions = ssh(server, connect_timeout=2)
    with pytest.raises(TaskFailed, match="cannot connect") as unreachable:
        await functions["execute"]({"host": "127.0.0.1", "port": 1, "command": "true"})
    assert unreachable.value.retryable
    for parameters, expected in [
        ({"host": "-oProxyCommand=x", "command": "true"}, "not a host name"),
        ({"host": "127.0.0.1", "port": 70000, "command": "true"}, "'port'"),
        ({"host": "127.0.0.1"}, "'command' is missing"),
        ({"host": "127.0.0.1", "command": "true", "timeout": 0}, "'timeout'"),
    ]:
        with pytest.raises(TaskFailed, match=expected):
            await functions["execute"](parameters)
