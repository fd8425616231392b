"""The subcontractor's ``docker`` module against a real ``podman system service`` (its Docker
Engine API on a unix socket, tests/subcontractor/podman.py): create idempotent by name,
published ports reachable, start and stop (a container that ignores SIGTERM is killed after
the timeout), state, destroy leaving nothing, port maps, the host's capacity, and the error
paths: an engine that does not answer, an image the member lacks, a port already published,
a container of that name Contractor did not make, malformed parameters."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subcontractor.module import TaskFailed
from subcontractor.modules.docker import DockerModule, DockerOptions
from tests.subcontractor.podman import IMAGE, ULIMITS, Engine, podman_service

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with podman_service() as found:
        yield found


@pytest.fixture(autouse=True)
def empty(engine: Engine) -> Iterator[None]:
    yield
    engine.podman("rm", "--all", "--force", "--time", "0")


def module(**options: Any) -> DockerModule:
    settings = DockerOptions(ulimits=ULIMITS, stop_timeout=2, **options)
    return DockerModule("docker", settings, concurrency=2)


def connection(engine: Engine, locator: str, **extra: Any) -> dict[str, Any]:
    return {"foundation": locator, "member": "dockhost1", "endpoint": engine.endpoint, **extra}


def httpd(engine: Engine, locator: str, port_map: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "connection": connection(engine, locator),
        "image": IMAGE,
        "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
        "environment": {"GREETING": "hello", "WORKERS": 2},
        "labels": {"team": "web"},
        "port_map": port_map or {},
    }


async def failure(call: Any, parameters: dict[str, Any]) -> TaskFailed:
    with pytest.raises(TaskFailed) as failed:
        await call(parameters)
    return failed.value


async def test_create_is_idempotent_by_name_and_publishes_its_ports(engine: Engine) -> None:
    docker = module(port_range=(30000, 30999))
    mapped = await docker.map_ports(
        {"connection": connection(engine, "web1-c"), "ports": [{"port": 8080}]}
    )
    [(key, host_port)] = mapped["port_map"].items()
    assert key == "8080/tcp"
    assert 30000 <= host_port <= 30999
    first = await docker.create(httpd(engine, "web1-c", mapped["port_map"]))
    again = await docker.create(httpd(engine, "web1-c", mapped["port_map"]))
    assert again == first  # a task sent again finds the container it made
    assert engine.containers() == ["web1-c"]
    assert first["name"] == "web1-c"
    assert first["state"] == "on"
    assert first["status"] == "running"
    assert first["port_map"] == {"8080/tcp": host_port}
    assert first["address"]
    assert first["address"].startswith("10.88.")
    inspected = engine.podman("inspect", "web1-c", "--format", "{{json .Config.Labels}}")
    assert '"contractor.foundation":"web1-c"' in inspected.stdout
    assert '"team":"web"' in inspected.stdout
    env = engine.podman("inspect", "web1-c", "--format", "{{json .Config.Env}}").stdout
    assert "GREETING=hello" in env
    assert "WORKERS=2" in env
    # the published port answers (inside the engine's network namespace)
    fetched = engine.in_netns(
        "/bin/busybox", "wget", "-qO-", f"http://127.0.0.1:{host_port}/index.html"
    )
    assert fetched.stdout == "hello from the container\n", fetched.stderr


async def test_two_creates_at_once_make_one_container(engine: Engine) -> None:
    docker = module()
    first, second = await asyncio.gather(
        docker.create(httpd(engine, "twin-c")), docker.create(httpd(engine, "twin-c"))
    )
    assert first["container_id"] == second["container_id"]
    assert engine.containers() == ["twin-c"]
    assert (await docker.power_state({"connection": connection(engine, "twin-c")}))["state"] == (
        "on"
    )


async def test_a_port_already_published_is_refused_naming_its_container(engine: Engine) -> None:
    docker = module()
    first = await docker.create(httpd(engine, "web1-c", {"8080/tcp": 31001}))
    assert first["state"] == "on"
    # map_ports refuses a fixed host port another container publishes, and skips it when free
    taken = await failure(
        docker.map_ports,
        {"connection": connection(engine, "web2-c"), "ports": [{"port": 80, "host_port": 31001}]},
    )
    assert "foundation 'web2-c' on member 'dockhost1'" in taken.message
    assert "host port 31001 is already published by container 'web1-c'" in taken.message
    only = await module(port_range=(31000, 31001)).map_ports(
        {"connection": connection(engine, "web2-c"), "ports": [{"port": 80}]}
    )
    assert only == {"port_map": {"80/tcp": 31000}}
    # a create with a port map made elsewhere: the engine refuses the start
    clash = await failure(docker.create, httpd(engine, "web2-c", {"8080/tcp": 31001}))
    assert "foundation 'web2-c' on member 'dockhost1'" in clash.message
    assert "already published" in clash.message
    assert not clash.retryable
    # the container is made but not running; destroy removes it and leaves the first alone
    state = await docker.power_state({"connection": connection(engine, "web2-c")})
    assert state["state"] == "off"
    assert (await docker.destroy({"connection": connection(engine, "web2-c")}))["state"] == (
        "removed"
    )
    assert engine.containers() == ["web1-c"]


async def test_an_image_the_member_lacks_leaves_nothing(engine: Engine) -> None:
    task = {**httpd(engine, "web3-c"), "image": "localhost/no-such-image:1"}
    failed = await failure(module().create, task)
    assert "foundation 'web3-c' on member 'dockhost1'" in failed.message
    assert "image 'localhost/no-such-image:1' is not on the member" in failed.message
    assert not failed.retryable
    assert engine.containers() == []


async def test_stop_kills_after_the_timeout_and_start_again(engine: Engine) -> None:
    docker = module()
    task = {**httpd(engine, "sleeper-c"), "command": ["/bin/busybox", "sleep", "600"]}
    created = await docker.create(task)
    assert created["state"] == "on"
    given = {"connection": connection(engine, "sleeper-c", container_id=created["container_id"])}
    started = time.monotonic()
    # sleep as PID 1 ignores SIGTERM: the engine kills it after stop_timeout (2 s)
    stopped = await docker.set_power({**given, "state": "off"})
    assert 1.5 < time.monotonic() - started < 30
    assert stopped["state"] == "off"
    assert stopped["status"] == "exited"
    assert (await docker.power_state(given))["state"] == "off"
    assert (await docker.set_power({**given, "state": "off"}))["state"] == "off"
    assert (await docker.set_power({**given, "state": "on"}))["state"] == "on"
    assert (await docker.power_state(given))["status"] == "running"
    bad = await failure(docker.set_power, {**given, "state": "sideways"})
    assert "power state 'sideways'" in bad.message


async def test_destroy_removes_everything_and_ports_are_released_after(engine: Engine) -> None:
    docker = module()
    created = await docker.create(httpd(engine, "web4-c", {"8080/tcp": 31100}))
    given = {"connection": connection(engine, "web4-c", container_id=created["container_id"])}
    unmap = {**given, "port_map": {"8080/tcp": 31100}}
    held = await failure(docker.unmap_ports, unmap)
    assert "container 'web4-c' still exists" in held.message
    gone = await docker.destroy(given)
    assert gone == {"state": "removed", "removed": [created["container_id"]]}
    assert engine.containers() == []
    assert (await docker.destroy(given))["state"] == "removed"  # again: nothing to do
    assert await docker.unmap_ports(unmap) == {"released": [31100]}
    missing = await failure(docker.power_state, given)
    assert "the member has no container" in missing.message


async def test_a_container_contractor_did_not_make_is_left_alone(engine: Engine) -> None:
    made = engine.podman("create", "--name", "web5-c", IMAGE, "/bin/busybox", "sleep", "1")
    assert made.returncode == 0, made.stderr
    failed = await failure(module().create, httpd(engine, "web5-c"))
    assert "a container named 'web5-c' exists that Contractor did not make" in failed.message
    refused = await failure(module().destroy, {"connection": connection(engine, "web5-c")})
    assert "is not the foundation's" in refused.message
    assert engine.containers() == ["web5-c"]


async def test_an_engine_that_does_not_answer_is_retryable(engine: Engine) -> None:
    dead = {"foundation": "web6-c", "member": "dockhost2", "endpoint": "unix:///nonexistent.sock"}
    failed = await failure(module().create, {**httpd(engine, "web6-c"), "connection": dead})
    assert "foundation 'web6-c' on member 'dockhost2'" in failed.message
    assert "does not answer" in failed.message
    assert failed.retryable
    capacity = await failure(
        module().host_capacity, {"endpoint": "unix:///nonexistent.sock", "member": "dockhost2"}
    )
    assert "member 'dockhost2'" in capacity.message
    assert capacity.retryable


async def test_host_capacity_from_the_engine(engine: Engine) -> None:
    found = await module().host_capacity(
        {"endpoint": engine.endpoint, "username": "", "password": ""}
    )
    assert found["cpus"] == os.cpu_count()
    total_kb = int(Path("/proc/meminfo").read_text().split()[1])  # noqa: ASYNC240
    assert found["memory_mb"] == total_kb // 1024
    disk = os.statvfs(engine.directory)
    assert found["disk_gb"] == disk.f_frsize * disk.f_blocks // 2**30


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"image": "has space"}, "is not an image name"),
        ({"command": "sleep 1"}, "command must be a list of strings"),
        ({"environment": {"1BAD": "x"}}, "environment must map variable names"),
        ({"labels": {"a": 1}}, "labels must map names to strings"),
        ({"port_map": {"8080": 1}}, "port_map must map '<port>/<protocol>'"),
        ({"port_map": {"8080/tcp": 70000}}, "port_map must map"),
        ({"connection": {"foundation": "bad name"}}, "is not a valid container name"),
        ({"connection": {"foundation": "x", "endpoint": "ftp://h"}}, "is not unix:///path"),
    ],
)
async def test_malformed_parameters_fail_for_good_and_make_nothing(
    engine: Engine, change: dict[str, Any], says: str
) -> None:
    failed = await failure(module().create, {**httpd(engine, "web7-c"), **change})
    assert says in failed.message
    assert not failed.retryable
    assert engine.containers() == []


async def test_map_ports_checks_its_entries(engine: Engine) -> None:
    given = {"connection": connection(engine, "web8-c")}
    for ports, says in [
        ([{"port": 0}], "ports[0].port must be 1 to 65535"),
        ([{"port": 80, "protocol": "icmp"}], "ports[0].protocol must be tcp, udp or sctp"),
        ([{"port": 80}, {"port": 80}], "container port 80/tcp is listed twice"),
        (["80"], "ports[0] must be an object"),
    ]:
        failed = await failure(module().map_ports, {**given, "ports": ports})
        assert says in failed.message
        assert "foundation 'web8-c' on member 'dockhost1'" in failed.message
