"""dnsmasq in a namespace, for the rig's own test and for watching a boot by hand: DHCP on
the bridge, TFTP of Debian's iPXE binaries, the iPXE chain URL, and IPv6 router
advertisements (iPXE waits ~13 s for IPv6 without them).

This is the test's own DHCP server; the subcontractor's boot component runs its own.
PXE firmware gets iPXE over TFTP (``undionly.kpxe`` for BIOS, ``snponly.efi`` for UEFI);
iPXE (its DHCP requests carry option 175) gets the HTTP chain URL. QEMU's SeaBIOS NICs
carry an iPXE option ROM, so a BIOS machine goes straight to the chain URL; a UEFI machine
(OVMF, no option ROM) boots through its own PXE client and TFTP first, as most servers do.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from contractor.child_process import stop_child as stop
from tests.rigs.netns import Netns
from tests.subcontractor.bmc import require_tools

TFTP_ROOT = Path("/usr/lib/ipxe")  # Debian's ipxe package


@dataclass
class Dnsmasq:
    log: Path
    leases: Path
    tftp_root: Path
    interface: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tftp_sent(self) -> list[str]:
        """The files sent over TFTP so far (from dnsmasq's log)."""
        return [
            line.split("sent ", 1)[1].split(" to ", 1)[0]
            for line in self.log_text().splitlines()
            if "dnsmasq-tftp" in line and " sent " in line
        ]


@contextmanager
def dnsmasq(
    netns: Netns,
    directory: Path,
    *,
    chain_url: str,
    first: int = 100,
    last: int = 199,
    bios_bootfile: str = "undionly.kpxe",
    uefi_bootfile: str = "snponly.efi",
    tftp_root: Path = TFTP_ROOT,
    on_host: bool = False,
) -> Iterator[Dnsmasq]:
    """dnsmasq on the namespace's bridge until the block ends: leases ``.first``..``.last``;
    to PXE firmware, iPXE over TFTP from ``tftp_root`` by client architecture (option 93:
    BIOS ``bios_bootfile``, x86-64 UEFI ``uefi_bootfile``); to iPXE, ``chain_url``.
    ``on_host``: run it in the host's namespace on the veth's host end instead, as a
    subcontractor on the host does (``Dnsmasq.interface`` names the interface)."""
    require_tools("dnsmasq")
    for bootfile in (bios_bootfile, uefi_bootfile):
        if not (tftp_root / bootfile).is_file():
            raise AssertionError(f"{tftp_root / bootfile} is missing (Debian package ipxe)")
    directory.mkdir(parents=True, exist_ok=True)
    interface = netns.host_if if on_host else netns.bridge
    served = Dnsmasq(directory / "dnsmasq.log", directory / "leases", tftp_root, interface)
    config = directory / "dnsmasq.conf"
    config.write_text(
        "\n".join(
            [
                "port=0",
                "no-resolv",
                "no-hosts",
                f"interface={interface}",
                "bind-interfaces",
                "user=root",
                f"dhcp-leasefile={served.leases}",
                f"log-facility={served.log}",
                "log-dhcp",
                "dhcp-authoritative",
                f"dhcp-range={netns.address(first)},{netns.address(last)},"
                f"{netns.network.netmask},10m",
                f"dhcp-option=option:router,{netns.namespace_address}",
                f"dhcp-range=::,constructor:{interface},ra-only",
                "enable-ra",
                "enable-tftp",
                f"tftp-root={tftp_root}",
                "dhcp-match=set:ipxe,175",
                "dhcp-match=set:efi64,option:client-arch,7",
                "dhcp-match=set:efi64,option:client-arch,9",
                f"dhcp-boot=tag:!ipxe,tag:efi64,{uefi_bootfile}",
                f"dhcp-boot=tag:!ipxe,tag:!efi64,{bios_bootfile}",
                f"dhcp-boot=tag:ipxe,{chain_url}",
                "",
            ]
        )
    )
    argv = ["dnsmasq", "--keep-in-foreground", f"--conf-file={config}"]
    with (directory / "dnsmasq.err").open("wb") as errors:
        process = subprocess.Popen(
            argv if on_host else netns.command(*argv),
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + 10
        while "started, version" not in served.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "dnsmasq did not start:\n" + (directory / "dnsmasq.err").read_text()
                )
            time.sleep(0.05)
        yield served
    finally:
        stop(process, wait=10)
