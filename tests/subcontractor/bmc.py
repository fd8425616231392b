"""A real BMC for tests: OpenIPMI's ``ipmi_sim`` on a kernel-chosen loopback UDP port, with a
``chassis_control`` hook that keeps the machine's power and boot device in files, and
``ipmitool`` to read them the way an operator would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HOOK = """#!/bin/sh
# ipmi_sim runs: chassis.sh <node> get power|boot ...  /  chassis.sh <node> set power 0|1 ...
dir=$(dirname "$0")/node; shift; op=$1; shift
echo "$op $*" >> "$dir/calls"
# a machine behind the BMC (tests/rigs/vm.py) puts executables in the node directory:
# power-status (prints 1 or 0), power-1, power-0, reset, shutdown; they must return fast
run() { if [ -x "$dir/$1" ]; then "$dir/$1" >> "$dir/hook.log" 2>&1; fi; }
case $op in
  get) for p in "$@"; do case $p in
         power) if [ -x "$dir/power-status" ]; then echo "power:$("$dir/power-status")"
                else echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)"; fi ;;
         boot)  echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
         *) echo "Invalid parameter: $p"; exit 1 ;; esac; done ;;
  set) while [ $# -gt 0 ]; do p=$1; v=${2:-}; shift 2 || shift
         case $p in
           power) echo "$v" > "$dir/power"; run "power-$v" ;;
           reset) echo reset >> "$dir/calls"; run reset ;;
           boot) echo "$v" > "$dir/boot" ;;
           # deaf: the OS ignores the soft power-off
           shutdown) [ -e "$dir/deaf" ] || echo 0 > "$dir/power"; run shutdown ;;
           identify) shift ;;
           *) echo "Invalid parameter: $p"; exit 1 ;; esac; done ;;
  *) exit 1 ;;
esac
"""

EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""


# -C 3: ipmi_sim offers cipher suite 3; without it every call waits 10 s for the suite list
IPMITOOL = ("ipmitool", "-I", "lanplus", "-C", "3")


def require_tools(*tools: str) -> None:
    """The tools (default: ipmi_sim and ipmitool), or a skip; a failure under CI, where
    scripts/test installs them."""
    missing = [tool for tool in tools or ("ipmi_sim", "ipmitool") if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_udp_port() -> int:
    with socket.socket(type=socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Bmc:
    port: int
    directory: Path
    username: str
    password: str

    @property
    def node(self) -> Path:
        return self.directory / "node"

    def ipmitool(self, *arguments: str, password: str | None = None) -> str:
        """Run ipmitool against the simulator (the password through the environment)."""
        env = dict(os.environ, IPMI_PASSWORD=password or self.password)
        result = subprocess.run(
            [
                *IPMITOOL,
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.username,
                "-E",
                *arguments,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"ipmitool {' '.join(arguments)}: {result.stderr}")
        return result.stdout.strip()

    def power(self) -> str:
        """The chassis power as ipmitool reports it: "on" or "off"."""
        return self.ipmitool("chassis", "power", "status").rsplit(" ", 1)[-1]

    def boot_device(self) -> str:
        return (self.node / "boot").read_text().strip() if (self.node / "boot").exists() else ""

    def calls(self) -> list[str]:
        path = self.node / "calls"
        return path.read_text().splitlines() if path.exists() else []


@contextmanager
def ipmi_sim(
    directory: Path, *, username: str = "admin", password: str = "password", power: str = "on"
) -> Iterator[Bmc]:
    """One simulated BMC until the block ends (the machine starts with ``power`` on/off)."""
    require_tools()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state").mkdir()
    (directory / "node").mkdir()
    (directory / "node" / "power").write_text("1\n" if power == "on" else "0\n")
    hook = directory / "chassis.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    port = free_udp_port()
    (directory / "lan.conf").write_text(
        f"""name "bmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{hook} bmc"
  user 2 true "{username}" "{password}" admin 10 none md2 md5 straight
"""
    )
    (directory / "bmc.emu").write_text(EMU)
    log = (directory / "sim.log").open("wb")
    process = subprocess.Popen(
        ["ipmi_sim", "-c", "lan.conf", "-f", "bmc.emu", "-s", "state", "-n"],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bmc = Bmc(port=port, directory=directory, username=username, password=password)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                bmc.power()
                break
            except AssertionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "ipmi_sim did not come up:\n" + (directory / "sim.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield bmc
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
