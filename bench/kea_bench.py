"""Kea backend benchmark: a change to a site of RESERVATIONS reservations, from ``apply`` to
a DHCP client holding it, with a real kea-dhcp4 in a network namespace (root only; a /24 of
198.18.0.0/16 for the client, the bulk reservations in a /18 beside it, never on a wire).

1. ``apply`` of the boot data with one reservation moved (the client's, to a new address):
   rendering the configuration, ``config-set`` and ``config-write`` over the control
   socket. Floor: a ``config-set`` of the same document again, alone, on a raw socket
   (Kea's own parsing and reconfiguration), alternating with it round by round.
2. Change to lease: from ``apply`` starting to busybox udhcpc in the client namespace bound
   to the new address.

Debian's Kea has no ``host_cmds`` hook: every change sends the whole configuration, so one
reservation costs as much as many (docs/boot.md, "Kea backend").

    python bench/kea_bench.py                        # 10,000 reservations, 5 rounds
    python bench/kea_bench.py --reservations 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Clock, Figure, Series  # noqa: E402
from subcontractor.boot.backend import BootData  # noqa: E402
from subcontractor.boot.kea import KeaBackend  # noqa: E402
from subcontractor.boot.kea_config import render_config  # noqa: E402
from tests.rigs.netns import Netns, network_namespace  # noqa: E402
from tests.subcontractor.boot.kea_entries import (  # noqa: E402
    boot_data,
    network_in_198_18,
    pool,
    reservation,
    settings_for,
)

CLIENT_MAC = "52:54:00:4b:ee:01"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def _networks() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """The client's /24 (free on this host) and a /18 of 198.18/16 apart from it."""
    small = network_in_198_18()
    for bulk in ipaddress.IPv4Network("198.18.0.0/16").subnets(new_prefix=18):
        if not bulk.overlaps(small):
            return small, bulk
    raise AssertionError("unreachable: a /16 has four /18s")


def _data(
    small: ipaddress.IPv4Network, bulk: ipaddress.IPv4Network, count: int, offset: int, version: int
) -> BootData:
    many = []
    for i in range(count):
        mac = f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        many.append(reservation(bulk, 1000 + i, mac, 10 + i))
    client = reservation(small, 1, CLIENT_MAC, offset)
    return boot_data([client, *many], [pool(small, 7, 200, 220)], version=version)


def _raw_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(path))
        raw.sendall(json.dumps(request).encode())
        chunks = []
        while chunk := raw.recv(1 << 16):
            chunks.append(chunk)
    answer: dict[str, Any] = json.loads(b"".join(chunks))
    return answer


def _lease(ns: str, link: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", link, "-n", "-q", "-f",
             "-t", "3", "-T", "1", "-s", "/bin/true"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if f"lease of {wanted} obtained" in done.stderr + done.stdout:
            return
    raise AssertionError(f"the client did not get {wanted}")


async def _rounds(
    netns: Netns, bulk: ipaddress.IPv4Network, state: Path, count: int, rounds: int
) -> list[Figure]:
    small = netns.network
    clients = f"{netns.name}-c"
    _ip("netns", "add", clients)
    try:
        _ip("-n", netns.name, "link", "add", "cp0", "type", "veth", "peer", "name", "c0",
            "netns", clients)  # fmt: skip
        _ip("-n", netns.name, "link", "set", "cp0", "master", netns.bridge, "up")
        _ip("-n", clients, "link", "set", "c0", "address", CLIENT_MAC, "up")
        settings = settings_for(
            state,
            server_address=str(netns.namespace_address),
            http_base=f"http://{netns.host_address}:8069",
        )
        backend = KeaBackend(settings, wrap=netns.command(), tftp=False)
        await backend.start(_data(small, bulk, count, 40, 1))
        note = f"{count:,} reservations, one moved a round"
        apply = Figure(name="Kea apply of one changed reservation", note=note)
        apply.floor = Series(name="Kea's config-set of the same configuration alone")
        to_lease = Figure(name="change → DHCP client bound to it", note=note)
        try:
            for index in range(rounds):
                offset = 41 + index
                data = _data(small, bulk, count, offset, 2 + index)
                started = time.perf_counter()
                with Clock() as clock:
                    await backend.apply(data)
                apply.add(clock.wall, clock.wall, clock.cpu)
                await asyncio.to_thread(_lease, clients, "c0", str(small.network_address + offset))
                to_lease.add(time.perf_counter() - started)
                hooks = (backend.hook,) if backend.hook else ()
                config = render_config(data, settings, backend.paths, hooks=hooks)
                with Clock() as clock:
                    answer = await asyncio.to_thread(
                        _raw_command,
                        backend.paths.socket,
                        {"command": "config-set", "arguments": config},
                    )
                assert answer["result"] == 0, answer
                apply.floor.add(clock.wall, clock.wall, clock.cpu)
        finally:
            await backend.stop()
        return [apply, to_lease]
    finally:
        _ip("netns", "del", clients)


def _run(count: int, rounds: int) -> list[Figure]:
    if os.geteuid() != 0:
        raise SystemExit("kea_bench needs root (network namespaces)")
    small, bulk = _networks()
    with (
        tempfile.TemporaryDirectory(prefix="kea-", dir="/tmp") as scratch,
        network_namespace(str(small)) as netns,
    ):
        return asyncio.run(_rounds(netns, bulk, Path(scratch), count, max(rounds, 1)))


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py (root and network namespaces needed)."""
    return _run(500 if quick else 10_000, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reservations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = _run(args.reservations, args.rounds)
    for figure in figures:
        samples = sorted(figure.samples)
        line = f"{figure.name} ({figure.note}): median {samples[len(samples) // 2]:.2f} s"
        line += f", min {samples[0]:.2f} s, max {samples[-1]:.2f} s"
        if figure.floor is not None:
            floor = sorted(figure.floor.samples)
            line += f"; floor ({figure.floor.name}) median {floor[len(floor) // 2]:.2f} s"
        print(line)


if __name__ == "__main__":
    main()
