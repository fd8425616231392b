"""The ``redfish`` module against a real ``sushy-emulator --fake`` over HTTPS (a throwaway CA
and certificate), and against a loopback server answering nonsense."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from subcontractor.module import Module, TaskFailed, load_modules
from tests.serving import free_port
from tests.subcontractor.redfish_bmc import RedfishBmc, image_server, make_tls, sushy_emulator

FAST = {"confirm_interval": 0.2, "confirm_timeout": 30, "soft_off_wait": 30}


def redfish(**options: Any) -> Module:
    return load_modules({"redfish": 4}, {"redfish": {**FAST, **options}})["redfish"]


def connection(bmc: RedfishBmc, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": bmc.port,
        "username": bmc.username,
        "password": bmc.password,
        "system_id": None,
        "verify": True,
        "ca_bundle": bmc.tls.ca,
    }
    values.update(changes)
    return values


@pytest.fixture
def bmc(tmp_path: Path) -> Iterator[RedfishBmc]:
    with sushy_emulator(tmp_path / "bmc") as emulator:
        yield emulator


async def test_power_on_and_off_are_waited_for_and_read_back(bmc: RedfishBmc) -> None:
    module = redfish()
    call = module.functions()
    assert await call["power_state"]({"connection": connection(bmc)}) == {"state": "off"}
    started = time.monotonic()
    assert await call["set_power"]({"connection": connection(bmc), "state": "on"}) == {
        "state": "on"
    }
    # the emulator applies it 1-11 s later: the answer came once it showed, not before
    assert bmc.power() == "On"
    assert time.monotonic() - started < 30
    # graceful first: this OS obeys the power button
    assert await call["set_power"]({"connection": connection(bmc), "state": "soft_off"}) == {
        "state": "off"
    }
    assert bmc.power() == "Off"
    # already off: nothing is sent
    assert await call["set_power"]({"connection": connection(bmc), "state": "off"}) == {
        "state": "off"
    }
    assert bmc.resets() == ["On", "GracefulShutdown"]
    with pytest.raises(TaskFailed, match="'state' must be one of") as bad:
        await call["set_power"]({"connection": connection(bmc), "state": "sideways"})
    assert not bad.value.retryable
    await module.aclose()


async def test_a_graceful_shutdown_ignored_then_a_forced_off(tmp_path: Path) -> None:
    with sushy_emulator(tmp_path / "bmc", power="On") as bmc:
        bmc.deaf()  # the OS ignores the power button
        module = redfish(soft_off_wait=1.5)
        call = module.functions()
        soft = await call["set_power"]({"connection": connection(bmc), "state": "soft_off"})
        assert soft == {"state": "on"}  # Contractor's power_off goes on to a forced off
        forced = await call["set_power"]({"connection": connection(bmc), "state": "off"})
        assert forced == {"state": "off"}
        assert bmc.power() == "Off"
        assert bmc.resets() == ["GracefulShutdown", "ForceOff"]
        await module.aclose()


async def test_a_power_change_not_shown_in_time_is_retryable(tmp_path: Path) -> None:
    with sushy_emulator(tmp_path / "bmc", power="On") as bmc:
        bmc.deaf("ForceOff")  # accepted, never applied
        module = redfish(confirm_timeout=0.5)
        with pytest.raises(TaskFailed) as slow:
            await module.functions()["set_power"]({"connection": connection(bmc), "state": "off"})
        assert slow.value.retryable
        assert f"BMC {bmc.label}: power still on 0.5s after asking for off" in str(slow.value)
        await module.aclose()


async def test_boot_device_once_and_continuous(bmc: RedfishBmc) -> None:
    module = redfish()
    call = module.functions()
    once = await call["set_boot_device"]({"connection": connection(bmc), "device": "pxe"})
    assert once["device"] == "pxe"
    assert once["target"] == "Pxe"
    assert bmc.boot()["BootSourceOverrideTarget"] == "Pxe"
    always = await call["set_boot_device"](
        {"connection": connection(bmc), "device": "cd", "continuous": True}
    )
    assert always["target"] == "Cd"
    assert bmc.boot()["BootSourceOverrideTarget"] == "Cd"
    patches = [c["body"]["Boot"] for c in bmc.calls() if c["method"] == "PATCH"]
    assert patches == [
        {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"},
        {"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Continuous"},
    ]
    with pytest.raises(TaskFailed) as unoffered:
        await call["set_boot_device"]({"connection": connection(bmc), "device": "usb"})
    assert not unoffered.value.retryable
    assert "cannot boot" in str(unoffered.value)
    assert "offers Pxe, Cd, Hdd, UefiHttp" in str(unoffered.value)
    with pytest.raises(TaskFailed, match="'device' must be one of"):
        await call["set_boot_device"]({"connection": connection(bmc), "device": "floppy"})
    await module.aclose()


async def test_virtual_media_insert_and_eject(bmc: RedfishBmc, tmp_path: Path) -> None:
    module = redfish()
    call = module.functions()
    with image_server(tmp_path / "images") as url:
        inserted = await call["insert_media"]({"connection": connection(bmc), "url": url})
        assert inserted == {"inserted": True, "image": url, "device": "Cd"}
        assert (bmc.media()["Inserted"], bmc.media()["Image"]) == (True, url)
        # the same image again: nothing is sent
        before = len(bmc.calls())
        assert await call["insert_media"]({"connection": connection(bmc), "url": url}) == inserted
        assert len(bmc.calls()) == before
        assert await call["eject_media"]({"connection": connection(bmc)}) == {
            "inserted": False,
            "device": "Cd",
        }
        assert bmc.media()["Inserted"] is False
        broken = url.replace("installer.iso", "missing.iso")
        with pytest.raises(TaskFailed) as missing:
            await call["insert_media"]({"connection": connection(bmc), "url": broken})
        assert f"BMC {bmc.label}: POST " in str(missing.value)
        assert "HTTP 4" in str(missing.value)
    await module.aclose()


async def test_interface_map_from_the_ethernet_interfaces(bmc: RedfishBmc) -> None:
    module = redfish()
    call = module.functions()
    answer = await call["get_interface_map"](
        {"connection": connection(bmc), "physical_locations": ["eth0", "eth1"]}
    )
    assert answer["interface_map"] == {"eth0": bmc.nics[0], "eth1": bmc.nics[1]}
    with pytest.raises(TaskFailed) as short:
        await call["get_interface_map"](
            {"connection": connection(bmc), "physical_locations": ["eth0", "eth1", "eth2"]}
        )
    assert "has 2 Ethernet interfaces" in str(short.value)
    assert "the foundation has 3 (eth0, eth1, eth2)" in str(short.value)
    await module.aclose()


async def test_wrong_credentials_are_final_and_name_the_bmc(bmc: RedfishBmc) -> None:
    module = redfish()
    call = module.functions()
    for function, extra in (("power_state", {}), ("set_power", {"state": "on"})):
        with pytest.raises(TaskFailed) as refused:
            await call[function]({"connection": connection(bmc, password="wrong-pw"), **extra})
        assert not refused.value.retryable
        assert f"BMC {bmc.label} refused the credentials of user 'admin' (HTTP 401" in str(
            refused.value
        )
        assert "wrong-pw" not in str(refused.value)
        assert bmc.password not in str(refused.value)
    assert bmc.power() == "Off"
    assert bmc.calls() == []
    await module.aclose()


async def test_an_unreachable_bmc_is_retryable() -> None:
    module = redfish(request_timeout=5)
    port = free_port()  # nothing listens there
    bmc = {"host": "127.0.0.1", "port": port, "username": "u", "password": "p"}
    with pytest.raises(TaskFailed) as failure:
        await module.functions()["power_state"]({"connection": bmc})
    assert failure.value.retryable
    assert f"BMC 127.0.0.1:{port} did not answer" in str(failure.value)
    await module.aclose()


async def test_link_test_counts_the_answers(bmc: RedfishBmc) -> None:
    module = redfish(request_timeout=2)
    link_test = module.functions()["link_test"]
    answer = await link_test({"connection": connection(bmc), "count": 3, "delay": 0})
    assert answer == {"success": True, "answered": 3}
    away = {"host": "127.0.0.1", "port": free_port(), "username": "u", "password": "p"}
    assert await link_test({"connection": away, "count": 2, "delay": 0}) == {
        "success": False,
        "answered": 0,
    }
    with pytest.raises(TaskFailed) as refused:  # a final failure ends the test at once
        await link_test({"connection": connection(bmc, password="wrong-pw"), "delay": 0})
    assert not refused.value.retryable
    with pytest.raises(TaskFailed, match=r"parameter 'delay' must be a number ≥ 0, got -1"):
        await link_test({"connection": connection(bmc), "delay": -1})
    await module.aclose()


async def test_tls_is_checked_against_the_ca_bundle(bmc: RedfishBmc, tmp_path: Path) -> None:
    module = redfish()
    power_state = module.functions()["power_state"]
    with pytest.raises(TaskFailed) as untrusted:  # the system's trust store: not this CA
        await power_state({"connection": connection(bmc, ca_bundle=None)})
    assert not untrusted.value.retryable
    assert f"BMC {bmc.label}: its TLS certificate is not trusted" in str(untrusted.value)
    other = make_tls(tmp_path / "other")
    with pytest.raises(TaskFailed, match="not trusted"):
        await power_state({"connection": connection(bmc, ca_bundle=other.ca)})
    assert await power_state({"connection": connection(bmc, ca_bundle=None, verify=False)}) == {
        "state": "off"
    }
    (tmp_path / "ca.pem").write_text(bmc.tls.ca)  # the agent's own bundle, from its options
    agent_wide = redfish(ca_bundle=str(tmp_path / "ca.pem"))
    answer = await agent_wide.functions()["power_state"](
        {"connection": connection(bmc, ca_bundle=None)}
    )
    assert answer == {"state": "off"}
    await module.aclose()
    await agent_wide.aclose()


async def test_system_id_given_found_or_wrong(bmc: RedfishBmc) -> None:
    module = redfish()
    power_state = module.functions()["power_state"]
    given = connection(bmc, system_id=bmc.system_id)
    assert await power_state({"connection": given}) == {"state": "off"}
    with pytest.raises(TaskFailed) as wrong:
        await power_state({"connection": connection(bmc, system_id="no-such-node")})
    assert not wrong.value.retryable
    assert f"BMC {bmc.label} has no system 'no-such-node'" in str(wrong.value)
    await module.aclose()


class _Nonsense(http.server.BaseHTTPRequestHandler):
    answers: dict[str, tuple[str, bytes]] = {
        "/redfish/v1/Systems": (
            "application/json",
            b'{"Members": [{"@odata.id": "/redfish/v1/Systems/1"}, '
            b'{"@odata.id": "/redfish/v1/Systems/2"}]}',
        ),
        "/redfish/v1/Systems/1": ("application/json", b'{"PowerState": "Sideways"}'),
        "/redfish/v1/Systems/2": ("text/html", b"<html>login</html>"),
    }

    def do_GET(self) -> None:
        kind, body = self.answers.get(self.path, ("application/json", b"[]"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def nonsense_bmc(directory: Path) -> Iterator[tuple[int, str]]:
    tls = make_tls(directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Nonsense)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.certificate, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], tls.ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_answers_that_are_not_redfish_are_clear_errors(tmp_path: Path) -> None:
    module = redfish()
    power_state = module.functions()["power_state"]
    with nonsense_bmc(tmp_path / "tls") as (port, ca):
        base = {"host": "127.0.0.1", "port": port, "username": "u", "password": "p"}
        bmc = {**base, "ca_bundle": ca}
        with pytest.raises(TaskFailed) as several:
            await power_state({"connection": bmc})
        assert f"BMC 127.0.0.1:{port} has 2 systems (1, 2); set the foundation's system_id" in (
            str(several.value)
        )
        with pytest.raises(TaskFailed) as odd:
            await power_state({"connection": {**bmc, "system_id": "1"}})
        assert "/redfish/v1/Systems/1 has PowerState 'Sideways'" in str(odd.value)
        assert not odd.value.retryable
        with pytest.raises(TaskFailed) as html:
            await power_state({"connection": {**bmc, "system_id": "2"}})
        assert "is not a Redfish JSON object" in str(html.value)
        with pytest.raises(TaskFailed, match="'host' is not a host name"):
            await power_state({"connection": {**bmc, "host": "-oProxy=x"}})
    await module.aclose()
