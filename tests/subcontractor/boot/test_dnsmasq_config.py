"""The dnsmasq configuration written from the boot data: full DHCP from pools and
reservations, proxy DHCP beside another server, iPXE by client architecture, the chain
URL to iPXE, per-host boot files; what ``apply`` changes live and what restarts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from subcontractor.boot.backend import BootData, ServeSettings
from subcontractor.boot.dnsmasq import DnsmasqBackend, host_files, render_config
from tests.subcontractor.boot.test_backend import answer, pool, reservation


def serve(tmp_path: Path, *, proxy: bool = False) -> ServeSettings:
    return ServeSettings(
        interfaces=("eno2",),
        server_address="10.0.0.2",
        http_base="http://10.0.0.2:8067",
        tftp_root=Path("/usr/lib/ipxe"),
        state_dir=tmp_path,
        proxy=proxy,
        lease_seconds=600,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_full_dhcp_pools_options_architectures_and_the_chain_url(tmp_path: Path) -> None:
    data = BootData.from_json(answer())
    conf = lines(render_config(data, serve(tmp_path), tmp_path))
    assert "interface=eno2" in conf
    assert "dhcp-authoritative" in conf
    assert "dhcp-range=set:net0,10.0.0.100,10.0.0.199,255.255.255.0,600" in conf
    assert "dhcp-option=tag:net0,option:router,10.0.0.1" in conf
    assert "dhcp-option=tag:net0,option:dns-server,10.0.0.53" in conf
    assert "dhcp-option=tag:net0,option:domain-name,dc1.example.com" in conf
    assert "dhcp-option=tag:net0,option:domain-search,example.com" in conf
    assert f"dhcp-hostsdir={tmp_path / 'hosts'}" in conf
    assert "dhcp-match=set:ipxe,175" in conf
    assert "dhcp-match=set:efi,option:client-arch,7" in conf
    assert "dhcp-match=set:efi,option:client-arch,9" in conf
    assert "dhcp-boot=tag:!own,tag:!ipxe,tag:efi,snponly.efi,,10.0.0.2" in conf
    assert "dhcp-boot=tag:!own,tag:!ipxe,tag:!efi,undionly.kpxe,,10.0.0.2" in conf
    assert "dhcp-boot=tag:!own,tag:ipxe,http://10.0.0.2:8067/ipxe?mac=${net0/mac}" in conf
    assert "enable-ra" in conf
    assert "dhcp-range=::,constructor:eno2,ra-only" in conf
    assert not any("proxy" in line for line in conf)
    assert host_files(data, serve(tmp_path)) == {
        "r17.conf": "52:54:00:12:34:11,set:r17,10.0.0.17,web17,600\n"
    }


def test_reservations_outside_pools_get_a_static_range(tmp_path: Path) -> None:
    data = BootData.from_json(answer(pools=[]))
    conf = lines(render_config(data, serve(tmp_path), tmp_path))
    assert "dhcp-range=set:net0,10.0.0.0,static,255.255.255.0,600" in conf


def test_a_hosts_own_boot_file(tmp_path: Path) -> None:
    data = BootData.from_json(answer(reservations=[reservation(boot_file="pxelinux.0")]))
    conf = lines(render_config(data, serve(tmp_path), tmp_path))
    assert "dhcp-boot=tag:r17,pxelinux.0,,10.0.0.2" in conf
    assert host_files(data, serve(tmp_path))["r17.conf"].startswith(
        "52:54:00:12:34:11,set:r17,set:own,10.0.0.17"
    )


def test_proxy_dhcp_beside_another_server(tmp_path: Path) -> None:
    data = BootData.from_json(answer())
    conf = lines(render_config(data, serve(tmp_path, proxy=True), tmp_path))
    assert "dhcp-range=set:net0,10.0.0.0,proxy,255.255.255.0" in conf
    assert "dhcp-authoritative" not in conf
    assert "dhcp-range=10.0.0.2,proxy" not in conf  # its subnet is there already
    assert not any("option:router" in line for line in conf)  # the other server's part
    assert 'pxe-service=tag:!ipxe,x86PC,"iPXE",undionly.kpxe,10.0.0.2' in conf
    assert 'pxe-service=tag:!ipxe,X86-64_EFI,"iPXE",snponly.efi,10.0.0.2' in conf
    # the host is only tagged: the other server gives its address
    assert host_files(data, serve(tmp_path, proxy=True)) == {
        "r17.conf": "52:54:00:12:34:11,set:r17,web17\n"
    }


def test_proxy_dhcp_on_the_hosts_own_subnet_with_no_entries(tmp_path: Path) -> None:
    data = BootData.from_json(answer(reservations=[], pools=[]))
    conf = lines(render_config(data, serve(tmp_path, proxy=True), tmp_path))
    assert [line for line in conf if line.startswith("dhcp-range=")] == [
        "dhcp-range=10.0.0.2,proxy",
        "dhcp-range=::,constructor:eno2,ra-only",
    ]


@pytest.mark.parametrize("proxy", [False, True])
def test_dnsmasq_itself_accepts_the_configuration(tmp_path: Path, proxy: bool) -> None:
    backend = DnsmasqBackend(serve(tmp_path, proxy=proxy))
    backend._write_all(BootData.from_json(answer()))
    checked = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={backend.config}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax check OK" in checked.stderr


def test_what_apply_writes_live_and_what_restarts(tmp_path: Path) -> None:
    backend = DnsmasqBackend(serve(tmp_path))
    first = BootData.from_json(answer())
    assert backend._write_all(first)  # the first configuration
    assert not backend._write_all(first)  # nothing changed
    added = BootData.from_json(answer(reservations=[reservation(17), reservation(18)]))
    assert not backend._write_all(added)  # a new host file: dnsmasq reads it by inotify
    assert sorted(p.name for p in backend.hosts.iterdir()) == ["r17.conf", "r18.conf"]
    moved = BootData.from_json(
        answer(reservations=[reservation(17), reservation(18, address="10.0.0.60")])
    )
    assert backend._write_all(moved)  # a host changed: dnsmasq keeps the old record
    assert "10.0.0.60" in (backend.hosts / "r18.conf").read_text()
    assert backend._write_all(first)  # a host removed
    assert [p.name for p in backend.hosts.iterdir()] == ["r17.conf"]
    wider = BootData.from_json(answer(pools=[pool(end="10.0.0.250")]))
    assert backend._write_all(wider)  # dnsmasq.conf changed


def test_a_reserved_address_leased_to_another_mac_is_dropped_before_a_start(
    tmp_path: Path,
) -> None:
    backend = DnsmasqBackend(serve(tmp_path))
    backend._write_all(BootData.from_json(answer()))  # 10.0.0.17 reserved for ...:11
    backend.lease_file.write_text(
        "1999999999 52:54:00:99:99:99 10.0.0.17 old *\n"  # the MAC before: dropped
        "1999999999 52:54:00:12:34:11 10.0.0.17 web17 *\n"  # its own: kept
        "1999999999 52:54:00:aa:aa:aa 10.0.0.120 pooled *\n"  # not reserved: kept
        "duid 00:01:00:01\n"
    )
    backend._prune_leases()
    assert backend.lease_file.read_text().splitlines() == [
        "1999999999 52:54:00:12:34:11 10.0.0.17 web17 *",
        "1999999999 52:54:00:aa:aa:aa 10.0.0.120 pooled *",
        "duid 00:01:00:01",
    ]
