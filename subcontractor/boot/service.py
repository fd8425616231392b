"""The boot services as the agent runs them (``[boot]``, docs/boot.md): the follower keeps
the boot data, the DHCP backend serves it (started with the first data, changed live
after), the HTTP boot endpoint answers iPXE, and the leases the backend holds are reported
to Contractor every ``lease_report_seconds`` (and soon after they change)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from subcontractor.boot.backend import BootData, DhcpBackend, Lease, ServeSettings, make_backend
from subcontractor.boot.endpoint import EndpointSettings, build_endpoint
from subcontractor.boot.follower import Follower
from subcontractor.boot.leases import report_leases
from subcontractor.client import Client, Rejected, Unavailable
from subcontractor.config import Config, ConfigError

__all__ = ["BootService", "lease_report"]

log = logging.getLogger("subcontractor.boot")


def lease_report(leases: list[Lease]) -> list[dict[str, Any]]:
    """``leases`` as Contractor's lease report names them."""
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "mac": lease.mac,
            "address": lease.address,
            "hostname": (lease.hostname or "")[:253],
            "ends": None if lease.expires is None else lease.expires.isoformat(),
            "state": "active" if lease.expires is None or lease.expires > now else "expired",
        }
        for lease in leases
    ]


class BootService:
    """Follower + DHCP backend + boot endpoint + lease reports, for one site."""

    def __init__(
        self,
        config: Config,
        client: Client,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        boot = config.boot
        self.config = config
        self.client = client
        self.site = config.contractor.site
        self.state_dir = boot.state_dir or (config.agent.journal_dir / "boot")
        self.host, self.port = boot.listen()
        self.socket = _listening(self.host, self.port)
        self.port = self.socket.getsockname()[1]
        listen_host = boot.server_address if self.host in ("0.0.0.0", "") else self.host
        self.http_base = boot.http_base or f"http://{listen_host}:{self.port}"
        self.settings = ServeSettings(
            interfaces=tuple(boot.interfaces),
            server_address=boot.server_address,
            http_base=self.http_base,
            tftp_root=boot.tftp_root,
            state_dir=self.state_dir,
            proxy=boot.proxy,
            lease_seconds=boot.lease_seconds,
            uefi_boot_file=boot.uefi_boot_file,
        )
        self.backend: DhcpBackend = make_backend(boot.backend, self.settings)
        self.follower = Follower(client, self.site, self.state_dir, self._changed, wait=boot.wait)
        self.endpoint = build_endpoint(
            EndpointSettings(
                site=self.site,
                files_dir=boot.files_dir,
                cache_dir=self.state_dir / "files",
                max_body_bytes=boot.max_body_bytes,
                rate=boot.requests_per_second,
                burst=boot.request_burst,
                upstream_timeout=boot.upstream_timeout,
            ),
            config.contractor,
            lambda: self.follower.data,
            transport=transport,
        )
        self.started = False
        self.reported: list[dict[str, Any]] | None = None
        self._report_now = asyncio.Event()

    async def _changed(self, data: BootData) -> None:
        if not self.started:
            await self.backend.start(data)
            self.started = True
        else:
            await self.backend.apply(data)
        self._report_now.set()

    async def report_once(self) -> int | None:
        """Report the leases when they differ from the last report; how many were new."""
        leases = lease_report(await self.backend.leases())
        if leases == self.reported:
            return None
        added = await report_leases(self.client, self.site, leases)
        self.reported = leases
        return added

    async def _reporting(self, stop: asyncio.Event) -> None:
        seconds = self.config.boot.lease_report_seconds
        lease_file = getattr(self.backend, "lease_file", None)
        seen: float | None = None
        while not stop.is_set():
            # the lease file's change is looked at often; the report goes at least every
            # lease_report_seconds
            waited = 0.0
            while waited < seconds and not stop.is_set() and not self._report_now.is_set():
                await asyncio.sleep(min(1.0, seconds))
                waited += min(1.0, seconds)
                moment = _mtime(lease_file) if isinstance(lease_file, Path) else None
                if moment != seen:
                    seen = moment
                    break
            self._report_now.clear()
            if not self.started or stop.is_set():
                continue
            if waited >= seconds:
                self.reported = None  # again, whether changed or not
            try:
                await self.report_once()
            except (Unavailable, Rejected) as error:
                log.warning("leases not reported (%s); next time", error)
            except Exception:  # a damaged lease file must not end the reports
                log.exception("leases not reported; next time")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then stop every process started."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        server = uvicorn.Server(
            uvicorn.Config(self.endpoint, log_level="warning", lifespan="off", access_log=False)
        )
        serving = asyncio.create_task(server.serve(sockets=[self.socket]), name="boot-endpoint")
        following = asyncio.create_task(self.follower.run(stop), name="boot-follower")
        reporting = asyncio.create_task(self._reporting(stop), name="boot-leases")
        log.info(
            "boot services for site %r: %s on %s, endpoint %s",
            self.site,
            self.backend.name,
            ", ".join(self.settings.interfaces),
            self.http_base,
        )
        try:
            await stop.wait()
        finally:
            server.should_exit = True
            for task in (following, reporting):
                task.cancel()
            await asyncio.gather(following, reporting, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, 5)
            await self.backend.stop()
            await self.endpoint.state.upstream.aclose()
            self.socket.close()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"boot.http_listen: cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
