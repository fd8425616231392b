"""The ``redfish`` foundation type on Contractor's side: its name in any case, its fields'
checks (each naming the field), and the tasks its TScript functions send (the password only
inside the task, never in the saved runner state)."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall
from contractor.plugins import canonical_foundation_type, foundation_types, get_foundation_type
from contractor.plugins.redfish import RedfishFoundation, RedfishFoundationType
from tests.subcontractor.redfish_bmc import make_tls
from tscript import ParameterError


@pytest.mark.parametrize("name", ["RedFish", "redfish", "REDFISH"])
def test_the_type_in_any_case(name: str) -> None:
    assert isinstance(get_foundation_type(name), RedfishFoundationType)
    assert canonical_foundation_type(name, field="type") == "redfish"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bmc_address", "https://10.0.0.5", "bmc_address must be a host name or IP address"),
        ("bmc_address", 5, "bmc_address must be a string"),
        ("bmc_port", 0, "bmc_port must be 1 to 65535"),
        ("bmc_port", True, "bmc_port must be 1 to 65535"),
        ("system_id", "../Managers", "system_id must be a Redfish resource id"),
        ("verify_tls", "yes", "verify_tls must be true or false"),
        ("ca_bundle", "not a certificate", "ca_bundle must be PEM certificates"),
        ("username", "u" * 65, "username is longer than 64 characters"),
        ("password", None, "password must be a string"),
        ("bmc_user", "x", "foundation type 'redfish' has no field 'bmc_user'"),
    ],
)
def test_bad_fields_name_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        foundation_types()["redfish"].validate_fields({field: value})
    assert bad.value.field == field
    assert message in bad.value.message


def test_good_fields(tmp_path: Any) -> None:
    ca = make_tls(tmp_path).ca
    checked = foundation_types()["redfish"].validate_fields(
        {
            "bmc_address": "bmc-7.example.net",
            "bmc_port": 8443,
            "system_id": "",
            "ca_bundle": ca,
            "verify_tls": True,
        }
    )
    assert checked["system_id"] is None  # found by the subcontractor
    assert checked["ca_bundle"] == ca
    assert foundation_types()["redfish"].validate_fields({"bmc_address": "fd00::5"})
    with pytest.raises(InvalidInput, match="cannot be set by a script"):
        foundation_types()["redfish"].validate_setting("password", "x")


def machine(**fields: Any) -> RedfishFoundation:
    values: dict[str, Any] = {
        "locator": "rf1",
        "type": "redfish",
        "bmc_address": "10.0.0.5",
        "bmc_port": 443,
        "username": "admin",
        "password": "the-bmc-pw",
        "system_id": None,
        "verify_tls": True,
        "ca_bundle": None,
    }
    values.update(fields)
    return RedfishFoundation(**values)


def call(name: str, foundation: RedfishFoundation, **parameters: Any) -> RemoteCall:
    module, handler = foundation_types()["redfish"].tscript_functions(foundation)[name]()
    assert module == "redfish"
    assert isinstance(handler, RemoteCall)
    handler.setup(parameters)
    return handler


def test_functions_send_their_tasks_with_the_connection() -> None:
    foundation = machine()
    functions = foundation_types()["redfish"].tscript_functions(foundation)
    assert set(functions) >= {
        "power_on",
        "power_off",
        "power_state",
        "wait_for_poweroff",
        "set_boot_device",
        "insert_media",
        "eject_media",
        "link_test",
    }
    boot = call("set_boot_device", foundation, device="PXE", continuous=True)
    function, parameters = boot.to_subcontractor() or ("", {})
    assert function == "set_boot_device"
    assert (parameters["device"], parameters["continuous"]) == ("pxe", True)
    assert parameters["connection"] == {
        "host": "10.0.0.5",
        "port": 443,
        "username": "admin",
        "password": "the-bmc-pw",
        "system_id": None,
        "verify": True,
        "ca_bundle": None,
    }
    assert "the-bmc-pw" not in str(boot.to_json())  # the saved state has no password
    media = call("insert_media", foundation, url="http://10.0.0.1/boot.iso")
    assert media.to_subcontractor() is not None
    media.from_subcontractor({"inserted": True, "image": "http://10.0.0.1/boot.iso"})
    assert media.value == "http://10.0.0.1/boot.iso"
    # power_off: gracefully twice, then forced
    off = call("power_off", foundation)
    states = []
    for _ in range(3):
        sent = off.to_subcontractor()
        assert sent is not None
        states.append(sent[1]["state"])
        off.from_subcontractor({"state": "on"})
        off.retry_at = 0
    assert states == ["soft_off", "soft_off", "off"]


@pytest.mark.parametrize(
    ("name", "parameters", "field"),
    [
        ("set_boot_device", {"device": "floppy"}, "device"),
        ("set_boot_device", {"device": "pxe", "continuous": "yes"}, "continuous"),
        ("insert_media", {"url": "ftp://10.0.0.1/x.iso"}, "url"),
        ("insert_media", {"url": "http://user:pw@10.0.0.1/x.iso"}, "url"),
        ("insert_media", {}, "url"),
    ],
)
def test_bad_parameters_are_refused_at_the_call(
    name: str, parameters: dict[str, Any], field: str
) -> None:
    with pytest.raises(ParameterError) as bad:
        call(name, machine(), **parameters)
    assert bad.value.name == field


def test_no_bmc_address_is_an_error_naming_the_foundation() -> None:
    with pytest.raises(ValueError, match="foundation 'rf1' has no bmc_address"):
        call("power_state", machine(bmc_address=None))
