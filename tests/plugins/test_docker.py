"""The ``docker`` foundation type's own rules: its fields (every refusal names the field),
the container's shape from its fields or the config values, the member it reaches (the
password only inside the task), the answers it takes and what it records."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.errors import InvalidInput
from contractor.plugins import JobAccess, find_foundation_type
from contractor.plugins.docker import DockerFoundation, DockerFoundationType, container_shape
from contractor.services.placement import Demand, MemberAccess

PLUGIN = DockerFoundationType()
MEMBER = MemberAccess(
    complex="dock",
    complex_type="docker",
    structure="dockhost1",
    endpoint="tcp://127.0.0.1:2375",
    username="ops",
    password="s3cret-pw",
)
CID = "ab" * 32


def test_the_original_spelling_finds_the_type() -> None:
    assert find_foundation_type("Docker") is find_foundation_type("docker")
    assert PLUGIN.complex_type == "docker"
    assert PLUGIN.class_list == ("Container", "Docker")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"image": "Has Space"}, "image", "image must be an image name"),
        ({"command": "sleep 1"}, "command", "command must be a non-empty list of strings"),
        ({"command": []}, "command", "command must be a non-empty list"),
        ({"environment": {"1X": "a"}}, "environment", "environment must be an object"),
        ({"environment": {"X": 1}}, "environment", "environment must be an object"),
        ({"ports": [{"port": 0}]}, "ports", "ports must be a list of {port"),
        ({"ports": [{"port": 80, "protocol": "icmp"}]}, "ports", "ports must be a list"),
        ({"ports": [{"port": 80, "extra": 1}]}, "ports", "ports must be a list"),
        ({"ports": [{"port": 80}, {"port": 80}]}, "ports", "lists container port 80/tcp twice"),
        ({"port_map": {"80": 8080}}, "port_map", "port_map must be an object"),
        ({"container_id": "xyz"}, "container_id", "container_id must be a container id"),
        ({"cpus": -1}, "cpus", "cpus must be a whole number"),
        ({"complex": 7}, "complex", "complex must be a name"),
        ({"zone": "a"}, "zone", "foundation type 'docker' has no field 'zone'"),
    ],
)
def test_bad_fields_name_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        PLUGIN.validate_fields(fields)
    assert refused.value.field == field
    assert message in refused.value.message


def test_good_fields_and_the_demand() -> None:
    checked = PLUGIN.validate_fields(
        {
            "complex": "dock",
            "image": "localhost/web:1",
            "command": ["httpd", "-f"],
            "environment": {"MODE": "prod"},
            "ports": [{"port": 80}, {"port": 53, "protocol": "udp", "host_port": 5353}],
            "cpus": 2,
        }
    )
    assert checked["ports"] == [
        {"port": 80, "protocol": "tcp"},
        {"port": 53, "protocol": "udp", "host_port": 5353},
    ]
    foundation = DockerFoundation(locator="web1-c", type="docker")
    assert PLUGIN.demand(foundation, checked) == Demand(cpus=2, memory_mb=256, disk_gb=1)
    assert PLUGIN.demand(foundation, {}) == Demand(cpus=1, memory_mb=256, disk_gb=1)
    assert set(PLUGIN.placement_fields) == {"complex", "member", "cpus", "memory_mb", "disk_gb"}
    assert PLUGIN.validate_setting("image", "localhost/web:2") == "localhost/web:2"
    with pytest.raises(InvalidInput, match="does not let scripts set 'container_id'"):
        PLUGIN.validate_setting("container_id", CID)


def _foundation(**fields: Any) -> DockerFoundation:
    found = {"environment": {}, "ports": [], "port_map": {}, **fields}
    return DockerFoundation(id=7, locator="web1-c", type="docker", site_id=3, **found)


def test_the_shape_from_fields_else_config_values() -> None:
    config = {
        "docker_image": "localhost/from-config:1",
        "docker_command": ["sleep", "60"],
        "docker_environment_map": {"A": "b"},
        "docker_port_list": [{"port": 8080}],
    }
    assert container_shape(_foundation(), config) == {
        "image": "localhost/from-config:1",
        "command": ["sleep", "60"],
        "environment": {"A": "b"},
        "ports": [{"port": 8080, "protocol": "tcp"}],
    }
    own = _foundation(image="localhost/own:2", environment={"C": "d"})
    shape = container_shape(own, config)
    assert shape["image"] == "localhost/own:2"
    assert shape["environment"] == {"C": "d"}
    with pytest.raises(ValueError, match="foundation 'web1-c': no image"):
        container_shape(_foundation(), {})
    with pytest.raises(ValueError, match="config value docker_port_list must be a list"):
        container_shape(_foundation(image="localhost/x:1"), {"docker_port_list": "80"})


def _functions(
    foundation: DockerFoundation, member: MemberAccess | None = MEMBER
) -> tuple[Any, dict[str, Any]]:
    recorded: dict[str, Any] = {}
    access = JobAccess(
        job_id=12,
        config={"docker_image": "localhost/web:1"},
        interface_names=["eth0"],
        record=recorded.update,
        member=member,
    )
    return PLUGIN.job_functions(foundation, access), recorded


def test_create_reaches_the_member_and_records_the_container() -> None:
    functions, recorded = _functions(_foundation(port_map={"80/tcp": 20080}))
    assert set(functions) == {
        "create",
        "destroy",
        "power_on",
        "power_off",
        "power_state",
        "wait_for_poweroff",
        "state",
        "map_ports",
        "unmap_ports",
    }
    _, call = functions["create"]()
    call.setup({})
    function, parameters = call.to_subcontractor()
    assert function == "create"
    assert parameters == {
        "connection": {
            "foundation": "web1-c",
            "member": "dockhost1",
            "endpoint": "tcp://127.0.0.1:2375",
            "username": "ops",
            "password": "s3cret-pw",
        },
        "image": "localhost/web:1",
        "environment": {},
        "port_map": {"80/tcp": 20080},
        "labels": {"contractor.site": "3"},
    }
    answer = {
        "container_id": CID,
        "state": "on",
        "status": "running",
        "address": "10.88.0.5",
        "port_map": {"80/tcp": 20080},
    }
    call.from_subcontractor(answer)
    assert call.value["ip_address_map"] == {"eth0": "10.88.0.5"}
    assert recorded == {"container_id": CID, "port_map": {"80/tcp": 20080}}
    with pytest.raises(ValueError, match="container_id is malformed"):
        call.from_subcontractor({**answer, "container_id": "nope"})
    with pytest.raises(ValueError, match="port_map must be"):
        call.from_subcontractor({**answer, "port_map": {"80": 1}})


def test_a_foundation_not_placed_cannot_send_tasks() -> None:
    functions, _ = _functions(_foundation(), member=None)
    _, call = functions["create"]()
    with pytest.raises(ValueError, match="'web1-c' is not placed on a member of a Docker"):
        call.setup({})


def test_power_state_destroy_and_ports() -> None:
    functions, recorded = _functions(_foundation(container_id=CID, port_map={"80/tcp": 20080}))
    _, power = functions["power_off"]()
    power.setup({})
    function, parameters = power.to_subcontractor()
    assert (function, parameters["state"]) == ("set_power", "off")
    assert parameters["connection"]["container_id"] == CID
    _, state = functions["state"]()
    state.setup({})
    state.from_subcontractor({"state": "off", "status": "exited"})
    assert state.value == "exited"
    _, destroy = functions["destroy"]()
    destroy.setup({})
    assert destroy.to_subcontractor()[1]["connection"]["container_id"] == CID
    with pytest.raises(ValueError, match="state is not removed"):
        destroy.from_subcontractor({"state": "running"})
    destroy.from_subcontractor({"state": "removed"})
    assert destroy.value == {"state": "removed", "ip_address_map": {"eth0": None}}
    assert recorded == {"container_id": None}
    _, unmap = functions["unmap_ports"]()
    unmap.setup({})
    assert unmap.to_subcontractor()[1]["port_map"] == {"80/tcp": 20080}
    unmap.from_subcontractor({"released": [20080]})
    assert recorded["port_map"] == {}
    _, mapped = functions["map_ports"]()
    mapped.setup({})
    assert mapped.to_subcontractor()[1]["ports"] == []
    mapped.from_subcontractor({"port_map": {"8080/tcp": 20001}})
    assert mapped.value == {"8080/tcp": 20001}
    assert recorded["port_map"] == {"8080/tcp": 20001}


def test_without_a_container_the_power_functions_refuse() -> None:
    functions, _ = _functions(_foundation())
    _, call = functions["power_on"]()
    with pytest.raises(ValueError, match="has no container_id: create its container first"):
        call.setup({})
