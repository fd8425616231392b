"""The shipped modules against real peers: ipmi against OpenIPMI's ipmi_sim, iputils against
real sockets and the system ping, simulated on its own."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from subcontractor.config import ConfigError
from subcontractor.module import Module, TaskFailed, load_modules
from tests.subcontractor.bmc import Bmc, free_udp_port, ipmi_sim, require_tools

FAST_IPMI = {"confirm_interval": 0.2, "confirm_timeout": 10, "soft_off_wait": 5}


def module(name: str, **options: Any) -> Module:
    return load_modules({name: 4}, {name: options})[name]


def connection(bmc: Bmc, **changes: Any) -> dict[str, Any]:
    values = {"host": "127.0.0.1", "port": bmc.port, "username": "admin", "password": "password"}
    values.update(changes)
    return values


@pytest.fixture
def bmc(tmp_path: Path) -> Any:
    with ipmi_sim(tmp_path / "bmc", power="off") as simulator:
        yield simulator


async def test_ipmi_power_and_boot(bmc: Bmc) -> None:
    ipmi = module("ipmi", **FAST_IPMI)
    call = ipmi.functions()
    assert await call["power_state"]({"connection": connection(bmc)}) == {"state": "off"}
    assert await call["set_power"]({"connection": connection(bmc), "state": "on"}) == {
        "state": "on"
    }
    assert bmc.power() == "on"
    assert await call["set_boot_device"]({"connection": connection(bmc), "device": "pxe"}) == {
        "device": "pxe"
    }
    assert bmc.boot_device() == "pxe"
    # soft off: the simulated OS obeys; then a hard off of a machine already off is a no-op
    assert await call["set_power"]({"connection": connection(bmc), "state": "soft_off"}) == {
        "state": "off"
    }
    assert "set shutdown 1" in bmc.calls()
    assert bmc.power() == "off"
    assert await call["set_power"]({"connection": connection(bmc), "state": "off"}) == {
        "state": "off"
    }
    assert await call["set_power"]({"connection": connection(bmc), "state": "cycle"}) == {
        "state": "on"
    }
    score = await call["link_test"](
        {"connection": connection(bmc), "count": 3, "scaler": 0.85, "threshold": 0.8, "delay": 0}
    )
    assert score == {"score": 1.0}
    with pytest.raises(TaskFailed, match="'device' must be one of") as bad:
        await call["set_boot_device"]({"connection": connection(bmc), "device": "floppy"})
    assert not bad.value.retryable
    await ipmi.aclose()


async def test_ipmi_soft_off_ignored_then_hard_off(bmc: Bmc) -> None:
    call = module("ipmi", **dict(FAST_IPMI, soft_off_wait=0.5)).functions()
    await call["set_power"]({"connection": connection(bmc), "state": "on"})
    (bmc.node / "deaf").touch()  # the OS ignores the shutdown request
    answer = await call["set_power"]({"connection": connection(bmc), "state": "soft_off"})
    assert answer == {"state": "on"}  # Contractor's power_off goes on to a hard off
    assert await call["set_power"]({"connection": connection(bmc), "state": "off"}) == {
        "state": "off"
    }
    assert bmc.power() == "off"
    assert bmc.calls().count("set shutdown 1") == 1


async def test_ipmi_wrong_password_is_final_and_names_the_bmc(bmc: Bmc) -> None:
    call = module("ipmi", **FAST_IPMI).functions()
    for _ in range(2):  # the second login is refused just the same (no cached broken session)
        with pytest.raises(TaskFailed) as failure:
            await call["power_state"]({"connection": connection(bmc, password="wrong-secret")})
        assert not failure.value.retryable
    assert f"BMC 127.0.0.1:{bmc.port} refused the credentials of user 'admin'" in str(failure.value)
    assert "wrong-secret" not in str(failure.value)
    assert await call["power_state"]({"connection": connection(bmc)}) == {"state": "off"}


async def test_ipmi_unreachable_is_retryable() -> None:
    call = module("ipmi", operation_timeout=20).functions()
    port = free_udp_port()  # nothing answers there
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failure:
        await call["power_state"](
            {
                "connection": {
                    "host": "127.0.0.1",
                    "port": port,
                    "username": "admin",
                    "password": "password",
                }
            }
        )
    assert failure.value.retryable
    assert f"BMC 127.0.0.1:{port}" in str(failure.value)
    assert time.monotonic() - started < 20


async def test_ipmi_one_operation_at_a_time_per_bmc(bmc: Bmc) -> None:
    ipmi = module("ipmi", **FAST_IPMI)
    assert isinstance(ipmi, Module)
    call = ipmi.functions()
    answers = await asyncio.gather(
        *(call["power_state"]({"connection": connection(bmc)}) for _ in range(4))
    )
    assert answers == [{"state": "off"}] * 4


async def test_ipmi_parameters_are_checked() -> None:
    call = module("ipmi").functions()
    with pytest.raises(TaskFailed, match="parameter 'connection' is missing"):
        await call["power_state"]({})
    with pytest.raises(TaskFailed, match="parameter 'password' is missing"):
        await call["power_state"]({"connection": {"host": "h", "username": "u"}})


async def test_port_state_against_a_real_socket_and_a_closed_port() -> None:
    iputils = module("iputils", connect_timeout=2, retry_interval=0.1).functions()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]  # bound, never listening: connects are refused
    try:
        assert await iputils["port_state"]({"target": "127.0.0.1", "port": open_port}) == {
            "state": "open"
        }
        assert await iputils["port_state"]({"target": "127.0.0.1", "port": closed_port}) == {
            "state": "closed"
        }
        started = time.monotonic()
        answer = await iputils["wait_for_port"](
            {"target": "127.0.0.1", "port": closed_port, "timeout": 0.5}
        )
        assert answer == {"state": "closed"}
        assert 0.5 <= time.monotonic() - started < 5

        async def open_later() -> None:
            await asyncio.sleep(0.3)
            closed.listen()

        opener = asyncio.create_task(open_later())
        answer = await iputils["wait_for_port"](
            {"target": "127.0.0.1", "port": closed_port, "timeout": 10}
        )
        await opener
        assert answer == {"state": "open"}
        with pytest.raises(TaskFailed, match="not a host name"):
            await iputils["port_state"]({"target": "-oProxy", "port": 22})
    finally:
        listener.close()
        closed.close()


async def test_ping_loopback() -> None:
    require_tools("ping")
    iputils = module("iputils").functions()
    answer = await iputils["ping"]({"target": "127.0.0.1", "count": 2})
    assert answer == {"result": 100.0}


async def test_simulated_machine() -> None:
    simulated = module("simulated", delay_scale=0.01).functions()
    machine = {"locator": "node1", "delay_seconds": 1, "fail_likelihood": 0}
    assert await simulated["power_state"]({"connection": machine}) == {"state": "off"}
    assert await simulated["set_power"]({"connection": machine, "state": "on"}) == {"state": "on"}
    assert await simulated["power_state"]({"connection": machine}) == {"state": "on"}
    flaky = dict(machine, fail_likelihood=100)
    with pytest.raises(TaskFailed) as failure:
        await simulated["power_state"]({"connection": flaky})
    assert failure.value.retryable


async def test_simulated_host_capacity_from_the_endpoint_or_the_options() -> None:
    simulated = module("simulated", host_cpus=4, host_memory_mb=2048).functions()
    read = simulated["host_capacity"]
    given = {"username": "", "password": "x"}
    assert await read({**given, "endpoint": "simulated://h1?cpus=16&disk_gb=9"}) == {
        "cpus": 16,
        "memory_mb": 2048,
        "disk_gb": 9,
    }
    assert await read({**given, "endpoint": ""}) == {"cpus": 4, "memory_mb": 2048, "disk_gb": 500}
    with pytest.raises(TaskFailed, match="unknown capacity 'gpus'"):
        await read({**given, "endpoint": "simulated://h1?gpus=2"})
    with pytest.raises(TaskFailed, match="cpus must be a whole number"):
        await read({**given, "endpoint": "simulated://h1?cpus=-2"})
    with pytest.raises(TaskFailed, match="parameter 'endpoint' is missing"):
        await read(given)


async def test_simulated_network_boot_runs_an_installer_that_powers_off() -> None:
    simulated = module("simulated", delay_scale=0.01, install_seconds=20).functions()
    machine = {"connection": {"locator": "node2"}}
    await simulated["set_boot_device"]({**machine, "device": "pxe"})
    assert await simulated["set_power"]({**machine, "state": "on"}) == {"state": "on"}
    assert await simulated["power_state"](machine) == {"state": "on"}  # installing
    await asyncio.sleep(0.3)  # 20 s scaled by 0.01
    assert await simulated["power_state"](machine) == {"state": "off"}
    # the network boot was for one boot only: from the disk the machine stays on
    assert await simulated["set_power"]({**machine, "state": "on"}) == {"state": "on"}
    await asyncio.sleep(0.3)
    assert await simulated["power_state"](machine) == {"state": "on"}
    with pytest.raises(ConfigError, match=r"modules\.simulated\.install_seconds"):
        module("simulated", install_seconds=-1)


async def test_simulated_interface_map_and_destroy() -> None:
    simulated = module("simulated", delay_scale=0).functions()
    machine = {"connection": {"locator": "node3"}}
    asked = {**machine, "physical_locations": ["eth0", "eth1"]}
    first = await simulated["get_interface_map"](asked)
    assert sorted(first["interface_map"]) == ["eth0", "eth1"]
    assert all(mac.startswith("02:") for mac in first["interface_map"].values())
    assert len(set(first["interface_map"].values())) == 2
    assert await simulated["get_interface_map"](asked) == first  # the same machine, same MACs
    other = await simulated["get_interface_map"]({**asked, "connection": {"locator": "node4"}})
    assert other != first
    with pytest.raises(TaskFailed, match="physical_locations"):
        await simulated["get_interface_map"]({**machine, "physical_locations": [1]})
    await simulated["set_power"]({**machine, "state": "on"})
    assert await simulated["destroy"](machine) == {"done": True}
    assert await simulated["power_state"](machine) == {"state": "off"}  # a new machine
