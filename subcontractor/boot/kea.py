"""The second DHCP backend: Kea (Debian ``kea-dhcp4-server``), driven over its control
socket, behind the same ``DhcpBackend`` interface as dnsmasq (docs/boot.md, "Kea backend").

Files under ``<state_dir>/kea/``: ``kea-dhcp4.json`` (``kea_config.render_config``),
``kea4.sock`` (the control socket), ``leases4.csv`` (the memfile lease database, kept
across restarts), ``kea-dhcp4.log``, and the pid and lock files Kea keeps
(``KEA_PIDFILE_DIR``, ``KEA_LOCKFILE_DIR`` point there, so two backends never meet).

* ``start`` writes the configuration and runs ``kea-dhcp4 -c kea-dhcp4.json``, supervised:
  when it ends it is started again after a back-off (0.5 s, doubling to 30 s while it
  keeps ending within a minute; 0.25 s after a longer run). ``start`` answers once the
  control socket answers.
* ``apply`` sends the new configuration with ``config-set`` and saves it with
  ``config-write``: the same process goes on, and its leases with it (Kea reads the memfile
  again). Debian's Kea 2.2 ships no ``host_cmds`` hook (no ``reservation-add``), so a
  reservation is a configuration change. A configuration Kea refuses raises
  ``KeaCommandError`` with Kea's text, and ``config-reload`` puts the last good one back
  (Kea 2.2 serves nothing after a refused ``config-set``). While Kea is down (between
  restarts) ``apply`` writes the file the restart reads. A lease of a reserved address to
  another MAC (the machine's, before its MAC changed) is dropped with ``lease4-del``.
* ``leases`` asks ``lease4-get-all`` (the ``lease_cmds`` hook, in Debian's ``kea-common``),
  and reads the memfile when Kea cannot answer (down, or no hook).
* Kea serves no TFTP: a dnsmasq with no IPv4 range and ``port=0`` (no DHCP, no DNS)
  serves ``tftp_root`` on the same interfaces, and the IPv6 router advertisements iPXE
  waits for, supervised the same way.

Kea has no proxy DHCP: a backend asked for one is refused (``ConfigError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from subcontractor.boot.backend import BootData, Lease, ServeSettings
from subcontractor.boot.kea_config import KeaPaths, render_config
from subcontractor.boot.kea_control import (
    KeaCommandError,
    KeaControl,
    KeaControlError,
    KeaError,
    read_memfile,
)
from subcontractor.boot.supervisor import START_SECONDS, Supervised, tail
from subcontractor.config import ConfigError

__all__ = ["KeaBackend", "find_lease_hook", "tftp_config"]

log = logging.getLogger("subcontractor.boot.kea")

SOCKET_PATH_MAX = 107  # sun_path less its terminating NUL
LEASE_HOOK = "libdhcp_lease_cmds.so"
HOOK_DIRECTORIES = ("/usr/lib/*/kea/hooks", "/usr/lib/kea/hooks", "/usr/local/lib/kea/hooks")


def find_lease_hook(directories: Sequence[str] = HOOK_DIRECTORIES) -> Path | None:
    """Kea's lease commands hook library, where the installed Kea has one."""
    for pattern in directories:
        for found in sorted(glob.glob(os.path.join(pattern, LEASE_HOOK))):
            return Path(found)
    return None


def tftp_config(settings: ServeSettings, directory: Path) -> str:
    """A dnsmasq configuration that serves TFTP from ``tftp_root`` and IPv6 router
    advertisements, and no DHCP (no IPv4 range) or DNS (``port=0``)."""
    return "\n".join(
        [
            "# written by the subcontractor's boot services (Kea backend): TFTP only",
            "port=0",  # no DNS; and no dhcp-range: no DHCP
            "no-resolv",
            "no-hosts",
            "bind-interfaces",
            "user=root",
            *(f"interface={name}" for name in settings.interfaces),
            "enable-tftp",
            f"tftp-root={settings.tftp_root}",
            "tftp-no-fail",
            f"log-facility={directory / 'tftp.log'}",
            # IPv6 router advertisements only (no DHCPv6): iPXE waits ~13 s for an IPv6
            # router without one, as with the dnsmasq backend
            "enable-ra",
            *(f"dhcp-range=::,constructor:{name},ra-only" for name in settings.interfaces),
            "",
        ]
    )


def _write_json(path: Path, config: dict[str, Any]) -> None:
    _write(path, json.dumps(config, indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    part = path.with_name(f".{path.name}.part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


class KeaBackend:
    """kea-dhcp4 (and a TFTP-only dnsmasq) serving the boot data.

    ``program`` and ``tftp_program`` name the executables; ``wrap`` is put before each
    command line (e.g. ``ip netns exec NAME``, as the tests run them in a namespace);
    ``tftp=False`` leaves TFTP to another server; ``hook_directories``: where to look for
    the lease commands hook (none found: the leases are read from the memfile)."""

    name = "kea"

    def __init__(
        self,
        settings: ServeSettings,
        *,
        program: str = "kea-dhcp4",
        tftp_program: str = "dnsmasq",
        wrap: Sequence[str] = (),
        tftp: bool = True,
        hook_directories: Sequence[str] = HOOK_DIRECTORIES,
    ) -> None:
        if settings.proxy:
            raise ConfigError(
                "boot.proxy: Kea has no proxy DHCP (it cannot serve beside another DHCP "
                'server); use boot.backend = "dnsmasq" for proxy DHCP, or set boot.proxy = '
                "false to let Kea give the addresses"
            )
        self.settings = settings
        self.paths = KeaPaths(settings.state_dir / "kea")
        if len(os.fsencode(self.paths.socket)) > SOCKET_PATH_MAX:
            raise ConfigError(
                f"boot.state_dir: {settings.state_dir} is too long for Kea's control socket "
                f"({self.paths.socket} is over {SOCKET_PATH_MAX} bytes, the limit of a unix "
                "socket path); choose a shorter directory"
            )
        self.hook = find_lease_hook(hook_directories)
        self.control = KeaControl(self.paths.socket)
        directory = self.paths.directory
        env = {**os.environ, "KEA_PIDFILE_DIR": str(directory), "KEA_LOCKFILE_DIR": str(directory)}
        self.kea = Supervised(
            "kea-dhcp4",
            [*wrap, program, "-c", str(self.paths.config)],
            output=directory / "kea-dhcp4.out",
            env=env,
            check=self._answers,
        )
        self.tftp_config = directory / "tftp.conf"
        self.tftp: Supervised | None = None
        if tftp:
            self.tftp = Supervised(
                "dnsmasq (TFTP)",
                [*wrap, tftp_program, "--keep-in-foreground", f"--conf-file={self.tftp_config}"],
                output=directory / "tftp.out",
            )
        self._lock = asyncio.Lock()
        self._started = False
        self._applied: dict[str, Any] | None = None

    @property
    def restarts(self) -> int:
        """How often kea-dhcp4 was started again after it ended."""
        return self.kea.restarts

    async def _answers(self) -> bool:
        try:
            await self.control.command("status-get")
        except KeaError:
            return False
        return True

    def _render(self, data: BootData) -> dict[str, Any]:
        hooks = (self.hook,) if self.hook is not None else ()
        return render_config(data, self.settings, self.paths, hooks=hooks)

    # -- DhcpBackend -------------------------------------------------------------------

    async def start(self, data: BootData) -> None:
        async with self._lock:
            if self._started:
                raise RuntimeError("kea-dhcp4 is already started")
            # (10,000 reservations take a few tenths of a second: not on the event loop)
            config = await asyncio.to_thread(self._render, data)
            self.paths.directory.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(_write_json, self.paths.config, config)
            self._started = True
            if self.tftp is not None:
                _write(self.tftp_config, tftp_config(self.settings, self.paths.directory))
                self.tftp.start()
            self.kea.start()
            if not await self._first_ready():
                output = self._why()
                await self._stop_all()
                raise KeaError(
                    f"kea-dhcp4 did not answer on {self.paths.socket} within "
                    f"{START_SECONDS:g}s of starting with {self.paths.config}: {output}"
                )
            self._applied = config

    def _why(self) -> str:
        """What Kea said when it would not run: the errors it wrote (before its loggers are
        set up, to its output; after, to its log), else the end of its output."""
        errors: list[str] = []
        for path in (self.kea.output, self.paths.log):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                continue
            errors += [line for line in lines[-200:] if " ERROR " in line or " FATAL " in line]
        return (
            "\n".join(errors[-3:])
            or self.kea.launch_error
            or tail(self.kea.output)
            or "(nothing logged)"
        )

    async def _first_ready(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while loop.time() < deadline:
            if await self.kea.wait_ready(max(0.0, deadline - loop.time())):
                return True
            if self.kea.restarts:  # the first process ended before it answered
                return False
            await asyncio.sleep(0.02)
        return False

    async def apply(self, data: BootData) -> None:
        """``data`` live: ``config-set`` and ``config-write`` to the running kea-dhcp4 (no
        restart, no lease dropped), or the file its next start reads while none runs.
        ``ValueError`` (naming the entry) or ``KeaCommandError`` (Kea's reason): nothing
        changed."""
        async with self._lock:
            config = await asyncio.to_thread(self._render, data)
            if config == self._applied:
                return
            if not self._started:
                raise RuntimeError("kea-dhcp4 is not started")
            if await self.kea.wait_ready(START_SECONDS):
                try:
                    try:
                        await self.control.command("config-set", config)
                    except KeaCommandError:
                        await self._recover()
                        raise
                    await self.control.command("config-write", {"filename": str(self.paths.config)})
                    await self._drop_stale_leases(data)
                except KeaControlError:
                    if self.kea.alive():
                        raise
                    await asyncio.to_thread(_write_json, self.paths.config, config)
                log.info("kea-dhcp4 serves the boot data of version %d", data.version)
            else:
                await asyncio.to_thread(_write_json, self.paths.config, config)
                log.info("kea-dhcp4 is down: its restart reads the boot data of version %d",
                         data.version)  # fmt: skip
            self._applied = config

    async def _drop_stale_leases(self, data: BootData) -> None:
        """Drop the lease of a reserved address to another MAC (the machine's MAC before
        a change: its new NIC would get another address until that lease expired). Needs
        the lease commands; without them the old lease runs out by itself."""
        if self.hook is None:
            return
        reserved = {reservation.address: reservation.mac for reservation in data.reservations}
        for lease in await self.control.leases():
            owner = reserved.get(lease.address)
            if owner is not None and owner != lease.mac:
                await self.control.command("lease4-del", {"ip-address": lease.address})
                log.info("the lease of %s to %s dropped: the address is reserved for %s",
                         lease.address, lease.mac, owner)  # fmt: skip

    async def _recover(self) -> None:
        """After a refused ``config-set``: Kea 2.2 then logs "new configuration failed with
        an error which cannot be recovered" and serves nothing, though it still answers
        commands; ``config-reload`` reads the file again, which holds the last good
        configuration (it is written only after a ``config-set`` succeeds). Should that fail
        too, the process is ended and the supervisor starts it again from the file."""
        try:
            await self.control.command("config-reload")
            log.warning("kea-dhcp4 refused the new configuration; it serves the last good one")
        except KeaError as error:
            log.error("kea-dhcp4 could not reload %s (%s): starting it again", self.paths.config,
                      error)  # fmt: skip
            process = self.kea.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()

    async def leases(self) -> list[Lease]:
        if self.hook is not None and self.kea.ready.is_set():
            try:
                return await self.control.leases()
            except KeaError as error:
                log.warning("%s; reading %s instead", error, self.paths.leases)
        return await asyncio.to_thread(read_memfile, self.paths.leases)

    def alive(self) -> bool:
        return self.kea.alive() and (self.tftp is None or self.tftp.alive())

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_all()

    async def _stop_all(self) -> None:
        await self.kea.stop()
        if self.tftp is not None:
            await self.tftp.stop()
        self._started = False
        self._applied = None
