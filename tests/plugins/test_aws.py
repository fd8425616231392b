"""The ``aws`` foundation type's own rules: its fields, the instance shape from config
values, the credentials' pairing and the answers it takes; every refusal names the
foundation (or the field) and what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.errors import InvalidInput
from contractor.plugins import JobAccess, find_foundation_type
from contractor.plugins.aws import (
    AwsFoundation,
    AwsFoundationType,
    client_token,
    instance_shape,
)

PLUGIN = AwsFoundationType()
SHAPE = {"awsec2_image_id": "ami-12c6146b", "awsec2_subnet_id": "subnet-0123abcd"}


def test_the_original_spelling_finds_the_type() -> None:
    assert find_foundation_type("AWS") is find_foundation_type("aws")
    assert PLUGIN.secret_fields == ("access_key_id", "secret_access_key")
    assert not set(PLUGIN.settable_fields) & set(PLUGIN.secret_fields)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"region": "US East"}, "region", "region must be an AWS region name like us-east-1"),
        ({"endpoint_url": "ftp://ec2"}, "endpoint_url", "endpoint_url must be an http:// or"),
        ({"instance_id": "i-xyz"}, "instance_id", "instance_id must be an EC2 instance id"),
        ({"access_key_id": "lower-case"}, "access_key_id", "access_key_id must be an AWS"),
        ({"public_ip_address": "1.2.3"}, "public_ip_address", "must be an IP address"),
        ({"secret_access_key": 7}, "secret_access_key", "secret_access_key must be a string"),
        ({"zone": "a"}, "zone", "foundation type 'aws' has no field 'zone'"),
    ],
)
def test_bad_fields_name_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        PLUGIN.validate_fields(fields)
    assert refused.value.field == field
    assert message in refused.value.message


def test_a_script_may_not_set_the_credentials() -> None:
    with pytest.raises(InvalidInput, match="secret and cannot be set by a script"):
        PLUGIN.validate_setting("secret_access_key", "x")
    assert PLUGIN.validate_setting("region", "eu-west-1") == "eu-west-1"
    with pytest.raises(InvalidInput, match="does not let scripts set 'endpoint_url'"):
        PLUGIN.validate_setting("endpoint_url", "http://elsewhere.test")


def test_the_shape_from_config_values() -> None:
    shape = instance_shape(
        "web1",
        {
            **SHAPE,
            "awsec2_type": "m5.large",
            "awsec2_security_group_ids": ["sg-0123abcd"],
            "awsec2_key_name": "ops",
            "awsec2_tags": {"team": "web"},
            "awsec2_iam_instance_profile": "arn:aws:iam::123456789012:instance-profile/web",
            "awsec2_public_ip": True,
        },
    )
    assert shape == {
        "image_id": "ami-12c6146b",
        "instance_type": "m5.large",
        "subnet_id": "subnet-0123abcd",
        "security_group_ids": ["sg-0123abcd"],
        "pair_name": "ops",
        "tags": {"Name": "web1", "team": "web"},
        "iam_instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/web",
        "associate_public_ip": True,
    }
    assert instance_shape("web1", {"awsec2_image_id": "ami-12c6146b"})["instance_type"] == (
        "t3.micro"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "foundation 'web1': config value awsec2_image_id is not set"),
        ({"awsec2_image_id": "centos"}, "config value awsec2_image_id must be an AMI id"),
        (
            {**SHAPE, "awsec2_iam_instance_profile": "arn:aws:iam::12:role/web"},
            "foundation 'web1': config value awsec2_iam_instance_profile must be an instance "
            "profile ARN",
        ),
        ({**SHAPE, "awsec2_subnet_id": "10.0.0.0/24"}, "awsec2_subnet_id must be a subnet id"),
        ({**SHAPE, "awsec2_security_group_ids": "sg-1"}, "awsec2_security_group_ids must be"),
        ({**SHAPE, "awsec2_security_group_ids": ["web"]}, "must be security group ids"),
        ({**SHAPE, "awsec2_tags": {"team": 7}}, "awsec2_tags must map tag names to strings"),
        ({**SHAPE, "awsec2_type": "huge"}, "awsec2_type must be an instance type"),
        ({**SHAPE, "awsec2_public_ip": "yes"}, "awsec2_public_ip must be true or false"),
    ],
)
def test_a_bad_shape_names_the_foundation_and_the_value(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="foundation 'web1'") as refused:
        instance_shape("web1", config)
    assert message in str(refused.value)


def _foundation(**fields: Any) -> AwsFoundation:
    return AwsFoundation(id=7, locator="web1", type="aws", **fields)


def _create_call(foundation: AwsFoundation, config: dict[str, Any]) -> Any:
    recorded: dict[str, Any] = {}
    access = JobAccess(job_id=12, config=config, interface_names=["eth0"], record=recorded.update)
    _, call = PLUGIN.job_functions(foundation, access)["create"]()
    return call, recorded


def test_create_sends_a_token_of_the_foundation_and_the_job() -> None:
    call, recorded = _create_call(
        _foundation(region="eu-west-1", access_key_id="AKIAEXAMPLE0000001", secret_access_key="s"),
        SHAPE,
    )
    call.setup({})
    function, parameters = call.to_subcontractor()
    assert function == "create"
    assert parameters["client_token"] == client_token(7, 12) == "contractor-7-12"
    assert parameters["connection"] == {
        "foundation": "web1",
        "region": "eu-west-1",
        "access_key_id": "AKIAEXAMPLE0000001",
        "secret_access_key": "s",
    }
    assert parameters["interface_names"] == ["eth0"]
    answer = {
        "instance_id": "i-0123456789abcdef0",
        "state": "running",
        "interface_list": [{"name": "eth0", "mac": "02:00:00:00:00:01"}],
        "ip_address_map": {"eth0": "10.77.1.4"},
        "public_ip_address_map": {"eth0": "54.1.2.3"},
    }
    call.from_subcontractor(answer)
    assert call.value == answer
    assert recorded == {"instance_id": "i-0123456789abcdef0", "public_ip_address": "54.1.2.3"}


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"instance_id": "web1"}, "instance_id"),
        ({"instance_id": "i-0123456789abcdef0", "interface_list": "eth0"}, "interface_list"),
        (
            {
                "instance_id": "i-0123456789abcdef0",
                "interface_list": [],
                "ip_address_map": {"eth0": "not-an-ip"},
            },
            "ip_address_map",
        ),
    ],
)
def test_a_nonsense_answer_is_refused_naming_the_field(answer: dict[str, Any], field: str) -> None:
    call, recorded = _create_call(_foundation(region="eu-west-1"), SHAPE)
    call.setup({})
    call.to_subcontractor()
    with pytest.raises(ValueError, match=f"foundation 'web1': the answer's {field} is"):
        call.from_subcontractor(answer)
    assert recorded == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"access_key_id": "AKIAEXAMPLE0000001"}, "foundation 'web1': secret_access_key is not"),
        ({"secret_access_key": "s"}, "foundation 'web1': access_key_id is not set"),
    ],
)
def test_half_the_credentials_is_refused_before_any_task(
    fields: dict[str, Any], message: str
) -> None:
    call, _ = _create_call(_foundation(region="eu-west-1", **fields), SHAPE)
    with pytest.raises(ValueError, match=message):
        call.setup({})


def test_power_needs_an_instance() -> None:
    access = JobAccess(job_id=1)
    _, call = PLUGIN.job_functions(_foundation(region="eu-west-1"), access)["power_on"]()
    with pytest.raises(ValueError, match="foundation 'web1' has no instance_id: create its"):
        call.setup({})
    functions = PLUGIN.job_functions(_foundation(), access)
    assert "set_boot_device" not in functions
    assert {"create", "destroy", "power_on", "power_off", "power_state"} <= set(functions)
