"""The default DHCP backend: dnsmasq, configured from the boot data and supervised.

Files under ``<state_dir>/dnsmasq/``:

* ``dnsmasq.conf``: what changes rarely: the interfaces, one ``dhcp-range`` per pool (full
  DHCP) or per subnet (``static`` for reservations outside pools; ``proxy`` beside another
  DHCP server), the subnets' options, TFTP of iPXE by client architecture, iPXE's chain URL;
* ``hosts/``: one ``dhcp-host`` file per reservation, given as ``--dhcp-hostsdir``, which
  dnsmasq watches with inotify: a new reservation is live without a signal or a restart;
* ``leases``: dnsmasq's lease file (kept across restarts: no lease is dropped).

``apply`` writes what changed. A new reservation is a new file (dnsmasq reads it at once);
a reservation changed or removed, or a change to ``dnsmasq.conf``, restarts dnsmasq
(dnsmasq only ever adds host records from ``dhcp-hostsdir``; a restart reads the lease file
again, so leases survive it, but for a reserved address leased to another MAC, which is
dropped while dnsmasq is stopped). SIGHUP is never sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from subcontractor.boot.backend import (
    BIOS_BOOT_FILE,
    BootData,
    Lease,
    Pool,
    Reservation,
    ServeSettings,
)
from subcontractor.boot.leases import read_dnsmasq_leases
from subcontractor.boot.supervisor import START_SECONDS, Supervised

__all__ = ["DnsmasqBackend", "host_files", "render_config"]

log = logging.getLogger("subcontractor.boot.dnsmasq")

# option 93 (client system architecture, RFC 4578): 7 and 9 are x86-64 UEFI, 6 IA32 UEFI
UEFI_ARCHITECTURES = (6, 7, 9)


def _tag(entry_id: str) -> str:
    kind, _, number = entry_id.partition(":")
    return f"{kind[:1]}{number}"


def _subnets(data: BootData) -> list[tuple[str, str, Reservation | Pool]]:
    """Each subnet once, with a tag and the entry whose options it takes (the first)."""
    seen: dict[str, tuple[str, str, Reservation | Pool]] = {}
    entries: list[Reservation | Pool] = [*data.pools, *data.reservations]
    for entry in entries:
        if entry.subnet not in seen:
            seen[entry.subnet] = (entry.subnet, f"net{len(seen)}", entry)
    return list(seen.values())


def _options(tag: str, entry: Reservation | Pool) -> list[str]:
    lines = []
    if entry.gateway:
        lines.append(f"dhcp-option=tag:{tag},option:router,{entry.gateway}")
    if entry.dns_servers:
        lines.append(f"dhcp-option=tag:{tag},option:dns-server,{','.join(entry.dns_servers)}")
    if entry.domain:
        lines.append(f"dhcp-option=tag:{tag},option:domain-name,{entry.domain}")
    if entry.dns_search:
        lines.append(f"dhcp-option=tag:{tag},option:domain-search,{','.join(entry.dns_search)}")
    return lines


def render_config(data: BootData, settings: ServeSettings, directory: Path) -> str:
    """``dnsmasq.conf`` for ``data`` (the reservations themselves are in ``hosts/``)."""
    seconds = settings.lease_seconds
    lines = [
        "# written by the subcontractor's boot services; changes are overwritten",
        "port=0",  # no DNS
        "no-resolv",
        "no-hosts",
        "bind-interfaces",
        "user=root",
        *(f"interface={name}" for name in settings.interfaces),
        f"dhcp-leasefile={directory / 'leases'}",
        f"dhcp-hostsdir={directory / 'hosts'}",
        "log-dhcp",
        "enable-tftp",
        f"tftp-root={settings.tftp_root}",
        "tftp-no-fail",  # start even while the TFTP root is not there yet
    ]
    if not settings.proxy:
        lines.append("dhcp-authoritative")
    subnets = _subnets(data)
    for subnet, tag, entry in subnets:
        network = ipaddress.IPv4Network(subnet)
        if settings.proxy:
            # the other server gives addresses and options; this one only the boot
            lines.append(f"dhcp-range=set:{tag},{network.network_address},proxy,{network.netmask}")
            continue
        pools = [pool for pool in data.pools if pool.subnet == subnet]
        for pool in pools:
            lines.append(f"dhcp-range=set:{tag},{pool.start},{pool.end},{pool.netmask},{seconds}")
        if not pools:
            # reservations only: addresses from dhcp-host lines, none leased dynamically
            lines.append(
                f"dhcp-range=set:{tag},{network.network_address},static,{network.netmask},{seconds}"
            )
        lines.extend(_options(tag, entry))
    own = ipaddress.IPv4Address(settings.server_address)
    if settings.proxy and not any(own in ipaddress.IPv4Network(s) for s, _, _ in subnets):
        # machines Contractor does not know yet boot on this host's own subnet too (its
        # netmask dnsmasq takes from the interface)
        lines.append(f"dhcp-range={own},proxy")
    # iPXE over TFTP by architecture; iPXE's own requests (option 175) get the chain URL
    lines += [
        "dhcp-match=set:ipxe,175",
        "dhcp-userclass=set:ipxe,iPXE",
        *(f"dhcp-match=set:efi,option:client-arch,{arch}" for arch in UEFI_ARCHITECTURES),
    ]
    for reservation in data.reservations:
        if reservation.boot_file:
            # a host's own boot file, to its firmware and to iPXE alike
            lines.append(
                f"dhcp-boot=tag:{_tag(reservation.id)},{reservation.boot_file},,"
                f"{settings.server_address}"
            )
    chain = f"{settings.http_base}/ipxe?mac=${{net0/mac}}"
    server = settings.server_address
    uefi = settings.uefi_boot_file
    if settings.proxy:
        lines += [
            f'pxe-service=tag:!ipxe,x86PC,"iPXE",{BIOS_BOOT_FILE},{server}',
            f'pxe-service=tag:!ipxe,X86-64_EFI,"iPXE",{uefi},{server}',
            f'pxe-service=tag:!ipxe,BC_EFI,"iPXE",{uefi},{server}',
            f'pxe-service=tag:ipxe,x86PC,"chain",{chain},{server}',
            f'pxe-service=tag:ipxe,X86-64_EFI,"chain",{chain},{server}',
        ]
    lines += [
        f"dhcp-boot=tag:!own,tag:!ipxe,tag:efi,{uefi},,{server}",
        f"dhcp-boot=tag:!own,tag:!ipxe,tag:!efi,{BIOS_BOOT_FILE},,{server}",
        f"dhcp-boot=tag:!own,tag:ipxe,{chain}",
        # iPXE waits ~13 s for an IPv6 router without an advertisement
        "enable-ra",
        *(f"dhcp-range=::,constructor:{name},ra-only" for name in settings.interfaces),
        "",
    ]
    return "\n".join(lines)


def host_files(data: BootData, settings: ServeSettings) -> dict[str, str]:
    """The ``hosts/`` files: one per reservation, its name from the reservation's id, each
    a ``dhcp-host`` value (the hostsfile format: no ``dhcp-host=``)."""
    files = {}
    for reservation in data.reservations:
        tag = _tag(reservation.id)
        tags = f"set:{tag},set:own" if reservation.boot_file else f"set:{tag}"
        if settings.proxy:  # the other server gives the address: only tag the host
            line = f"{reservation.mac},{tags},{reservation.hostname}"
        else:
            line = (
                f"{reservation.mac},{tags},{reservation.address},"
                f"{reservation.hostname},{settings.lease_seconds}"
            )
        files[f"{tag}.conf"] = line + "\n"
    return files


def _write(path: Path, text: str) -> None:
    """Atomically: dnsmasq (inotify on the directory) sees the whole file at the rename."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


class DnsmasqBackend:
    """dnsmasq serving the boot data, restarted with back-off when it dies."""

    name = "dnsmasq"

    def __init__(self, settings: ServeSettings, *, program: str = "dnsmasq") -> None:
        self.settings = settings
        self.program = program
        self.directory = settings.state_dir / "dnsmasq"
        self.hosts = self.directory / "hosts"
        self.config = self.directory / "dnsmasq.conf"
        self.lease_file = self.directory / "leases"
        self.log_file = self.directory / "dnsmasq.log"
        self.dnsmasq = Supervised(
            "dnsmasq",
            [
                program,
                "--keep-in-foreground",
                f"--conf-file={self.config}",
                "--pid-file=",
                f"--log-facility={self.log_file}",
            ],
            output=self.directory / "dnsmasq.out",
            before_launch=self._prune_leases,
        )
        self._started = False
        self._lock = asyncio.Lock()
        self._written: dict[str, str] | None = None  # hosts/ as last written, by name
        self._data: BootData | None = None

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        """The running (or last) dnsmasq process."""
        return self.dnsmasq.process

    @property
    def restarts(self) -> int:
        """How often dnsmasq was started again after it ended (not for ``apply``)."""
        return self.dnsmasq.restarts

    # -- files -------------------------------------------------------------------------

    def _write_all(self, data: BootData) -> bool:
        """Write the configuration; True when dnsmasq must restart to see it."""
        self.hosts.mkdir(parents=True, exist_ok=True)
        self._data = data
        restart = False
        text = render_config(data, self.settings, self.directory)
        if not self.config.exists() or self.config.read_text(encoding="utf-8") != text:
            _write(self.config, text)
            restart = True
        wanted = host_files(data, self.settings)
        if self._written is None:  # the first time: what an earlier run left on disk
            self._written = {
                path.name: path.read_text(encoding="utf-8")
                for path in self.hosts.iterdir()
                if not path.name.startswith(".")
            }
        # then compared with what was written, not read back: with 10,000 reservations,
        # reading every file for each change took seconds (bench/boot_bench.py)
        written = self._written
        for name in list(written):
            if name not in wanted:
                (self.hosts / name).unlink(missing_ok=True)
                del written[name]
                restart = True  # dnsmasq never forgets a host record read from the directory
            elif written[name] != wanted[name]:
                restart = True
        for name, content in wanted.items():
            if written.get(name) != content:
                _write(self.hosts / name, content)
                written[name] = content
        return restart

    # -- the process -------------------------------------------------------------------

    def _prune_leases(self) -> None:
        """While dnsmasq is stopped: drop the leases of reserved addresses held by another
        MAC (a reservation whose MAC changed), which dnsmasq would otherwise keep until they
        expire, refusing the address to its machine."""
        if self._data is None:
            return
        reserved = {r.address: r.mac for r in self._data.reservations}
        try:
            lines = self.lease_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        kept = []
        for line in lines:
            fields = line.split()
            if len(fields) >= 3 and fields[2] in reserved and reserved[fields[2]] != fields[1]:
                log.info("lease of %s to %s dropped: reserved for another MAC", *fields[2:0:-1])
                continue
            kept.append(line)
        if len(kept) != len(lines):
            _write(self.lease_file, "".join(f"{line}\n" for line in kept))

    # -- DhcpBackend -------------------------------------------------------------------

    async def start(self, data: BootData) -> None:
        async with self._lock:
            if self._started:
                raise RuntimeError("dnsmasq is already started")
            self._write_all(data)
            self._started = True
            self.dnsmasq.start()
            await asyncio.wait_for(self.dnsmasq.launched.wait(), START_SECONDS)

    async def apply(self, data: BootData) -> None:
        async with self._lock:
            if self._write_all(data) and self._started:
                log.info("dnsmasq restarts for the boot data of version %d", data.version)
                self.dnsmasq.restart()

    async def leases(self) -> list[Lease]:
        now = dt.datetime.now(dt.UTC)
        return list(_leases(read_dnsmasq_leases(self.lease_file, now=now)))

    def alive(self) -> bool:
        return self.dnsmasq.alive()

    async def stop(self) -> None:
        async with self._lock:
            await self.dnsmasq.stop()
            self._started = False


def _leases(raw: Iterable[dict[str, object]]) -> Iterable[Lease]:
    for lease in raw:
        ends = lease.get("ends")
        yield Lease(
            mac=str(lease["mac"]),
            address=str(lease["address"]),
            expires=dt.datetime.fromisoformat(ends) if isinstance(ends, str) else None,
            hostname=str(lease["hostname"]) or None,
        )
