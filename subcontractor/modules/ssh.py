"""``ssh``: run a command on a machine, or put a file on it, over SSH (asyncssh).

* ``execute {host, port=22, username?, password?, command, timeout=300}`` → ``{rc, output}``:
  the command's exit status and the end of what it wrote (stdout and stderr together, at
  most ``max_output`` characters). A command still running after ``timeout`` seconds is
  stopped and the task fails (not retried: running it again may not be safe).
* ``file {host, port=22, username?, password?, source, destination}`` → ``{rc: true}``: the
  ``source`` URL (http or https) is downloaded and written to ``destination`` by SFTP.

Credentials: the task's ``password`` (a secret: never in an answer, a failure message or a
log line), or the private keys in the ``client_keys`` option, which stay on this machine.
``username`` defaults to the ``username`` option, else the user the agent runs as. Host keys
are checked against the ``known_hosts`` file when the option names one; without it any host
key is taken, as the original's agent did (say so in the site's runbook, or set the option).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require, require_host, require_port

with warnings.catch_warnings():
    # asyncssh still names DSA keys, which the cryptography package deprecates at each use
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh

__all__ = ["SshModule"]


class SshOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = None
    client_keys: list[str] = Field(default_factory=list)
    known_hosts: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    max_output: int = Field(default=4000, ge=0, le=1_000_000)
    download_timeout: float = Field(default=300.0, gt=0)


class SshModule(Module):
    Options = SshOptions

    @property
    def settings(self) -> SshOptions:
        assert isinstance(self.options, SshOptions)
        return self.options

    def functions(self) -> Mapping[str, Function]:
        return {"execute": self.execute, "file": self.file}

    def _target(self, parameters: dict[str, Any]) -> tuple[str, int, str, str | None]:
        host = require_host(parameters, "host")
        port = require_port(parameters, "port", default=22)
        username = parameters.get("username") or self.settings.username or getpass.getuser()
        if not isinstance(username, str):
            raise TaskFailed("parameter 'username' must be a string")
        password = parameters.get("password")
        if password is not None and not isinstance(password, str):
            raise TaskFailed("parameter 'password' must be a string")
        return host, port, username, password or None

    @contextlib.asynccontextmanager
    async def _connect(self, parameters: dict[str, Any]):  # type: ignore[no-untyped-def]
        host, port, username, password = self._target(parameters)
        where = f"ssh {username}@{host}:{port}"
        try:
            connection = await asyncssh.connect(
                host,
                port,
                username=username,
                password=password,
                client_keys=self.settings.client_keys or None,
                known_hosts=self.settings.known_hosts,
                connect_timeout=self.settings.connect_timeout,
                agent_path=None,
                config=None,
                preferred_auth=(
                    "publickey,password" if self.settings.client_keys else "password,publickey"
                ),
            )
        except asyncssh.PermissionDenied:
            raise TaskFailed(f"{where}: the credentials were refused") from None
        except asyncssh.HostKeyNotVerifiable:
            raise TaskFailed(
                f"{where}: the host key is not the one in {self.settings.known_hosts}"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as error:
            reason = (
                getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
            )
            if isinstance(error, TimeoutError):
                reason = f"no answer in {self.settings.connect_timeout:g} s"
            raise TaskFailed(f"{where}: cannot connect ({reason})", retryable=True) from None
        try:
            yield connection, where
        finally:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()

    async def execute(self, parameters: dict[str, Any]) -> dict[str, Any]:
        command: str = require(parameters, "command", str)
        timeout = parameters.get("timeout", 300)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise TaskFailed(f"parameter 'timeout' must be a positive number, got {timeout!r}")
        async with self._connect(parameters) as (connection, where):
            try:
                result = await asyncio.wait_for(
                    connection.run(command, check=False, stderr=asyncssh.STDOUT), timeout
                )
            except TimeoutError:
                raise TaskFailed(f"{where}: the command did not finish in {timeout:g} s") from None
        output = result.stdout if isinstance(result.stdout, str) else ""
        limit = self.settings.max_output
        rc = result.exit_status if result.exit_status is not None else -1
        return {"rc": rc, "output": output[-limit:] if limit else ""}

    async def file(self, parameters: dict[str, Any]) -> dict[str, Any]:
        source: str = require(parameters, "source", str)
        destination: str = require(parameters, "destination", str)
        if not source.startswith(("http://", "https://")):
            raise TaskFailed(f"parameter 'source' must be an http or https URL: {source!r}")
        if not destination:
            raise TaskFailed("parameter 'destination' must be a path on the host")
        with tempfile.TemporaryDirectory(prefix="subcontractor-ssh-") as scratch:
            local = Path(scratch) / "download"
            await self._download(source, local)
            async with self._connect(parameters) as (connection, where):
                try:
                    async with connection.start_sftp_client() as sftp:
                        await sftp.put(str(local), destination)
                except (OSError, asyncssh.Error) as error:
                    reason = getattr(error, "reason", None) or str(error)
                    raise TaskFailed(f"{where}: cannot write {destination}: {reason}") from None
        return {"rc": True}

    async def _download(self, source: str, local: Path) -> None:
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.settings.download_timeout, trust_env=False
                ) as client,
                client.stream("GET", source) as response,
            ):
                if response.status_code != 200:
                    raise TaskFailed(
                        f"download of {source} answered {response.status_code}", retryable=True
                    )
                with local.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as error:
            raise TaskFailed(f"download of {source} failed: {error}", retryable=True) from None
