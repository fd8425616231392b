"""The subcontractor's ``aws`` module against a real ``moto_server`` (through the throttling
proxy of tests/subcontractor/ec2.py): a launch whose answers are throttled and lost still
makes one instance, the power functions, and every bad input failing for good with the
foundation and the field named and no credential in the message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subcontractor.module import TaskFailed
from tests.subcontractor.ec2 import (
    KEY_ID,
    REGION,
    SECRET,
    Ec2Proxy,
    Network,
    ec2_proxy,
    instances,
    make_network,
    moto_server,
    require_moto,
)

require_moto()

from subcontractor.modules.aws import AwsModule, AwsOptions  # noqa: E402 (needs boto3)


@pytest.fixture
def ec2(tmp_path: Path) -> Iterator[tuple[str, Ec2Proxy, Network]]:
    with moto_server(tmp_path) as url, ec2_proxy(url) as proxy:
        yield url, proxy, make_network(url)


def module(**options: Any) -> AwsModule:
    settings = AwsOptions(backoff=0.01, confirm_interval=0.05, **options)
    return AwsModule("aws", settings, concurrency=2)


def connection(proxy: Ec2Proxy, **changes: Any) -> dict[str, Any]:
    found = {
        "foundation": "web1",
        "region": REGION,
        "endpoint_url": proxy.url,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def create_task(proxy: Ec2Proxy, network: Network, **changes: Any) -> dict[str, Any]:
    return {
        "connection": connection(proxy, **changes),
        "client_token": "contractor-1-1",
        "instance": {
            "image_id": "ami-12c6146b",
            "instance_type": "t3.micro",
            "subnet_id": network.subnet_id,
            "security_group_ids": [network.group_id],
            "tags": {"Name": "web1"},
            "associate_public_ip": True,
        },
        "interface_names": ["eth0"],
    }


async def failure(call: Any, parameters: dict[str, Any]) -> TaskFailed:
    with pytest.raises(TaskFailed) as failed:
        await call(parameters)
    assert SECRET not in failed.value.message
    assert KEY_ID not in failed.value.message
    return failed.value


async def test_a_throttled_and_lost_launch_makes_one_instance(
    ec2: tuple[str, Ec2Proxy, Network],
) -> None:
    url, proxy, network = ec2
    aws = module()
    proxy.throttle.update({"RunInstances": 2, "DescribeInstances": 1})
    proxy.drop["RunInstances"] = 1  # moto launches, the answer is lost
    created = await aws.create(create_task(proxy, network))
    assert proxy.seen["RunInstances"] == 3
    [instance] = instances(url)
    [eni] = instance["NetworkInterfaces"]
    assert created == {
        "instance_id": instance["InstanceId"],
        "state": "running",
        "interface_list": [{"name": "eth0", "mac": eni["MacAddress"]}],
        "ip_address_map": {"eth0": eni["PrivateIpAddress"]},
        "public_ip_address_map": {"eth0": eni["Association"]["PublicIp"]},
    }
    assert await aws.create(create_task(proxy, network)) == created  # sent again: the same
    assert len(instances(url)) == 1
    power = {"connection": connection(proxy, instance_id=instance["InstanceId"])}
    assert await aws.set_power({**power, "state": "off"}) == {"state": "off"}
    assert await aws.power_state(power) == {"state": "off"}
    assert await aws.set_power({**power, "state": "on"}) == {"state": "on"}
    gone = await aws.destroy(power)
    assert gone == {"instance_id": instance["InstanceId"], "state": "terminated"}
    assert await aws.destroy(power) == gone  # destroying again changes nothing
    assert instances(url)[0]["State"]["Name"] == "terminated"


async def test_throttled_past_the_attempts_is_retryable(
    ec2: tuple[str, Ec2Proxy, Network],
) -> None:
    url, proxy, network = ec2
    proxy.throttle["DescribeInstances"] = 10
    failed = await failure(module(attempts=3).create, create_task(proxy, network))
    assert failed.retryable
    assert "foundation 'web1' (endpoint): EC2 RunInstances failed 3 times" in failed.message
    assert "RequestLimitExceeded" in failed.message
    assert instances(url) == []


async def test_a_nonsense_answer_fails_naming_the_foundation(
    ec2: tuple[str, Ec2Proxy, Network],
) -> None:
    url, proxy, network = ec2
    proxy.nonsense["DescribeInstances"] = 1
    failed = await failure(module().create, create_task(proxy, network))
    assert not failed.retryable
    assert failed.message.startswith("foundation 'web1' (endpoint): ")
    assert instances(url) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"region": "xx-nowhere-9"}, "foundation 'web1' (region): 'xx-nowhere-9' is not an EC2"),
        ({"endpoint_url": "ec2.local"}, "foundation 'web1' (endpoint_url): not an http(s) URL"),
        (
            {"secret_access_key": None},
            "foundation 'web1' (access_key_id, secret_access_key): give both or neither",
        ),
    ],
)
async def test_bad_connections_fail_for_good(
    ec2: tuple[str, Ec2Proxy, Network], changes: dict[str, Any], message: str
) -> None:
    _, proxy, network = ec2
    failed = await failure(module().create, create_task(proxy, network, **changes))
    assert not failed.retryable
    assert failed.message == message or failed.message.startswith(message)


async def test_no_credentials_anywhere(
    ec2: tuple[str, Ec2Proxy, Network], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, proxy, network = ec2
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    task = create_task(proxy, network, access_key_id=None, secret_access_key=None)
    failed = await failure(module().create, task)
    assert failed.message == (
        "foundation 'web1' (access_key_id, secret_access_key): no AWS credentials (set them on "
        "the foundation, or give the subcontractor its own)"
    )
    refused = await failure(module(ambient_credentials=False).create, task)
    assert "this subcontractor uses none of its own (modules.aws.ambient_credentials)" in (
        refused.message
    )
    assert proxy.seen == {}


async def test_bad_instances_and_shapes_name_the_field(
    ec2: tuple[str, Ec2Proxy, Network],
) -> None:
    url, proxy, network = ec2
    aws = module()
    failed = await failure(aws.power_state, {"connection": connection(proxy, instance_id="web1")})
    assert failed.message == "foundation 'web1' (instance_id): 'web1' is not an instance id"
    missing = await failure(
        aws.power_state, {"connection": connection(proxy, instance_id="i-0123456789abcdef0")}
    )
    assert "foundation 'web1' (instance_id): EC2 knows no instance i-0123456789abcdef0" in (
        missing.message
    )
    task = create_task(proxy, network)
    task["instance"]["subnet_id"] = "subnet-00000000000000000"
    wrong = await failure(aws.create, task)
    assert wrong.message.startswith("foundation 'web1' (awsec2_subnet_id): EC2 RunInstances: ")
    assert instances(url) == []


def test_without_the_extra_the_module_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from subcontractor.config import ConfigError
    from subcontractor.module import load_modules

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    monkeypatch.delitem(sys.modules, "subcontractor.modules.aws")
    with pytest.raises(ConfigError) as refused:
        load_modules({"aws": 1}, {})
    assert str(refused.value).startswith("modules.aws: cannot be loaded (")
    assert "pip install 'contractor[aws]'" in str(refused.value)
