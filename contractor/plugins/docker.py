"""The ``docker`` foundation type (``Docker`` in the original's resource files): one container
on a member of a Docker Complex, run by the subcontractor's ``docker`` module through that
member's Docker Engine API.

The container's shape is the foundation's own fields, each falling back to a config value of
the original's name when unset: ``image`` (``docker_image``), ``command``
(``docker_command``, a list of strings), ``environment`` (``docker_environment_map``) and
``ports`` (``docker_port_list``: ``[{port, protocol?, host_port?}]``). It is created with
``complex`` (a Docker Complex; ``member`` pins it to one of its hosts) and ``cpus``,
``memory_mb`` and ``disk_gb``, what placement reserves for it on the member (1 CPU, 256 MiB
and 1 GiB unless given); its tasks reach the member's engine with the member's endpoint and
credentials.

``foundation.map_ports()`` asks the member for a host port for each of ``ports`` (the given
``host_port`` or a free one) and records them as ``port_map`` (``{"80/tcp": 20080}``);
``foundation.create()`` makes and starts the container, named by the foundation's locator
(so a task sent again finds it), and records its id; its value is ``{container_id, state,
status, address, port_map, ip_address_map}`` for ``set_ip_addresses( ip_address_map=... )``.
``destroy()`` removes it and forgets the id (its value's ``ip_address_map`` releases the
address); ``unmap_ports()`` then releases the port map. ``power_on``, ``power_off`` (stop,
then kill after the module's timeout), ``power_state``, ``wait_for_poweroff`` and
``state()`` (the engine's status: ``running``, ``exited``, ...) act on the container.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall, answer_field, power_functions
from contractor.models.base import OrderedJSON, key_of
from contractor.models.building import Foundation
from contractor.plugins import JobAccess
from contractor.plugins.connections import member_connection, with_recorded_id
from contractor.plugins.hosted import HostedFoundationType
from contractor.services.placement import Demand, check_demand
from tscript import ExternalFunction, FunctionFactory

__all__ = ["DockerFoundation", "DockerFoundationType", "container_shape"]

MODULE = "docker"
IMAGE = re.compile(r"[a-z0-9][a-z0-9._\-/:@]{0,254}\Z")
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PORT_KEY = re.compile(r"(\d{1,5})/(tcp|udp|sctp)\Z")
# what placement reserves on the member unless the creation says otherwise
DEMAND_DEFAULTS = {"cpus": 1, "memory_mb": 256, "disk_gb": 1}


class DockerFoundation(Foundation):
    __tablename__ = "docker_foundation"

    id: Mapped[int] = key_of("foundation")
    image: Mapped[str | None] = mapped_column(String(255))
    command: Mapped[list[str] | None] = mapped_column(OrderedJSON)
    environment: Mapped[dict[str, str]] = mapped_column(OrderedJSON, default=dict)
    ports: Mapped[list[dict[str, Any]]] = mapped_column(OrderedJSON, default=list)
    container_id: Mapped[str | None] = mapped_column(String(64))
    port_map: Mapped[dict[str, int]] = mapped_column(OrderedJSON, default=dict)

    __mapper_args__ = {"polymorphic_identity": "docker"}


def _wrong(name: str, what: str, value: Any) -> InvalidInput:
    return InvalidInput(f"{name} must be {what}, got {value!r}", field=name)


def check_image(name: str, value: Any) -> str:
    if not isinstance(value, str) or not IMAGE.match(value):
        raise _wrong(name, "an image name like localhost/app:1 (lower case, no spaces)", value)
    return value


def check_command(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise _wrong(name, "a non-empty list of strings", value)
    return list(value)


def check_environment(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, str) for k, v in value.items()
    ):
        raise _wrong(name, "an object of variable names to strings", value)
    return dict(value)


def check_ports(name: str, value: Any) -> list[dict[str, Any]]:
    what = "a list of {port, protocol (tcp, udp, sctp), host_port} objects, ports 1 to 65535"
    if not isinstance(value, list):
        raise _wrong(name, what, value)
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"port", "protocol", "host_port"}:
            raise _wrong(name, what, value)
        port, protocol = entry.get("port"), entry.get("protocol", "tcp")
        host = entry.get("host_port")
        if not _port(port) or protocol not in ("tcp", "udp", "sctp"):
            raise _wrong(name, what, value)
        if host is not None and not _port(host):
            raise _wrong(name, what, value)
        key = f"{port}/{protocol}"
        if key in seen:
            raise InvalidInput(f"{name} lists container port {key} twice", field=name)
        seen.add(key)
        checked.append(
            {"port": port, "protocol": protocol, **({"host_port": host} if host else {})}
        )
    return checked


def check_port_map(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and PORT_KEY.match(k) and _port(v) for k, v in value.items()
    ):
        raise _wrong(name, 'an object of "<port>/<protocol>" to host ports', value)
    return dict(value)


def _answered_port_map(locator: str, value: Any) -> dict[str, int]:
    """An answer's port map, checked (a malformed answer is refused, naming the foundation)."""
    try:
        return check_port_map("port_map", value)
    except InvalidInput as error:
        raise ValueError(f"foundation {locator!r}: the answer's {error.message}") from None


def _port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


class DockerFoundationType(HostedFoundationType):
    name = "docker"
    model = DockerFoundation
    class_list = ("Container", "Docker")
    description = "a container on a member of a Docker Complex"
    fields = (
        "image",
        "command",
        "environment",
        "ports",
        "container_id",
        "port_map",
        *DEMAND_DEFAULTS,
    )
    settable_fields = ("image", "command", "environment", "ports")
    complex_type = "docker"
    # the demand is kept in the placement, not on the row
    placement_fields = (*HostedFoundationType.placement_fields, *DEMAND_DEFAULTS)

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        checks: dict[str, Callable[[str, Any], Any]] = {
            "image": check_image,
            "command": check_command,
            "environment": check_environment,
            "ports": check_ports,
            "port_map": check_port_map,
        }
        for name, check in checks.items():
            if checked.get(name) is not None:
                checked[name] = check(name, checked[name])
        check_demand({k: v for k, v in checked.items() if k in DEMAND_DEFAULTS})
        found = checked.get("container_id")
        if found is not None and (not isinstance(found, str) or not CONTAINER_ID.match(found)):
            raise _wrong("container_id", "a container id (12 to 64 hex digits)", found)
        for name in ("environment", "ports", "port_map"):
            if name in checked and checked[name] is None:
                checked[name] = {} if name != "ports" else []
        return checked

    def demand(self, foundation: Foundation, values: Mapping[str, Any]) -> Demand:
        return check_demand(
            {**DEMAND_DEFAULTS, **{k: v for k, v in values.items() if k in DEMAND_DEFAULTS}}
        )

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, DockerFoundation)
        return {
            "_docker_id": foundation.container_id,
            "_docker_port_map": dict(foundation.port_map or {}),
        }

    def tscript_values(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, DockerFoundation)
        return {
            "container_id": foundation.container_id,
            "port_map": dict(foundation.port_map or {}),
        }

    def job_functions(
        self, foundation: Foundation, job: JobAccess
    ) -> Mapping[str, FunctionFactory]:
        assert isinstance(foundation, DockerFoundation)
        connection = member_connection(foundation, job, "Docker")
        with_container = with_recorded_id(connection, foundation, "container_id", "container")

        functions = power_functions(MODULE, with_container, soft_off=False)
        del functions["set_boot_device"]  # a container runs its image
        names = list(job.interface_names)
        functions.update(
            {
                "create": _create(foundation, job, connection),
                "destroy": _destroy(foundation, job, connection, names),
                "state": _call(
                    "power_state", "container state", with_container, answer_field("status", str)
                ),
                "map_ports": _map_ports(foundation, job, connection),
                "unmap_ports": _unmap_ports(foundation, job, connection),
            }
        )
        return functions


def container_shape(foundation: DockerFoundation, config: Mapping[str, Any]) -> dict[str, Any]:
    """The container's image, command and environment: the foundation's fields, else its
    config values; ``ValueError`` names the foundation and the value."""
    locator = foundation.locator

    def pick(field: str, value_name: str, check: Callable[[str, Any], Any]) -> Any:
        value = getattr(foundation, field)
        if value in (None, {}, []) and config.get(value_name) is not None:
            try:
                return check(value_name, config[value_name])
            except InvalidInput as error:
                raise ValueError(f"foundation {locator!r}: config value {error.message}") from None
        return value

    image = pick("image", "docker_image", check_image)
    if not image:
        raise ValueError(
            f"foundation {locator!r}: no image (set its image field or the config value "
            "docker_image)"
        )
    shape: dict[str, Any] = {
        "image": image,
        "environment": pick("environment", "docker_environment_map", check_environment) or {},
        "ports": pick("ports", "docker_port_list", check_ports) or [],
    }
    command = pick("command", "docker_command", check_command)
    if command:
        shape["command"] = command
    return shape


def _call(
    function: str,
    label: str,
    parameters: Callable[[], dict[str, Any]],
    value: Callable[[dict[str, Any]], Any],
) -> FunctionFactory:
    def factory() -> tuple[str, ExternalFunction]:
        return (
            MODULE,
            RemoteCall(function, lambda _: {"connection": parameters()}, label=label, value=value),
        )

    return factory


def _create(
    foundation: DockerFoundation, job: JobAccess, connection: Callable[[], dict[str, Any]]
) -> FunctionFactory:
    locator, names = foundation.locator, list(job.interface_names) or ["eth0"]

    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        shape = container_shape(foundation, job.config)
        del shape["ports"]
        return {
            "connection": connection(),
            **shape,
            "port_map": dict(foundation.port_map or {}),
            "labels": {"contractor.site": str(foundation.site_id)},
        }

    def value(result: dict[str, Any]) -> dict[str, Any]:
        container_id = result.get("container_id")
        if not isinstance(container_id, str) or not CONTAINER_ID.match(container_id):
            raise ValueError(f"foundation {locator!r}: the answer's container_id is malformed")
        address = result.get("address")
        if address is not None and not isinstance(address, str):
            raise ValueError(f"foundation {locator!r}: the answer's address is malformed")
        port_map = _answered_port_map(locator, result.get("port_map", {}))
        job.record({"container_id": container_id, "port_map": port_map})
        return {
            "container_id": container_id,
            "state": result.get("state"),
            "status": result.get("status"),
            "address": address,
            "port_map": port_map,
            "ip_address_map": {names[0]: address} if address else {},
        }

    def factory() -> tuple[str, ExternalFunction]:
        return (MODULE, RemoteCall("create", parameters, label="create container", value=value))

    return factory


def _destroy(
    foundation: DockerFoundation,
    job: JobAccess,
    connection: Callable[[], dict[str, Any]],
    names: list[str],
) -> FunctionFactory:
    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        found = connection()
        if foundation.container_id:
            found["container_id"] = foundation.container_id
        return {"connection": found}

    def value(result: dict[str, Any]) -> dict[str, Any]:
        if result.get("state") != "removed":
            raise ValueError(
                f"foundation {foundation.locator!r}: the answer's state is not removed"
            )
        job.record({"container_id": None})
        return {"state": "removed", "ip_address_map": dict.fromkeys(names)}

    def factory() -> tuple[str, ExternalFunction]:
        return (
            MODULE,
            RemoteCall("destroy", parameters, label="remove container", value=value),
        )

    return factory


def _map_ports(
    foundation: DockerFoundation, job: JobAccess, connection: Callable[[], dict[str, Any]]
) -> FunctionFactory:
    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        ports = container_shape(foundation, job.config)["ports"]
        return {"connection": connection(), "ports": ports}

    def value(result: dict[str, Any]) -> dict[str, int]:
        port_map = _answered_port_map(foundation.locator, result.get("port_map"))
        job.record({"port_map": port_map})
        return port_map

    def factory() -> tuple[str, ExternalFunction]:
        return (MODULE, RemoteCall("map_ports", parameters, label="map ports", value=value))

    return factory


def _unmap_ports(
    foundation: DockerFoundation, job: JobAccess, connection: Callable[[], dict[str, Any]]
) -> FunctionFactory:
    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        return {"connection": connection(), "port_map": dict(foundation.port_map or {})}

    def value(result: dict[str, Any]) -> bool:
        if not isinstance(result.get("released"), list):
            raise ValueError(f"foundation {foundation.locator!r}: the answer has no released list")
        job.record({"port_map": {}})
        return True

    def factory() -> tuple[str, ExternalFunction]:
        return (MODULE, RemoteCall("unmap_ports", parameters, label="unmap ports", value=value))

    return factory
