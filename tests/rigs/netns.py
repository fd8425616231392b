"""A network namespace with a bridge, joined to the host by a veth pair: the isolated
provisioning network of the boot tests.

::

    host netns                     namespace <name>
    ┌──────────────────────┐       ┌─────────────────────────────────────────┐
    │ <host_if>            │ veth  │ <peer_if> ── br0 (namespace_address)    │
    │  host_address/24  ───┼───────┼──────────────┤                          │
    └──────────────────────┘       │        tap0, tap1 ... (QEMU NICs)       │
                                   └─────────────────────────────────────────┘

Processes on the host (an HTTP server, ``contractor serve``, a subcontractor and the
dnsmasq it runs on ``host_if``) reach the machines on the bridge through ``host_address``;
processes run inside the namespace (``Netns.run`` / ``Netns.command``: the rig's dnsmasq,
QEMU) see only the bridge. Both sides also have an address of an IPv6 ULA /64 (``ula``:
``::1`` on ``host_if``, ``::2`` on the bridge) so a DHCP server on either can send router
advertisements (iPXE waits ~13 s for IPv6 without one).
Everything is removed when the block ends, whatever happened in it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import pytest

# RFC 2544's benchmarking block: never routed on the internet, unlikely on a host; each
# namespace takes a free /24 of it unless the test names its own network.
_POOL = ipaddress.IPv4Network("198.18.0.0/15")
# Parallel test workers (pytest-xdist) choose free networks too: each holds this lock from
# its choice until its host side's address (and so its route) exists.
_LOCK = "/tmp/ctr-netns.lock"


@dataclass
class Netns:
    """A live namespace: its name, the bridge in it, the addresses on each side."""

    name: str
    network: ipaddress.IPv4Network
    host_address: ipaddress.IPv4Address
    namespace_address: ipaddress.IPv4Address
    ula: ipaddress.IPv6Network
    bridge: str = "br0"
    host_if: str = ""
    taps: list[str] = field(default_factory=list)

    def command(self, *argv: str) -> list[str]:
        """``argv`` prefixed so it runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait for it."""
        return _ip_run(self.command(*argv), check=check)

    def address(self, index: int) -> ipaddress.IPv4Address:
        """The ``index``-th address of the network (e.g. ``address(100)`` for a pool)."""
        return self.network.network_address + index

    def add_tap(self) -> str:
        """A new tap device on the bridge (for one QEMU NIC); removed with the namespace."""
        tap = f"tap{len(self.taps)}"
        _ip("-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap")
        _ip("-n", self.name, "link", "set", tap, "master", self.bridge, "up")
        self.taps.append(tap)
        return tap


def _ip_run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def _ip(*arguments: str) -> None:
    _ip_run(["ip", *arguments])


def require_namespaces() -> None:
    """Skip (with the reason) where this machine cannot make network namespaces, bridges
    and taps: not root, or a kernel or container without them. Nothing else skips."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN); run the boot tests as root")
    probe = f"cprobe-{secrets.token_hex(3)}"
    try:
        for argv in (
            ["ip", "netns", "add", probe],
            ["ip", "-n", probe, "link", "add", "br0", "type", "bridge"],
            ["ip", "-n", probe, "tuntap", "add", "dev", "tap0", "mode", "tap"],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                pytest.skip(
                    f"this machine cannot make network namespaces with a bridge and a tap "
                    f"({' '.join(argv)}: {result.stderr.strip()})"
                )
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


def free_network(prefix: int = 24) -> ipaddress.IPv4Network:
    """A /``prefix`` (default /24) of 198.18.0.0/15 that no route or address on the host
    overlaps."""
    routes = _ip_run(["ip", "-4", "route", "show", "table", "all"]).stdout
    used: list[ipaddress.IPv4Network] = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unicast"):
            word = line.split()[1]
        try:
            used.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    subnets: list[ipaddress.IPv4Network] = list(_POOL.subnets(new_prefix=prefix))
    start = secrets.randbelow(len(subnets))
    for candidate in subnets[start:] + subnets[:start]:
        if not any(candidate.overlaps(route) for route in used if route.prefixlen > 0):
            return candidate
    raise AssertionError(f"no free /{prefix} left in 198.18.0.0/15 on this host")


@contextmanager
def network_namespace(
    network: str | None = None, *, host_index: int = 1, namespace_index: int = 2
) -> Iterator[Netns]:
    """A namespace with a bridge (``br0``) on ``network`` (default: a free /24 of
    198.18.0.0/15): the host end of the veth gets ``.host_index``, the bridge
    ``.namespace_index``. Removed at the end of the block, also when it fails."""
    require_namespaces()
    lock = open(_LOCK, "a")  # noqa: SIM115 (closed, so unlocked, once the route exists)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _created(network, host_index, namespace_index) as ns:
            lock.close()
            yield ns
    finally:
        lock.close()


@contextmanager
def _created(network: str | None, host_index: int, namespace_index: int) -> Iterator[Netns]:
    net = ipaddress.ip_network(network) if network else free_network()
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"network {network!r}: an IPv4 network is needed")
    tag = secrets.token_hex(3)
    name = f"ctr-boot-{tag}"
    ns = Netns(
        name=name,
        network=net,
        host_address=net.network_address + host_index,
        namespace_address=net.network_address + namespace_index,
        ula=ipaddress.IPv6Network(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}::/64"),
        host_if=f"vh-{tag}",
    )
    peer = f"vn-{tag}"
    prefix = net.prefixlen
    with ExitStack() as cleanup:
        _ip("netns", "add", name)
        cleanup.callback(_ip_run, ["ip", "netns", "del", name], False)
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", peer, "netns", name)
        cleanup.callback(_ip_run, ["ip", "link", "del", ns.host_if], False)
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", ns.bridge, "type", "bridge", "stp_state", "0")
        _ip("-n", name, "link", "set", ns.bridge, "type", "bridge", "forward_delay", "0")
        _ip("-n", name, "addr", "add", f"{ns.namespace_address}/{prefix}", "dev", ns.bridge)
        _ip("-n", name, "addr", "add", f"{ns.ula.network_address + 2}/64", "dev", ns.bridge)
        _ip("-n", name, "link", "set", peer, "master", ns.bridge, "up")
        _ip("-n", name, "link", "set", ns.bridge, "up")
        _ip("addr", "add", f"{ns.host_address}/{prefix}", "dev", ns.host_if)
        _ip("addr", "add", f"{ns.ula.network_address + 1}/64", "dev", ns.host_if, "nodad")
        _ip("link", "set", ns.host_if, "up")
        yield ns
