"""``docker``: containers for Contractor's ``docker`` foundations, through the Docker Engine
API (Docker itself, or podman's Docker-compatible service).

The client is plain httpx (already a core dependency): the Engine API is JSON over HTTP on a
unix socket or TCP, httpx speaks both natively and asynchronously, and the ``docker`` SDK
would add a blocking client (worker threads for every call) and ``requests`` for no gain.

Every foundation function takes ``connection {foundation, member, endpoint, username?,
password?}``: the foundation's locator, the member (the Docker host's structure) it is placed
on, and how to reach that member's engine: ``unix:///run/docker.sock``, ``tcp://host:2375``
or an ``http(s)://`` URL (empty: this module's ``endpoint`` option); ``username`` and
``password`` are HTTP basic auth, for an engine behind a proxy. The container's name is the
foundation's locator and it carries the label ``contractor.foundation=<locator>``, so a task
sent again finds the container it made.

* ``map_ports {ports [{port, protocol, host_port?}]}`` → ``{port_map {"80/tcp": 20080}}``:
  a host port for each container port, the given one or a free one from ``port_range``;
  a host port another container already publishes fails, naming that container.
* ``create {image, command?, environment?, port_map?, labels?}`` → ``{container_id, name,
  status, state, address, port_map}``: the container made (or found) and started.
* ``set_power {state: on | off}`` (off: stop with ``stop_timeout``, then kill) and
  ``power_state`` → ``{state: on | off, status, address, port_map}``.
* ``destroy`` → ``{state: removed}``: the container and its anonymous volumes removed, and
  every other container labelled for the foundation (nothing is left behind).
* ``unmap_ports {port_map}`` → ``{released}``: checks no container of the foundation still
  publishes them.
* ``host_capacity {endpoint, username?, password?}`` → ``{cpus, memory_mb, disk_gb}`` from
  ``/info`` (NCPU, MemTotal) and the size of the engine's root (podman's ``/libpod/info``,
  or the local file system holding ``DockerRootDir`` when the engine is on a unix socket).

An engine that does not answer fails retryable; a missing image, a port already published
and a malformed parameter fail for good, naming the foundation and the member. No image is
ever pulled: the member must hold it.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require

__all__ = ["DockerModule", "DockerOptions"]

LABEL = "contractor.foundation"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}\Z")
PORT_KEY = re.compile(r"(\d{1,5})/(tcp|udp|sctp)\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
IN_USE = ("address already in use", "port is already allocated", "already in use by")


class DockerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(
        default="unix:///var/run/docker.sock", description="For members that name none."
    )
    api_version: str = Field(default="1.41", pattern=r"^\d+\.\d+$")
    call_timeout: float = Field(default=30.0, gt=0, description="Connect and read, per call.")
    stop_timeout: int = Field(default=10, ge=0, le=3600, description="Before a stop kills.")
    port_range: tuple[int, int] = Field(default=(20000, 29999))
    network_mode: str | None = Field(default=None, description="None: the engine's default.")
    # podman on hosts that refuse the default limits needs lower ones (nofile, nproc)
    ulimits: dict[str, tuple[int, int]] = Field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    foundation: str
    member: str
    endpoint: str
    username: str
    password: str

    def where(self) -> str:
        if self.foundation:
            return f"foundation {self.foundation!r} on member {self.member!r}"
        return f"member {self.member!r}"


class DockerModule(Module):
    Options = DockerOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, DockerOptions)
        self.settings = options
        low, high = options.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError("port_range must be two ports, the first not above the second")

    def functions(self) -> Mapping[str, Function]:
        return {
            "create": self.create,
            "destroy": self.destroy,
            "set_power": self.set_power,
            "power_state": self.power_state,
            "map_ports": self.map_ports,
            "unmap_ports": self.unmap_ports,
            "host_capacity": self.host_capacity,
        }

    # -- reaching the engine -------------------------------------------------------------

    def _target(self, parameters: dict[str, Any]) -> _Target:
        connection = require(parameters, "connection", dict)
        locator = require(connection, "foundation", str)
        if not NAME.match(locator):
            raise TaskFailed(f"foundation {locator!r} is not a valid container name")
        member = connection.get("member", "")
        return self._reach(connection, locator, member if isinstance(member, str) else "")

    def _reach(self, holder: Mapping[str, Any], locator: str, member: str) -> _Target:
        endpoint = holder.get("endpoint") or self.settings.endpoint
        if not isinstance(endpoint, str):
            raise TaskFailed(f"member {member!r}: endpoint must be a string")
        username = holder.get("username") or ""
        password = holder.get("password") or ""
        if not isinstance(username, str) or not isinstance(password, str):
            raise TaskFailed(f"member {member!r}: username and password must be strings")
        target = _Target(locator, member or endpoint, endpoint, username, password)
        _base(target)  # a malformed endpoint fails now
        return target

    async def _request(
        self,
        target: _Target,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        wait: float | None = None,
        versioned: bool = True,
    ) -> httpx.Response:
        base, uds = _base(target)
        auth = httpx.BasicAuth(target.username, target.password) if target.username else None
        transport = httpx.AsyncHTTPTransport(uds=uds) if uds else None
        prefix = f"/v{self.settings.api_version}" if versioned else ""
        wait = wait if wait is not None else self.settings.call_timeout
        try:
            async with httpx.AsyncClient(
                base_url=base, transport=transport, auth=auth, timeout=wait
            ) as client:
                answer = await client.request(method, prefix + path, json=body, params=params)
        except httpx.HTTPError as error:
            raise TaskFailed(
                f"{target.where()}: the Docker engine at {_shown(target.endpoint)} does not "
                f"answer ({type(error).__name__})",
                retryable=True,
            ) from None
        if answer.status_code in (401, 403):
            raise TaskFailed(
                f"{target.where()}: the Docker engine refused the member's credentials"
            )
        if (
            answer.status_code >= 500
            and not _in_use(answer)
            and "no such" not in _message(answer).lower()
        ):
            raise TaskFailed(
                f"{target.where()}: the Docker engine failed {method} {path}: {_message(answer)}",
                retryable=True,
            )
        return answer

    async def _inspect(self, target: _Target, name_or_id: str) -> dict[str, Any] | None:
        answer = await self._request(target, "GET", f"/containers/{quote(name_or_id)}/json")
        if answer.status_code == 404:
            return None
        found = _json(target, answer, "inspect")
        if not isinstance(found, dict) or not isinstance(found.get("Id"), str):
            raise TaskFailed(f"{target.where()}: the Docker engine answered nonsense to inspect")
        return found

    async def _containers(self, target: _Target, label: str | None = None) -> list[dict[str, Any]]:
        params = {"all": "1"}
        if label is not None:
            params["filters"] = json.dumps({"label": [f"{LABEL}={label}"]})
        found = _json(
            target, await self._request(target, "GET", "/containers/json", params=params), "list"
        )
        if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
            raise TaskFailed(f"{target.where()}: the Docker engine answered nonsense to list")
        return found

    async def _published(self, target: _Target) -> dict[int, str]:
        """Host ports published by the engine's containers, with the container's name."""
        found: dict[int, str] = {}
        for summary in await self._containers(target):
            container = await self._inspect(target, summary["Id"])
            if container is None:
                continue
            bindings = (container.get("HostConfig") or {}).get("PortBindings") or {}
            name = str(container.get("Name", "")).lstrip("/")
            for binds in bindings.values():
                for bind in binds or []:
                    try:
                        found[int(bind.get("HostPort"))] = name
                    except (TypeError, ValueError):
                        continue
        return found

    # -- the functions -------------------------------------------------------------------

    async def map_ports(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        ports = require(parameters, "ports", list)
        published = await self._published(target)
        taken = {port for port, owner in published.items() if owner != target.foundation}
        low, high = self.settings.port_range
        port_map: dict[str, int] = {}
        for index, entry in enumerate(ports):
            key, host_port = _port_entry(target, index, entry)
            if key in port_map:
                raise TaskFailed(f"{target.where()}: container port {key} is listed twice")
            if host_port is not None:
                if host_port in taken:
                    raise TaskFailed(
                        f"{target.where()}: host port {host_port} is already published by "
                        f"container {published[host_port]!r}"
                    )
            else:
                free = [p for p in range(low, high + 1) if p not in taken]
                if not free:
                    raise TaskFailed(f"{target.where()}: no free host port in {low}-{high}")
                host_port = random.choice(free)
            taken.add(host_port)
            port_map[key] = host_port
        return {"port_map": port_map}

    async def unmap_ports(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        port_map = _port_map(target, parameters.get("port_map") or {})
        mine = await self._containers(target, target.foundation)
        if mine:
            raise TaskFailed(
                f"{target.where()}: container {target.foundation!r} still exists; destroy it "
                "before releasing its ports"
            )
        return {"released": sorted(port_map.values())}

    async def create(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        image = require(parameters, "image", str)
        if not image or any(c.isspace() for c in image):
            raise TaskFailed(f"{target.where()}: image {image!r} is not an image name")
        port_map = _port_map(target, parameters.get("port_map") or {})
        container = await self._inspect(target, target.foundation)
        if container is None:
            body = self._create_body(target, parameters, image, port_map)
            answer = await self._request(
                target, "POST", "/containers/create", body=body, params={"name": target.foundation}
            )
            if answer.status_code == 404:
                raise TaskFailed(
                    f"{target.where()}: image {image!r} is not on the member (images are "
                    "never pulled: load it there first)"
                )
            if answer.status_code not in (200, 201) and not _in_use(answer):
                raise TaskFailed(
                    f"{target.where()}: the Docker engine refused the container: {_message(answer)}"
                )
            # made now, or by the same task a moment ago (a name in use): look it up
            container = await self._inspect(target, target.foundation)
            if container is None:
                raise TaskFailed(
                    f"{target.where()}: the container was created but cannot be found",
                    retryable=True,
                )
        labels = (container.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL) != target.foundation:
            raise TaskFailed(
                f"{target.where()}: a container named {target.foundation!r} exists that "
                "Contractor did not make; remove or rename it"
            )
        container = await self._start(target, container)
        return {"name": target.foundation, **_report(container)}

    def _create_body(
        self, target: _Target, parameters: dict[str, Any], image: str, port_map: dict[str, int]
    ) -> dict[str, Any]:
        command = parameters.get("command")
        if command is not None and (
            not isinstance(command, list) or not all(isinstance(c, str) for c in command)
        ):
            raise TaskFailed(f"{target.where()}: command must be a list of strings")
        environment = parameters.get("environment") or {}
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, str | int | float)
            for k, v in environment.items()
        ):
            raise TaskFailed(f"{target.where()}: environment must map variable names to values")
        labels = parameters.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise TaskFailed(f"{target.where()}: labels must map names to strings")
        host: dict[str, Any] = {
            "PortBindings": {
                key: [{"HostIp": "", "HostPort": str(port)}] for key, port in port_map.items()
            },
        }
        if self.settings.network_mode is not None:
            host["NetworkMode"] = self.settings.network_mode
        if self.settings.ulimits:
            host["Ulimits"] = [
                {"Name": name, "Soft": soft, "Hard": hard}
                for name, (soft, hard) in self.settings.ulimits.items()
            ]
        body: dict[str, Any] = {
            "Image": image,
            "Env": [f"{k}={v}" for k, v in environment.items()],
            "Labels": {**labels, LABEL: target.foundation},
            "ExposedPorts": {key: {} for key in port_map},
            "HostConfig": host,
        }
        if command is not None:
            body["Cmd"] = command
        return body

    async def _start(self, target: _Target, container: dict[str, Any]) -> dict[str, Any]:
        if _running(container):
            return container
        answer = await self._request(target, "POST", f"/containers/{container['Id']}/start")
        if _in_use(answer):
            raise TaskFailed(
                f"{target.where()}: a host port of the container is already published: "
                f"{_message(answer)}"
            )
        if answer.status_code not in (204, 304):
            raise TaskFailed(f"{target.where()}: the container does not start: {_message(answer)}")
        return await self._must_inspect(target, container["Id"])

    async def _must_inspect(self, target: _Target, name_or_id: str) -> dict[str, Any]:
        container = await self._inspect(target, name_or_id)
        if container is None:
            raise TaskFailed(f"{target.where()}: the member has no container {name_or_id!r}")
        return container

    async def _stop(self, target: _Target, container: dict[str, Any]) -> dict[str, Any]:
        wait = self.settings.stop_timeout
        if _running(container):
            await self._request(
                target,
                "POST",
                f"/containers/{container['Id']}/stop",
                params={"t": str(wait)},
                wait=self.settings.call_timeout + wait,
            )
            container = await self._must_inspect(target, container["Id"])
        if _running(container):  # it outlived the stop: kill it
            await self._request(target, "POST", f"/containers/{container['Id']}/kill")
            container = await self._must_inspect(target, container["Id"])
        if _running(container):
            raise TaskFailed(f"{target.where()}: the container still runs after a kill")
        return container

    def _wanted(self, target: _Target, parameters: dict[str, Any]) -> str:
        connection = parameters["connection"]
        wanted = connection.get("container_id") or target.foundation
        if not isinstance(wanted, str) or not (
            CONTAINER_ID.match(wanted) or wanted == target.foundation
        ):
            raise TaskFailed(f"{target.where()}: {wanted!r} is not a container id")
        return wanted

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        want = require(parameters, "state", str)
        if want not in ("on", "off", "soft_off"):
            raise TaskFailed(f"{target.where()}: power state {want!r} is not on or off")
        container = await self._must_inspect(target, self._wanted(target, parameters))
        if want == "on":
            container = await self._start(target, container)
        else:
            container = await self._stop(target, container)
        return _report(container)

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        container = await self._must_inspect(target, self._wanted(target, parameters))
        return _report(container)

    async def destroy(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        wanted = {self._wanted(target, parameters)}
        wanted.update(c["Id"] for c in await self._containers(target, target.foundation))
        removed = []
        for name_or_id in sorted(wanted):
            container = await self._inspect(target, name_or_id)
            if container is None:
                continue
            if (container.get("Config") or {}).get("Labels", {}).get(LABEL) != target.foundation:
                raise TaskFailed(
                    f"{target.where()}: container {name_or_id!r} is not the foundation's; "
                    "it is left alone"
                )
            if _running(container):
                container = await self._stop(target, container)
            answer = await self._request(
                target,
                "DELETE",
                f"/containers/{container['Id']}",
                params={"force": "1", "v": "1"},
            )
            if answer.status_code not in (200, 204, 404):
                raise TaskFailed(
                    f"{target.where()}: the container is not removed: {_message(answer)}"
                )
            removed.append(container["Id"])
        left = await self._containers(target, target.foundation)
        if left:
            raise TaskFailed(
                f"{target.where()}: {len(left)} container(s) of the foundation remain",
                retryable=True,
            )
        return {"state": "removed", "removed": removed}

    async def host_capacity(self, parameters: dict[str, Any]) -> dict[str, Any]:
        member = parameters.get("member") or parameters.get("structure") or ""
        target = self._reach(parameters, "", member if isinstance(member, str) else "")
        info = _json(target, await self._request(target, "GET", "/info"), "info")
        try:
            cpus, memory = int(info["NCPU"]), int(info["MemTotal"])
            root = str(info.get("DockerRootDir") or "")
        except (KeyError, TypeError, ValueError):
            raise TaskFailed(f"{target.where()}: /info has no NCPU or MemTotal") from None
        disk = await self._disk_bytes(target, root)
        return {"cpus": cpus, "memory_mb": memory // 2**20, "disk_gb": disk // 2**30}

    async def _disk_bytes(self, target: _Target, root: str) -> int:
        answer = await self._request(target, "GET", "/v4.0.0/libpod/info", versioned=False)
        if answer.status_code == 200:
            found = _json(target, answer, "info")
            store = found.get("store") if isinstance(found, dict) else None
            if isinstance(store, dict) and isinstance(store.get("graphRootAllocated"), int):
                return int(store["graphRootAllocated"])
        if _base(target)[1] and root:
            try:
                stat = os.statvfs(root)
            except OSError:
                pass
            else:
                return stat.f_frsize * stat.f_blocks
        raise TaskFailed(
            f"{target.where()}: the engine does not tell the size of its root "
            f"({root or 'unknown'}); set the member's capacity by hand"
        )


def _base(target: _Target) -> tuple[str, str | None]:
    """The base URL and unix socket path of the member's engine."""
    endpoint = target.endpoint
    parts = urlsplit(endpoint)
    if parts.scheme == "unix" and parts.path.startswith("/") and not parts.netloc:
        return "http://docker", parts.path
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        return f"http://{parts.netloc}", None
    if parts.scheme in ("http", "https") and parts.hostname:
        return endpoint.rstrip("/"), None
    raise TaskFailed(
        f"{target.where()}: endpoint {_shown(endpoint)!r} is not unix:///path, tcp://host:port "
        "or an http(s) URL"
    )


def _shown(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.password or parts.username:  # credentials in a URL never reach a message
        return endpoint.replace(parts.netloc, parts.hostname or "", 1)
    return endpoint


def _json(target: _Target, answer: httpx.Response, what: str) -> Any:
    try:
        return answer.json()
    except ValueError:
        raise TaskFailed(
            f"{target.where()}: the Docker engine answered {what} with no JSON "
            f"(HTTP {answer.status_code})"
        ) from None


def _message(answer: httpx.Response) -> str:
    try:
        found = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(found, dict) and isinstance(found.get("message"), str):
        return str(found["message"])[:300]
    return f"HTTP {answer.status_code}"


def _in_use(answer: httpx.Response) -> bool:
    return answer.status_code >= 400 and any(
        marker in _message(answer).lower() for marker in IN_USE
    )


def _running(container: dict[str, Any]) -> bool:
    return bool((container.get("State") or {}).get("Running"))


def _port_entry(target: _Target, index: int, entry: Any) -> tuple[str, int | None]:
    if not isinstance(entry, dict):
        raise TaskFailed(f"{target.where()}: ports[{index}] must be an object")
    port, protocol = entry.get("port"), entry.get("protocol", "tcp")
    host_port = entry.get("host_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TaskFailed(f"{target.where()}: ports[{index}].port must be 1 to 65535")
    if protocol not in ("tcp", "udp", "sctp"):
        raise TaskFailed(f"{target.where()}: ports[{index}].protocol must be tcp, udp or sctp")
    if host_port is not None and (
        isinstance(host_port, bool) or not isinstance(host_port, int) or not 1 <= host_port <= 65535
    ):
        raise TaskFailed(f"{target.where()}: ports[{index}].host_port must be 1 to 65535")
    return f"{port}/{protocol}", host_port


def _port_map(target: _Target, found: Any) -> dict[str, int]:
    if not isinstance(found, dict) or not all(
        isinstance(k, str)
        and PORT_KEY.match(k)
        and isinstance(v, int)
        and not isinstance(v, bool)
        and 1 <= v <= 65535
        for k, v in found.items()
    ):
        raise TaskFailed(f"{target.where()}: port_map must map '<port>/<protocol>' to host ports")
    return dict(found)


def _report(container: dict[str, Any]) -> dict[str, Any]:
    """What a container's answer says of it: its id, power, status, address and ports."""
    state = container.get("State") or {}
    settings = container.get("NetworkSettings") or {}
    address = settings.get("IPAddress") or None
    for network in (settings.get("Networks") or {}).values():
        if address:
            break
        if isinstance(network, dict):
            address = network.get("IPAddress") or None
    bindings = (container.get("HostConfig") or {}).get("PortBindings") or {}
    port_map: dict[str, int] = {}
    for key, binds in bindings.items():
        for bind in binds or []:
            try:
                port_map[key] = int(bind.get("HostPort"))
            except (TypeError, ValueError):
                continue
    return {
        "container_id": container["Id"],
        "state": "on" if state.get("Running") else "off",
        "status": str(state.get("Status") or "unknown"),
        "address": address if isinstance(address, str) else None,
        "port_map": port_map,
    }
