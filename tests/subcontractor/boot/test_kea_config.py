"""The Kea backend without a network: its configuration for the boot data (and real
``kea-dhcp4 -t`` accepting it), what it refuses, its lease file reading, and its control
socket's errors against sockets that are not Kea's (a real Kea's are in ``test_kea.py``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subcontractor.boot.backend import make_backend
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
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.kea_entries import (
    MAC1,
    MAC2,
    MAC3,
    NET,
    boot_data,
    pool,
    reservation,
    settings_for,
    short_directory,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_directory() as path:
        yield path


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
    require_tools("kea-dhcp4")
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
    require_tools("kea-dhcp4")
    hook = find_lease_hook()
    assert hook is not None
    assert hook.name == "libdhcp_lease_cmds.so"
    assert find_lease_hook(("/nonexistent/kea/hooks",)) is None


def test_the_tftp_server_serves_no_dhcp4_and_no_dns(tmp_path: Path) -> None:
    text = tftp_config(settings_for(tmp_path, interfaces=("br0", "eth1")), tmp_path)
    lines = text.splitlines()
    assert "port=0" in lines
    assert "enable-tftp" in lines
    assert "tftp-root=/usr/lib/ipxe" in lines
    assert [x for x in lines if x.startswith("interface=")] == ["interface=br0", "interface=eth1"]
    # router advertisements only: no IPv4 range, no DHCPv6
    assert [x for x in lines if x.startswith("dhcp-")] == [
        "dhcp-range=::,constructor:br0,ra-only",
        "dhcp-range=::,constructor:eth1,ra-only",
    ]
    assert "enable-ra" in lines


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
    require_tools("kea-dhcp4")
    settings = settings_for(short_dir, interfaces=("ctrnope0",))
    backend = KeaBackend(settings, tftp=False)
    with pytest.raises(KeaError, match=r"interface 'ctrnope0' doesn't exist in the system"):
        await backend.start(boot_data([], [pool(NET, 7, 100, 150)]))
    assert not backend.alive()
    assert backend.restarts == 1


async def test_a_program_that_is_not_there_fails_the_start_naming_it(short_dir: Path) -> None:
    backend = KeaBackend(settings_for(short_dir), program="/nonexistent/kea-dhcp4", tftp=False)
    with pytest.raises(KeaError, match=r"/nonexistent/kea-dhcp4: No such file or directory"):
        await backend.start(boot_data([], [pool(NET, 7, 100, 150)]))
    assert not backend.alive()


async def test_a_program_that_never_answers_fails_the_start_and_leaves_nothing(
    short_dir: Path,
) -> None:
    backend = KeaBackend(settings_for(short_dir), program="/bin/false", tftp=False)
    with pytest.raises(KeaError, match=r"kea-dhcp4 did not answer on .*kea4\.sock"):
        await backend.start(boot_data([], [pool(NET, 7, 100, 150)]))
    assert not backend.alive()
    assert backend.kea.process is not None
    assert backend.kea.process.returncode is not None
