"""A QEMU virtual machine on a namespace's bridge, and an ``ipmi_sim`` BMC whose chassis
power starts and stops it.

QEMU runs by software emulation (``-accel tcg``: ``/dev/kvm`` is broken on these machines),
daemonized inside the namespace, its NIC on a tap on the bridge, a small raw disk, its
serial console appended to ``console.log`` (the kernel's ``console=ttyS0``) and its
firmware's debug port to ``firmware.log``. The disk's first sector is a BIOS boot sector
that prints ``DISK_BOOTED`` on the console and powers off, so a boot from the local disk
(iPXE's ``sanboot --drive 0x80``, or the disk first in the boot order) can be seen.
``-no-reboot``: a guest reboot (iPXE has no power-off command) powers the machine off.

With ``qemu_bmc`` the BMC's chassis control runs the machine's power scripts (written into
the BMC's node directory; see ``tests/subcontractor/bmc.py``'s hook):

=============  ===============================================================
power-1        start QEMU (boot order from the BMC's boot device: ``pxe`` → network,
               ``default`` (ipmi_sim's name for IPMI's hard drive) → disk, else the
               machine's ``boot_order``); on already: nothing
power-0        stop QEMU (SIGTERM, then SIGKILL)
reset          power-0 then power-1 (so a new boot device takes effect)
shutdown       ACPI power button through QEMU's QMP socket (the guest powers off)
power-status   1 while QEMU runs, else 0 (a guest that powered off reads as off)
=============  ===============================================================
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.rigs.netns import Netns
from tests.subcontractor.bmc import Bmc, ipmi_sim, require_tools

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")  # Debian's ovmf
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


# A BIOS boot sector for the machine's disk, so "booted from its disk" shows: it writes
# DISK_BOOTED to COM1 (the serial console) and powers off through the PIIX4 PM port.
DISK_BOOTED = "contractor-rig: booted from the local disk"
_BOOT_CODE = bytes.fromhex(
    "31c08ed8"  # xor ax,ax; mov ds,ax
    "baf803"  # mov dx,0x3f8
    "be1d7c"  # mov si,0x7c1d (the message)
    "fc"  # cld
    "ac84c07403eeebf8"  # print: lodsb; test al,al; jz done; out dx,al; jmp print
    "ba0406b80020ef"  # done: mov dx,0x604; mov ax,0x2000; out dx,ax (S5: power off)
    "f4ebfd"  # hlt; jmp hlt
)


def boot_sector() -> bytes:
    """The 512-byte sector (code, message, 0x55AA)."""
    code = _BOOT_CODE + f"\r\n{DISK_BOOTED}\r\n".encode() + b"\0"
    return code.ljust(510, b"\0") + b"\x55\xaa"


def process_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie whose parent has not reaped it, as
    a daemonized QEMU's may be, counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def random_mac() -> str:
    """A locally administered MAC in QEMU's 52:54:00 prefix."""
    return "52:54:00:" + ":".join(secrets.token_hex(1) for _ in range(3))


@dataclass(frozen=True)
class Machine:
    """What the virtual machine is: what a discovery report of it should say."""

    name: str = "vm"
    mac: str = field(default_factory=random_mac)
    memory_mib: int = 256
    cpus: int = 1
    disk_mib: int = 64
    serial: str = field(default_factory=lambda: f"SN-{secrets.token_hex(4).upper()}")
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    nic: str = "virtio-net-pci"
    manufacturer: str = "QEMU"
    boot_order: str = "n"  # without a boot device from the BMC: the network, like MAAS
    firmware: Literal["bios", "uefi"] = "bios"  # SeaBIOS (NIC ROM: iPXE) or OVMF (its PXE)


# QMP: the capabilities handshake, then one command (the ACPI power button)
_POWERDOWN = """import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for command in ("qmp_capabilities", "system_powerdown"):
    f.write(json.dumps({"execute": command}) + "\\n"); f.flush(); f.readline()
"""


class Vm:
    """One QEMU machine in ``directory``: ``start``/``stop`` directly, or through a BMC
    (``qemu_bmc``). ``console()`` is the serial console so far."""

    def __init__(self, machine: Machine, netns: Netns, directory: Path) -> None:
        require_tools("qemu-system-x86_64")
        self.machine = machine
        self.netns = netns
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.tap = netns.add_tap()
        self.disk = directory / "disk.raw"
        with self.disk.open("wb") as disk:
            disk.write(boot_sector())
            disk.truncate(machine.disk_mib * 1024 * 1024)
        self.console_log = directory / "console.log"
        self.firmware_log = directory / "firmware.log"
        self.errors = directory / "qemu.err"
        self.pidfile = directory / "qemu.pid"
        self.qmp = directory / "qmp.sock"
        self.uefi_vars = directory / "uefi-vars.fd"
        if machine.firmware == "uefi":
            if not OVMF_CODE.is_file():
                raise AssertionError(f"{OVMF_CODE} is missing (Debian package ovmf)")
            shutil.copyfile(OVMF_VARS, self.uefi_vars)
        self._last_pid: int | None = None
        self.starts: list[float] = []  # time.time() of each start, for timings

    def command(self, boot_order: str | None = None) -> list[str]:
        """The QEMU command line (run inside the namespace, daemonized); ``boot_order``
        "n" (network first) or "c" (disk first), default the machine's."""
        m = self.machine
        nic_first = (boot_order or m.boot_order).startswith("n")
        nic = f"{m.nic},netdev=net0,mac={m.mac},bootindex={1 if nic_first else 2}"
        firmware: list[str] = []
        if m.firmware == "uefi":
            # no iPXE option ROM: the firmware's own PXE client boots, as on most servers
            nic += ",romfile="
            firmware = [
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={self.uefi_vars}",
            ]  # fmt: skip
        return self.netns.command(
            "qemu-system-x86_64",
            "-name", m.name,
            "-accel", "tcg",
            "-machine", "pc",
            "-m", str(m.memory_mib),
            "-smp", str(m.cpus),
            "-uuid", m.uuid,
            "-smbios", f"type=1,manufacturer={m.manufacturer},serial={m.serial}",
            *firmware,
            "-netdev", f"tap,id=net0,ifname={self.tap},script=no,downscript=no",
            "-device", nic,
            "-drive", f"file={self.disk},if=none,id=disk0,format=raw",
            "-device", f"virtio-blk-pci,drive=disk0,bootindex={2 if nic_first else 1}",
            "-display", "none",
            "-vga", "none",
            # appended to: one console across power cycles
            "-chardev", f"file,id=console,path={self.console_log},append=on",
            "-serial", "chardev:console",
            "-chardev", f"file,id=firmware,path={self.firmware_log},append=on",
            "-device", "isa-debugcon,iobase=0x402,chardev=firmware",
            "-qmp", f"unix:{self.qmp},server=on,wait=off",
            "-no-reboot",
            "-pidfile", str(self.pidfile),
            "-daemonize",
        )  # fmt: skip

    def pid(self) -> int | None:
        """QEMU's process id while it runs (QEMU removes its pidfile as it exits)."""
        try:
            self._last_pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return self._last_pid

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and process_alive(pid)

    def start(self, boot_order: str | None = None) -> None:
        """Start QEMU (returns once it runs; the guest boots on its own)."""
        if self.running():
            return
        self.starts.append(time.time())
        with self.errors.open("ab") as errors:
            result = subprocess.run(
                self.command(boot_order), stderr=errors, stdout=errors, timeout=60, check=False
            )
        if result.returncode != 0:
            raise AssertionError(f"QEMU did not start:\n{self.errors.read_text()}")

    def stop(self, timeout: float = 10) -> None:
        """Stop QEMU if it runs (SIGTERM, then SIGKILL), and wait until it has exited."""
        self.pid()
        pid = self._last_pid
        if pid is None or not process_alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            time.sleep(0.05)

    def wait_off(self, timeout: float) -> bool:
        """Wait until the guest powers itself off; True if it did within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def console(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def diagnostics(self) -> str:
        """Everything a failing test should print: console, firmware log, QEMU's errors."""
        parts = []
        for title, path in (
            ("serial console", self.console_log),
            ("firmware (SeaBIOS) log, last 3000 characters", self.firmware_log),
            ("QEMU errors", self.errors),
        ):
            text = path.read_text(errors="replace") if path.exists() else "(none)"
            if path is self.firmware_log:
                text = text[-3000:]
            parts.append(f"----- {self.machine.name}: {title} -----\n{text}")
        return "\n".join(parts)

    def install_power_scripts(self, node: Path) -> None:
        """Write the chassis power scripts into a BMC's node directory (module docstring)."""
        errors = shlex.quote(str(self.errors))
        network_first = f"{shlex.join(self.command('n'))} 2>> {errors}"
        disk_first = f"{shlex.join(self.command('c'))} 2>> {errors}"
        starts = self.directory / "starts"
        scripts = {
            "power-status": (
                f"pid=$(cat {shlex.quote(str(self.pidfile))} 2>/dev/null)\n"
                # a zombie (exited, not yet reaped) is off
                'state=$(sed "s/.*) //" "/proc/${pid:-none}/stat" 2>/dev/null | cut -d " " -f 1)\n'
                'case $state in ""|Z|X) echo 0 ;; *) echo 1 ;; esac\n'
            ),
            "power-1": (
                f'[ "$("$(dirname "$0")/power-status")" = 1 ] && exit 0\n'
                f'case $(cat "$(dirname "$0")/boot" 2>/dev/null) in\n'
                # ipmi_sim names IPMI's "force boot from the default hard drive" default
                "  pxe) order=n ;; disk|default) order=c ;;\n"
                f"  *) order={self.machine.boot_order} ;;\n"
                "esac\n"
                f"date +%s.%N >> {shlex.quote(str(starts))}\n"
                f'if [ "$order" = c ]; then exec {disk_first}; fi\n'
                f"exec {network_first}\n"
            ),
            "power-0": (
                f"pid=$(cat {shlex.quote(str(self.pidfile))} 2>/dev/null) || exit 0\n"
                'kill "$pid" 2>/dev/null || exit 0\n'
                'for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done\n'
                'kill -9 "$pid" 2>/dev/null; exit 0\n'
            ),
            "reset": '"$(dirname "$0")/power-0"; exec "$(dirname "$0")/power-1"\n',
            "shutdown": (
                f"exec {shlex.quote(sys.executable)} -c {shlex.quote(_POWERDOWN)} "
                f"{shlex.quote(str(self.qmp))}\n"
            ),
        }
        for name, body in scripts.items():
            path = node / name
            path.write_text(f"#!/bin/sh\n# written by tests/rigs/vm.py\n{body}")
            path.chmod(0o755)

    def power_on_times(self) -> list[float]:
        """time.time() of each power-on the BMC made (and of each ``start``)."""
        path = self.directory / "starts"
        times = [float(line) for line in path.read_text().split()] if path.exists() else []
        return sorted([*times, *self.starts])


@contextmanager
def qemu_vm(machine: Machine, netns: Netns, directory: Path) -> Iterator[Vm]:
    """A machine (off) until the block ends; stopped then, and its console, firmware log
    and QEMU errors printed if the block failed (pytest shows them with the failure)."""
    vm = Vm(machine, netns, directory)
    try:
        yield vm
    except BaseException:
        sys.stdout.write(vm.diagnostics() + "\n")
        raise
    finally:
        vm.stop()


@contextmanager
def qemu_bmc(
    vm: Vm, directory: Path, *, username: str = "admin", password: str = "password"
) -> Iterator[Bmc]:
    """``ipmi_sim`` on a kernel-chosen loopback UDP port whose chassis power on/off/reset
    starts/stops/restarts ``vm`` (``Bmc.port``, ``Bmc.ipmitool(...)``). The machine starts
    off; it is stopped when the block ends, whatever happened in it."""
    with ipmi_sim(directory, username=username, password=password, power="off") as bmc:
        vm.install_power_scripts(bmc.node)
        try:
            yield bmc
        finally:
            vm.stop()
