"""``[boot]`` in the subcontractor's configuration: its keys, defaults, and every bad
value refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from subcontractor.cli import main
from subcontractor.config import ConfigError, load

TOKEN = "sct_0123456789abcdef.s3cr3t-s3cr3t-s3cr3t-s3cr3t"


def config(tmp_path: Path, boot: str, modules: str = "") -> Path:
    path = tmp_path / "subcontractor.toml"
    path.write_text(
        f"""
[contractor]
url = "http://127.0.0.1:9/"
token = "{TOKEN}"
site = "dc1"

[agent]
journal_dir = "{tmp_path / "journal"}"

[boot]
{boot}
{modules}
"""
    )
    return path


ENABLED = 'enabled = true\ninterfaces = ["eno2"]\nserver_address = "198.18.7.1"\n'


def test_boot_alone_is_a_whole_configuration_with_its_defaults(tmp_path: Path) -> None:
    loaded = load(config(tmp_path, ENABLED))
    boot = loaded.boot
    assert boot.enabled
    assert loaded.modules == {}
    assert (boot.backend, boot.proxy, boot.lease_seconds) == ("dnsmasq", False, 3600)
    assert boot.listen() == ("198.18.7.1", 8069)
    assert boot.tftp_root == Path("/usr/lib/ipxe")
    listening = load(config(tmp_path, ENABLED + 'http_listen = "0.0.0.0:8080"\nproxy = true'))
    assert listening.boot.listen() == ("0.0.0.0", 8080)
    assert listening.boot.proxy


def test_without_boot_a_module_is_still_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"modules: name at least one module .* or enable"):
        load(config(tmp_path, "enabled = false"))
    assert not load(config(tmp_path, "", "[modules.ipmi]")).boot.enabled


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('backend = "isc"', "boot.backend:"),
        ("proxy = 3", "boot.proxy:"),
        ('http_listen = "nowhere"', "boot.http_listen:"),
        ('http_listen = "1.2.3.4:99999"', "boot.http_listen:"),
        ('http_base = "ftp://x"', "boot.http_base:"),
        ("lease_seconds = 10", "boot.lease_seconds:"),
        ("lease_report_seconds = 0", "boot.lease_report_seconds:"),
        ('interfaces = ["eth 0"]', "boot.interfaces:"),
        ('tftp_root = "/nonexistent/ipxe"', "boot.tftp_root:"),
        ('files_dir = "/nonexistent/files"', "boot.files_dir:"),
        ('uefi_boot_file = "grub.efi"', "boot.uefi_boot_file:"),
        ("colour = 1", "boot.colour: unknown key"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(tmp_path: Path, extra: str, named: str) -> None:
    text = ENABLED + extra
    if extra.startswith("interfaces"):
        text = ENABLED.replace('interfaces = ["eno2"]\n', "") + extra
    with pytest.raises(ConfigError) as raised:
        load(config(tmp_path, text))
    assert named in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("boot", "named"),
    [
        ('enabled = true\nserver_address = "198.18.7.1"', "boot.interfaces:"),
        ('enabled = true\ninterfaces = ["eno2"]', "boot.server_address:"),
        ('enabled = true\ninterfaces = ["eno2"]\nserver_address = "x"', "boot.server_address:"),
    ],
)
def test_enabled_needs_interfaces_and_an_address(tmp_path: Path, boot: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named}"):
        load(config(tmp_path, boot))


def test_run_refuses_an_endpoint_address_it_cannot_listen_on(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface of this host
    path = config(
        tmp_path,
        ENABLED + f'http_listen = "192.0.2.1:8069"\ntftp_root = "{tmp_path}"',
    )
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert "configuration: boot.http_listen: cannot listen on 192.0.2.1:8069" in result.output
