"""The Kea backend: its configuration for the boot data, its lease reading, and a real
kea-dhcp4 in a network namespace the test makes (``tests.rigs.netns``: a bridge and a veth
to the host, 198.18.0.0/15 only), leasing to busybox udhcpc clients in a second namespace
whose veths are ports of that bridge: a reserved address with its options and boot file,
a pool address, the boot file by client class, TFTP, a reservation added live with
``config-set`` (same process, the earlier lease kept), kea-dhcp4 killed and started again,
and the control socket's errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from subcontractor.boot.backend import BootData, ServeSettings, make_backend
from subcontractor.boot.kea import KeaBackend, find_lease_hook, tftp_config
from subcontractor.boot.kea_config import (
    BIOS_CLASS,
    IPXE_CLASS,
    UEFI_CLASS,
    KeaPaths,
    render_config,
    subnet_id,
)
from subcontractor.boot.kea_control import (
    KeaCommandError,
    KeaControl,
    KeaControlError,
    KeaError,
    memfile_leases,
    read_memfile,
)
from subcontractor.config import ConfigError
from tests.rigs.netns import Netns, free_network, network_namespace, require_namespaces

NET = ipaddress.IPv4Network("198.18.40.0/24")
MAC1, MAC2, MAC3 = "52:54:00:4b:00:01", "52:54:00:4b:00:02", "52:54:00:4b:00:03"


def reservation(
    net: ipaddress.IPv4Network, number: int, mac: str, offset: int, **extra: Any
) -> dict[str, Any]:
    entry = {
        "id": f"reservation:{number}",
        "mac": mac,
        "address": str(net.network_address + offset),
        "subnet": str(net),
        "prefix": net.prefixlen,
        "netmask": str(net.netmask),
        "gateway": str(net.network_address + 1),
        "hostname": f"web{number}",
        "domain": "dc1.example.com",
        "dns_servers": ["198.18.0.53", "198.18.0.54"],
        "dns_search": ["example.com", "dc1.example.com"],
        "config_uuid": f"5b0c0000-0000-0000-0000-00000000000{number}",
        "boot_file": None,
        "boot_script": f"/boot/5b0c0000-0000-0000-0000-00000000000{number}",
    }
    entry.update(extra)
    return entry


def pool(net: ipaddress.IPv4Network, number: int, first: int, last: int) -> dict[str, Any]:
    return {
        "id": f"pool:{number}",
        "start": str(net.network_address + first),
        "end": str(net.network_address + last),
        "subnet": str(net),
        "prefix": net.prefixlen,
        "netmask": str(net.netmask),
        "gateway": str(net.network_address + 1),
        "domain": "dc1.example.com",
        "dns_servers": ["198.18.0.53", "198.18.0.54"],
        "dns_search": ["example.com", "dc1.example.com"],
    }


def boot_data(
    reservations: list[dict[str, Any]], pools: list[dict[str, Any]], version: int = 1
) -> BootData:
    return BootData.from_json(
        {"site": "dc1", "version": version, "reservations": reservations, "pools": pools}
    )


def settings_for(state_dir: Path, **changes: Any) -> ServeSettings:
    settings = ServeSettings(
        interfaces=("br0",),
        server_address=str(NET.network_address + 2),
        http_base="http://198.18.40.1:8067",
        tftp_root=Path("/usr/lib/ipxe"),
        state_dir=state_dir,
        proxy=False,
        lease_seconds=600,
    )
    return replace(settings, **changes)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A state directory short enough for a unix socket path (pytest's are often not)."""
    path = Path(tempfile.mkdtemp(prefix="kea-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the configuration ---------------------------------------------------------------


def test_the_configuration_serves_subnets_pools_reservations_and_boot_files(
    tmp_path: Path,
) -> None:
    other = ipaddress.IPv4Network("198.18.41.0/25")
    data = boot_data(
        [
            reservation(NET, 1, MAC1, 42),
            reservation(NET, 2, MAC2, 43, boot_file="own.efi"),
            reservation(other, 3, MAC3, 10, gateway=None, dns_search=[]),
        ],
        [pool(NET, 7, 100, 150)],
    )
    paths = KeaPaths(tmp_path / "kea")
    hook = Path("/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so")
    dhcp4 = render_config(data, settings_for(tmp_path), paths, hooks=(hook,))["Dhcp4"]

    assert dhcp4["interfaces-config"]["interfaces"] == ["br0"]
    assert dhcp4["control-socket"] == {"socket-type": "unix", "socket-name": str(paths.socket)}
    assert dhcp4["lease-database"]["type"] == "memfile"
    assert dhcp4["lease-database"]["persist"] is True
    assert dhcp4["lease-database"]["name"] == str(paths.leases)
    assert dhcp4["hooks-libraries"] == [{"library": str(hook)}]
    assert dhcp4["valid-lifetime"] == 600

    first, second = dhcp4["subnet4"]
    assert (first["subnet"], first["id"]) == (str(NET), int(NET.network_address))
    assert first["pools"] == [{"pool": "198.18.40.100 - 198.18.40.150"}]
    assert {(o["code"], o["data"]) for o in first["option-data"]} == {
        (3, "198.18.40.1"),
        (6, "198.18.0.53, 198.18.0.54"),
        (15, "dc1.example.com"),
        (119, "example.com, dc1.example.com"),
    }
    web1, web2 = first["reservations"]
    assert web1 == {"hw-address": MAC1, "ip-address": "198.18.40.42", "hostname": "web1"}
    assert web2["boot-file-name"] == "own.efi"
    assert web2["next-server"] == "198.18.40.2"
    # a subnet of reservations only: no pool, its own options (no router, no search)
    assert (second["subnet"], second["pools"]) == ("198.18.41.0/25", [])
    assert {o["code"] for o in second["option-data"]} == {6, 15}
    assert second["reservations"][0]["ip-address"] == "198.18.41.10"

    classes = {c["name"]: c for c in dhcp4["client-classes"]}
    assert [c["name"] for c in dhcp4["client-classes"]] == [IPXE_CLASS, UEFI_CLASS, BIOS_CLASS]
    assert classes[IPXE_CLASS]["boot-file-name"] == "http://198.18.40.1:8067/ipxe?mac=${net0/mac}"
    assert "option[77]" in classes[IPXE_CLASS]["test"]
    assert "'iPXE'" in classes[IPXE_CLASS]["test"]
    assert classes[UEFI_CLASS]["boot-file-name"] == "snponly.efi"
    assert "option[93].hex == 0x0007" in classes[UEFI_CLASS]["test"]
    assert classes[BIOS_CLASS]["boot-file-name"] == "undionly.kpxe"
    assert classes[BIOS_CLASS]["next-server"] == classes[UEFI_CLASS]["next-server"]


def test_a_reservation_whose_options_differ_from_its_subnet_carries_its_own(
    tmp_path: Path,
) -> None:
    data = boot_data(
        [reservation(NET, 1, MAC1, 42, dns_servers=["198.18.0.99"], domain="other.example")],
        [pool(NET, 7, 100, 150)],
    )
    dhcp4 = render_config(data, settings_for(tmp_path), KeaPaths(tmp_path))["Dhcp4"]
    (host,) = dhcp4["subnet4"][0]["reservations"]
    assert {(o["code"], o["data"]) for o in host["option-data"]} == {
        (3, "198.18.40.1"),
        (6, "198.18.0.99"),
        (15, "other.example"),
        (119, "example.com, dc1.example.com"),
    }


def test_the_subnet_id_is_the_same_for_the_same_network() -> None:
    assert subnet_id("198.18.40.0/24") == subnet_id("198.18.40.0/24") == 0xC6122800
    assert subnet_id("198.18.41.0/24") != subnet_id("198.18.40.0/24")
    assert subnet_id("0.0.0.0/0") == 1
    assert subnet_id("255.255.255.255/32") == 2**32 - 2


@pytest.mark.parametrize(
    ("reservations", "pools", "field", "words"),
    [
        (
            [reservation(NET, 1, MAC1, 42), reservation(NET, 2, MAC2, 42)],
            [],
            "reservations[1].address",
            "198.18.40.42 is also reserved for reservations[0] (52:54:00:4b:00:01)",
        ),
        (
            [reservation(ipaddress.IPv4Network("198.18.40.0/25"), 1, MAC1, 5)],
            [pool(NET, 7, 100, 150)],
            "reservations[0].subnet",
            "198.18.40.0/25 overlaps 198.18.40.0/24 of pools[0]",
        ),
        (
            [reservation(NET, 1, MAC1, 42, boot_file="x" * 129)],
            [],
            "reservations[0].boot_file",
            "128 bytes",
        ),
    ],
)
def test_what_kea_would_refuse_is_refused_naming_the_entry(
    tmp_path: Path,
    reservations: list[dict[str, Any]],
    pools: list[dict[str, Any]],
    field: str,
    words: str,
) -> None:
    data = boot_data(reservations, pools)
    with pytest.raises(ValueError, match="^" + field.replace("[", r"\[").replace("]", r"\]")) as e:
        render_config(data, settings_for(tmp_path), KeaPaths(tmp_path))
    assert words in str(e.value)


def test_an_http_base_too_long_for_the_file_field_is_refused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, http_base="http://198.18.40.1:8067/" + "a" * 120)
    with pytest.raises(ValueError, match=r"^http_base: .* 128 bytes"):
        render_config(boot_data([], []), settings, KeaPaths(tmp_path))


def test_real_kea_accepts_the_configuration(tmp_path: Path) -> None:
    """kea-dhcp4 -t checks the whole file as it would at start (on loopback)."""
    data = boot_data(
        [reservation(NET, 1, MAC1, 42), reservation(NET, 2, MAC2, 43, boot_file="own.efi")],
        [pool(NET, 7, 100, 150)],
    )
    paths = KeaPaths(tmp_path)
    hook = find_lease_hook()
    hooks = (hook,) if hook else ()
    config = render_config(data, settings_for(tmp_path, interfaces=("lo",)), paths, hooks=hooks)
    paths.config.write_text(json.dumps(config))
    env = {**os.environ, "KEA_PIDFILE_DIR": str(tmp_path), "KEA_LOCKFILE_DIR": str(tmp_path)}
    done = subprocess.run(
        ["kea-dhcp4", "-t", str(paths.config)], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # and refuses what is not Kea's (so the check above can fail)
    config["Dhcp4"]["subnet4"][0]["pools"] = [{"pool": "198.18.99.1 - 198.18.99.5"}]
    paths.config.write_text(json.dumps(config))
    done = subprocess.run(
        ["kea-dhcp4", "-t", str(paths.config)], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode != 0


def test_debian_kea_ships_the_lease_commands_hook() -> None:
    hook = find_lease_hook()
    assert hook is not None
    assert hook.name == "libdhcp_lease_cmds.so"
    assert find_lease_hook(("/nonexistent/kea/hooks",)) is None


def test_the_tftp_server_serves_no_dhcp_and_no_dns(tmp_path: Path) -> None:
    text = tftp_config(settings_for(tmp_path, interfaces=("br0", "eth1")), tmp_path)
    lines = text.splitlines()
    assert "port=0" in lines
    assert "enable-tftp" in lines
    assert "tftp-root=/usr/lib/ipxe" in lines
    assert [x for x in lines if x.startswith("interface=")] == ["interface=br0", "interface=eth1"]
    assert not any(line.startswith("dhcp-") for line in lines)


def test_proxy_dhcp_is_refused_naming_the_setting_and_dnsmasq(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^boot\.proxy: Kea has no proxy DHCP") as e:
        make_backend("kea", settings_for(tmp_path, proxy=True))
    assert 'boot.backend = "dnsmasq"' in str(e.value)
    assert not (tmp_path / "kea").exists()
    assert isinstance(make_backend("kea", settings_for(tmp_path)), KeaBackend)


def test_a_state_dir_too_long_for_the_control_socket_is_refused(tmp_path: Path) -> None:
    long = tmp_path / ("d" * 120)
    with pytest.raises(ConfigError, match=r"^boot\.state_dir: .* too long .* unix socket"):
        KeaBackend(settings_for(long))


# -- the lease file ------------------------------------------------------------------

HEADER = (
    "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,"
    "hostname,state,user_context"
)


def test_memfile_lines_later_replace_earlier_and_lifetime_zero_removes() -> None:
    lines = [
        HEADER,
        "198.18.40.42,52:54:00:4B:00:01,,600,1796646426,5,0,0,web1,0,",
        "198.18.40.100,52:54:00:4b:00:02,,600,1796646426,5,0,0,,0,",
        "198.18.40.42,52:54:00:4b:00:01,,600,1796646999,5,0,0,web1&#x2cx,0,",
        "198.18.40.100,52:54:00:4b:00:02,,0,1796645826,5,0,0,,0,",
        "198.18.40.101,52:54:00:4b:00:09,,600,1796646426,5,0,0,,1,",  # declined
        "198.18.40.102,52:54:00:4b:00:08,,4294967295,0,5,0,0,,0,",  # infinite
        "198.18.40.103,52:54:00",  # damaged
    ]
    leases = {lease.address: lease for lease in memfile_leases(lines)}
    assert sorted(leases) == ["198.18.40.102", "198.18.40.42"]
    web1 = leases["198.18.40.42"]
    assert (web1.mac, web1.hostname) == (MAC1, "web1,x")
    assert web1.expires == dt.datetime.fromtimestamp(1796646999, dt.UTC)
    assert leases["198.18.40.102"].expires is None
    assert leases["198.18.40.102"].hostname is None


def test_the_memfile_is_read_after_the_files_its_cleanup_left(tmp_path: Path) -> None:
    path = tmp_path / "leases4.csv"
    assert read_memfile(path) == []
    (tmp_path / "leases4.csv.2").write_text(
        f"{HEADER}\n198.18.40.42,52:54:00:4b:00:01,,600,1,5,0,0,old,0,\n"
    )
    (tmp_path / "leases4.csv.1").write_text(
        f"{HEADER}\n198.18.40.43,52:54:00:4b:00:02,,600,1,5,0,0,,0,\n"
    )
    path.write_text(f"{HEADER}\n198.18.40.42,52:54:00:4b:00:01,,600,2,5,0,0,new,0,\n")
    leases = {lease.address: lease.hostname for lease in read_memfile(path)}
    assert leases == {"198.18.40.42": "new", "198.18.40.43": None}
    # once the cleanup completed, its output holds what the .2 and .1 files held
    (tmp_path / "leases4.csv.completed").write_text(
        f"{HEADER}\n198.18.40.44,52:54:00:4b:00:03,,600,1,5,0,0,,0,\n"
    )
    assert sorted(lease.address for lease in read_memfile(path)) == [
        "198.18.40.42",
        "198.18.40.44",
    ]


# -- the control socket without Kea --------------------------------------------------


async def test_a_missing_socket_is_named(tmp_path: Path) -> None:
    control = KeaControl(tmp_path / "kea4.sock")
    with pytest.raises(KeaControlError, match=r"kea4\.sock does not exist \(is kea-dhcp4"):
        await control.command("status-get")


async def test_a_socket_nobody_listens_on_is_refused(short_dir: Path) -> None:
    path = short_dir / "dead.sock"
    import socket

    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nothing listens
    with pytest.raises(KeaControlError, match=r"dead\.sock: connection refused"):
        await KeaControl(path).command("status-get")


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        (b"not json", KeaControlError, "is not JSON"),
        (b'{"text": "no result"}', KeaControlError, "has no result"),
        (b'{"result": 1, "text": "bad things"}', KeaCommandError, "(result 1): bad things"),
        (b"", KeaControlError, "is not JSON"),
    ],
)
async def test_answers_that_are_not_success_are_errors(
    short_dir: Path, answer: bytes, error: type[Exception], words: str
) -> None:
    path = short_dir / "s.sock"
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(4096))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, str(path))
    async with server:
        with pytest.raises(error) as raised:
            await KeaControl(path).command("config-get")
    assert words in str(raised.value)
    assert json.loads(seen[0]) == {"command": "config-get"}


async def test_no_answer_in_time_is_named(short_dir: Path) -> None:
    path = short_dir / "slow.sock"
    hold = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    server = await asyncio.start_unix_server(serve, str(path))
    async with server:
        with pytest.raises(KeaControlError, match=r"no answer to 'status-get' within 0\.2s"):
            await KeaControl(path, timeout=0.2).command("status-get")
        hold.set()


async def test_an_interface_kea_cannot_find_fails_the_start_with_kea_s_reason(
    short_dir: Path,
) -> None:
    """(kea-dhcp4 on the host, which stops at its configuration: it opens no socket.)"""
    settings = settings_for(short_dir, interfaces=("ctrnope0",))
    backend = KeaBackend(settings, tftp=False)
    with pytest.raises(KeaError, match=r"interface 'ctrnope0' doesn't exist in the system"):
        await backend.start(boot_data([], [pool(NET, 7, 100, 150)]))
    assert not backend.alive()
    assert backend.restarts == 1


async def test_a_program_that_never_answers_fails_the_start_and_leaves_nothing(
    short_dir: Path,
) -> None:
    backend = KeaBackend(settings_for(short_dir), program="/bin/false", tftp=False)
    with pytest.raises(KeaError, match=r"kea-dhcp4 did not answer on .*kea4\.sock"):
        await backend.start(boot_data([], [pool(NET, 7, 100, 150)]))
    assert not backend.alive()
    assert backend.kea.process is not None
    assert backend.kea.process.returncode is not None


# -- a real kea-dhcp4 in a namespace -------------------------------------------------


@dataclass
class Served:
    ns: Netns
    clients: str  # the clients' namespace
    backend: KeaBackend
    tftp_root: Path
    dump: Path

    def addr(self, offset: int) -> str:
        return str(self.ns.network.network_address + offset)

    def data(self, *extra: dict[str, Any], version: int = 1) -> BootData:
        return boot_data(
            [reservation(self.ns.network, 1, MAC1, 42), *extra],
            [pool(self.ns.network, 7, 100, 110)],
            version=version,
        )

    def lease(self, link: str, *options: str) -> dict[str, str]:
        """busybox udhcpc on ``link``: what it was offered and bound (the DHCP fields
        as its script sees them)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.clients, "busybox", "udhcpc", "-i", link, "-n", "-q",
             "-f", "-t", "6", "-T", "1", "-O", "search", "-s", str(self.dump), *options],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"udhcpc on {link}: {done.stderr}\nkea: {self.backend.paths.log.read_text()[-3000:]}"
        )
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr}"


def _network() -> ipaddress.IPv4Network:
    """A free /24 of 198.18.0.0/16 (the rig's own choice may be in 198.19.0.0/16)."""
    require_namespaces()  # free_network reads the host's routes
    for _ in range(100):
        network = free_network()
        if network.subnet_of(ipaddress.IPv4Network("198.18.0.0/16")):
            return network
    raise AssertionError("no free /24 in 198.18.0.0/16 on this host")


@pytest.fixture
async def served(short_dir: Path) -> AsyncIterator[Served]:
    """kea-dhcp4 (and its TFTP dnsmasq) on the bridge of a namespace; three client links
    (``c0``..``c2``, MACs 1..3) in another namespace, each a veth whose peer is a port
    of the bridge."""
    tftp_root = short_dir / "tftp"
    tftp_root.mkdir()
    (tftp_root / "undionly.kpxe").write_bytes(secrets.token_bytes(5000))
    dump = short_dir / "dump.sh"
    dump.write_text(
        "#!/bin/sh\n"
        '[ "$1" = bound ] && for name in ip subnet router dns domain search hostname '
        'boot_file siaddr lease; do eval "echo $name=\\$$name"; done\nexit 0\n'
    )
    dump.chmod(0o755)
    with network_namespace(str(_network())) as ns:
        clients = f"{ns.name}-c"
        _ip("netns", "add", clients)
        try:
            for index, mac in enumerate((MAC1, MAC2, MAC3)):
                port = f"cp{index}"
                _ip("-n", ns.name, "link", "add", port, "type", "veth", "peer", "name",
                    f"c{index}", "netns", clients)  # fmt: skip
                _ip("-n", ns.name, "link", "set", port, "master", ns.bridge, "up")
                _ip("-n", clients, "link", "set", f"c{index}", "address", mac, "up")
            _ip("-n", clients, "link", "set", "lo", "up")
            settings = settings_for(
                short_dir / "state",
                server_address=str(ns.namespace_address),
                http_base=f"http://{ns.host_address}:8067",
                tftp_root=tftp_root,
            )
            backend = KeaBackend(settings, wrap=ns.command())
            server = Served(ns, clients, backend, tftp_root, dump)
            try:
                await backend.start(server.data())
                yield server
            finally:
                await backend.stop()
        finally:
            _ip("netns", "del", clients)


async def _kea_pid(backend: KeaBackend) -> int:
    status = await backend.control.command("status-get")
    return int(status["pid"])


async def test_kea_leases_the_reserved_and_a_pool_address_with_options_by_class(
    served: Served,
) -> None:
    web1 = await asyncio.to_thread(served.lease, "c0")
    assert web1["ip"] == served.addr(42)
    assert web1["hostname"] == "web1"
    assert web1["router"] == served.addr(1)
    assert web1["dns"].split() == ["198.18.0.53", "198.18.0.54"]
    assert web1["domain"] == "dc1.example.com"
    assert web1["search"].split() == ["example.com", "dc1.example.com"]
    assert web1["lease"] == "600"
    # BIOS firmware (no option 93): iPXE over TFTP from the server's address
    assert (web1["boot_file"], web1["siaddr"]) == (
        "undionly.kpxe",
        str(served.ns.namespace_address),
    )

    # an unknown machine gets a pool address; UEFI firmware the UEFI iPXE; iPXE the chain URL
    uefi = await asyncio.to_thread(served.lease, "c1", "-x", "93:0007")
    start, end = ipaddress.IPv4Address(served.addr(100)), ipaddress.IPv4Address(served.addr(110))
    assert start <= ipaddress.IPv4Address(uefi["ip"]) <= end
    assert uefi["boot_file"] == "snponly.efi"
    assert uefi["hostname"] == ""
    ipxe = await asyncio.to_thread(served.lease, "c1", "-x", "77:69505845")  # "iPXE"
    assert ipxe["ip"] == uefi["ip"]
    assert ipxe["boot_file"] == f"http://{served.ns.host_address}:8067/ipxe?mac=${{net0/mac}}"

    leases = {lease.mac: lease for lease in await served.backend.leases()}
    assert set(leases) == {MAC1, MAC2}
    assert (leases[MAC1].address, leases[MAC1].hostname) == (served.addr(42), "web1")
    assert leases[MAC2].address == uefi["ip"]
    now = dt.datetime.now(dt.UTC)
    expires = leases[MAC1].expires
    assert expires is not None
    assert now + dt.timedelta(seconds=500) < expires <= now + dt.timedelta(seconds=610)
    # the memfile says the same as lease4-get-all
    on_disk = {(x.mac, x.address) for x in read_memfile(served.backend.paths.leases)}
    assert on_disk == {(x.mac, x.address) for x in leases.values()}


async def test_the_tftp_server_beside_kea_serves_the_ipxe_binaries(served: Served) -> None:
    web1 = await asyncio.to_thread(served.lease, "c0")
    _ip("-n", served.clients, "addr", "add", f"{web1['ip']}/24", "dev", "c0")
    got = served.tftp_root.parent / "got.kpxe"
    done = await asyncio.to_thread(
        subprocess.run,
        ["ip", "netns", "exec", served.clients, "busybox", "tftp", "-g", "-r",
         web1["boot_file"], "-l", str(got), web1["siaddr"]],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert got.read_bytes() == (served.tftp_root / "undionly.kpxe").read_bytes()


async def test_a_reservation_applied_live_reaches_a_client_and_no_lease_is_dropped(
    served: Served,
) -> None:
    backend = served.backend
    assert backend.hook is not None  # Debian's kea-common: lease4-get-all answers
    web1 = await asyncio.to_thread(served.lease, "c0")
    assert web1["ip"] == served.addr(42)
    unknown = await asyncio.to_thread(served.lease, "c2")
    assert unknown["hostname"] == ""
    pid = await _kea_pid(backend)
    assert backend.kea.process is not None
    assert pid == backend.kea.process.pid

    web3 = reservation(served.ns.network, 3, MAC3, 60, boot_file="own.efi")
    await backend.apply(served.data(web3, version=2))

    got = await asyncio.to_thread(served.lease, "c2")
    assert (got["ip"], got["hostname"]) == (served.addr(60), "web3")
    assert got["boot_file"] == "own.efi"  # a reservation's own boot file beats the class
    assert await _kea_pid(backend) == pid  # the same process
    assert backend.restarts == 0
    held = {lease.mac: lease.address for lease in await backend.control.leases()}
    assert held[MAC1] == served.addr(42)  # the lease from before the change
    assert held[MAC3] == served.addr(60)
    assert {lease.mac: lease.address for lease in read_memfile(backend.paths.leases)} == held
    # config-write saved what is served
    written = json.loads(backend.paths.config.read_text())
    hosts = written["Dhcp4"]["subnet4"][0]["reservations"]
    assert sorted(host["hw-address"] for host in hosts) == [MAC1, MAC3]

    # refused data changes nothing, in Kea or on disk
    clash = reservation(served.ns.network, 2, MAC2, 60)
    with pytest.raises(ValueError, match=r"^reservations\[2\]\.address: .* also reserved"):
        await backend.apply(served.data(web3, clash, version=3))
    served_now = await backend.control.command("config-get")
    hosts = served_now["Dhcp4"]["subnet4"][0]["reservations"]
    assert sorted(host["hw-address"] for host in hosts) == [MAC1, MAC3]
    assert json.loads(backend.paths.config.read_text()) == written

    # a reservation removed is removed live too
    await backend.apply(served.data(version=4))
    served_now = await backend.control.command("config-get")
    hosts = served_now["Dhcp4"]["subnet4"][0]["reservations"]
    assert [host["hw-address"] for host in hosts] == [MAC1]
    assert await _kea_pid(backend) == pid


async def test_kea_killed_is_started_again_with_its_leases_and_live_reservations(
    served: Served,
) -> None:
    backend = served.backend
    await asyncio.to_thread(served.lease, "c0")
    await backend.apply(served.data(reservation(served.ns.network, 3, MAC3, 60), version=2))
    assert backend.kea.process is not None
    old = backend.kea.process.pid
    os.kill(old, signal.SIGKILL)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while backend.restarts == 0 or not backend.kea.ready.is_set():
        assert loop.time() < deadline, f"kea-dhcp4 was not started again: {backend.paths.log}"
        await asyncio.sleep(0.05)
    assert backend.alive()
    assert backend.restarts == 1
    new = await _kea_pid(backend)
    assert new != old
    assert new == backend.kea.process.pid
    held = {lease.mac: lease.address for lease in await backend.leases()}
    assert held == {MAC1: served.addr(42)}
    # the restart read what apply wrote: the live reservation is still served
    got = await asyncio.to_thread(served.lease, "c2")
    assert (got["ip"], got["hostname"]) == (served.addr(60), "web3")

    # stopped: the leases are read from the memfile, and the socket is gone
    await backend.stop()
    assert not backend.alive()
    held = {lease.mac: lease.address for lease in await backend.leases()}
    assert held == {MAC1: served.addr(42), MAC3: served.addr(60)}
    with pytest.raises(KeaControlError, match=r"kea-dhcp4's control socket .*kea4\.sock"):
        await backend.control.command("status-get")


async def test_kea_refusing_a_command_is_surfaced_with_its_reason(served: Served) -> None:
    backend = served.backend
    with pytest.raises(KeaCommandError) as raised:
        await backend.control.command("no-such-command")
    assert raised.value.result == 2
    assert str(raised.value) == (
        "kea-dhcp4 refused 'no-such-command' (result 2): 'no-such-command' command not supported."
    )


async def test_a_configuration_kea_refuses_leaves_the_last_good_one_served(
    served: Served,
) -> None:
    """Two overlapping pools of one subnet (Contractor never sends them; Kea refuses
    them): the error carries Kea's reason, and Kea, which serves nothing after a refused
    config-set, is back on the last good configuration, in the same process."""
    backend = served.backend
    pid = await _kea_pid(backend)
    before = backend.paths.config.read_text()
    net = served.ns.network
    bad = boot_data(
        [reservation(net, 1, MAC1, 42), reservation(net, 3, MAC3, 60)],
        [pool(net, 7, 100, 110), pool(net, 8, 105, 120)],
        version=2,
    )
    with pytest.raises(KeaCommandError, match=r"refused 'config-set' \(result 1\): .*overlap"):
        await backend.apply(bad)
    assert backend.paths.config.read_text() == before
    web1 = await asyncio.to_thread(served.lease, "c0")
    assert web1["ip"] == served.addr(42)
    unknown = await asyncio.to_thread(served.lease, "c2")  # web3 was never served
    assert unknown["hostname"] == ""
    assert await _kea_pid(backend) == pid
    assert backend.restarts == 0
    # and the next good data goes through
    await backend.apply(served.data(reservation(net, 3, MAC3, 60), version=3))
    got = await asyncio.to_thread(served.lease, "c2")
    assert got["ip"] == served.addr(60)
