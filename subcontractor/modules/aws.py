"""``aws``: EC2 instances for Contractor's ``AWS`` foundations, with boto3.

Every function takes ``connection {foundation, region?, endpoint_url?, access_key_id?,
secret_access_key?, instance_id}`` (no ``instance_id`` for ``create``). The region and
endpoint default to this module's options; with no credentials the subcontractor's own are
used (its environment, profile or instance profile) unless ``ambient_credentials`` is off.


* ``create {client_token, instance {image_id, instance_type, subnet_id?,
  security_group_ids, pair_name?, tags, iam_instance_profile_arn?, associate_public_ip?},
  interface_names}`` → ``{instance_id, state, interface_list [{name, mac}], ip_address_map
  {name: private IP}, public_ip_address_map {name: public IP}}`` once the instance runs. The
  instance is launched with the client token as ``ClientToken`` and as the tag
  ``contractor:client-token``; before every launch attempt the instances carrying that tag
  are looked up, so a task sent again (its answer lost, this subcontractor killed) finds the
  instance it launched before instead of starting a second one (EC2 itself honours the
  token too; moto does not, hence the look-up).
* ``set_power {state: on | off}`` → ``{state}`` once the instance has started or
  stopped; ``power_state`` → ``{state: on | off | pending | stopping | ...}``.
* ``destroy`` → ``{instance_id, state: terminated}`` (an instance EC2 no longer
  knows counts as terminated).

Each EC2 call is retried with exponential back-off and jitter on throttling, 5xx answers and
broken connections (``attempts`` in all, botocore's own retries off, so a retried launch
always looks up first); then the task fails retryable. Refused credentials, an unknown
region, malformed parameters and an answer that makes no sense fail for good, naming the
foundation and the field. Credentials never reach a message or a log line.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require

__all__ = ["AwsModule", "AwsOptions"]

T = TypeVar("T")

THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
}
CREDENTIALS = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "UnauthorizedOperation",
    "OptInRequired",
}
TOKEN_TAG = "contractor:client-token"
FOUNDATION_TAG = "contractor:foundation"
POWER = {"running": "on", "stopped": "off"}
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}\Z")
TOKEN = re.compile(r"[\x21-\x7e]{1,64}\Z")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
URL = re.compile(r"https?://\S+\Z")


class AwsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = Field(default=None, description="For foundations that name none.")
    endpoint_url: str | None = Field(default=None, description="EC2's URL (a VPC endpoint).")
    ambient_credentials: bool = Field(
        default=True, description="Use this host's credentials for foundations that give none."
    )
    attempts: int = Field(default=6, ge=1, le=20, description="Tries of one EC2 call.")
    backoff: float = Field(default=0.5, gt=0, description="The first wait between tries.")
    backoff_max: float = Field(default=20.0, gt=0)
    confirm_timeout: float = Field(default=300.0, gt=0, description="For a state to show.")
    confirm_interval: float = Field(default=2.0, gt=0)
    call_timeout: float = Field(default=30.0, gt=0, description="Connect and read, per call.")


@dataclass(frozen=True)
class _Target:
    foundation: str
    region: str
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None

    def where(self, field: str) -> str:
        return f"foundation {self.foundation!r} ({field})"


class _Transient(Exception):
    """An EC2 call worth trying again."""


@functools.cache
def _regions() -> frozenset[str]:
    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition_name=partition)
    )


class AwsModule(Module):
    Options = AwsOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, AwsOptions)
        self.settings = options
        self.limiter = anyio.CapacityLimiter(concurrency)
        self._clients: dict[_Target, Any] = {}
        # botocore's debug lines carry request headers: never in this process's log
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def functions(self) -> Mapping[str, Function]:
        return {
            "create": self.create,
            "destroy": self.destroy,
            "set_power": self.set_power,
            "power_state": self.power_state,
        }

    # -- reaching EC2 ------------------------------------------------------------------

    def _target(self, parameters: dict[str, Any]) -> _Target:
        connection = require(parameters, "connection", dict)
        locator = require(connection, "foundation", str)
        region = connection.get("region", self.settings.region)
        if region is None:
            raise TaskFailed(
                f"foundation {locator!r} (region): no region is set (set the foundation's "
                "region, the config value awsec2_region or modules.aws.region)"
            )
        if not isinstance(region, str) or region not in _regions():
            raise TaskFailed(f"foundation {locator!r} (region): {region!r} is not an EC2 region")
        endpoint = connection.get("endpoint_url", self.settings.endpoint_url)
        if endpoint is not None and (not isinstance(endpoint, str) or not URL.match(endpoint)):
            raise TaskFailed(f"foundation {locator!r} (endpoint_url): not an http(s) URL")
        key_id, secret = connection.get("access_key_id"), connection.get("secret_access_key")
        if (key_id is None) != (secret is None) or not all(
            isinstance(v, str | None) for v in (key_id, secret)
        ):
            raise TaskFailed(
                f"foundation {locator!r} (access_key_id, secret_access_key): give both or neither"
            )
        if key_id is None and not self.settings.ambient_credentials:
            raise TaskFailed(
                f"foundation {locator!r} (access_key_id, secret_access_key): no credentials are "
                "set, and this subcontractor uses none of its own (modules.aws.ambient_credentials)"
            )
        return _Target(locator, region, endpoint, key_id, secret)

    def _client(self, target: _Target) -> Any:
        client = self._clients.get(target)
        if client is None:
            session = boto3.session.Session(
                aws_access_key_id=target.access_key_id,
                aws_secret_access_key=target.secret_access_key,
                region_name=target.region,
            )
            timeout = self.settings.call_timeout
            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
            )
            client = session.client("ec2", endpoint_url=target.endpoint_url, config=config)
            self._clients[target] = client
        return client

    async def _call(self, target: _Target, action: str, work: Callable[[Any], T]) -> T:
        """``work(client)`` in a worker thread, tried again on throttling and transient
        errors with exponential back-off; any other failure is a ``TaskFailed``."""
        client = self._client(target)
        wait = self.settings.backoff
        for attempt in range(1, self.settings.attempts + 1):
            try:
                return await anyio.to_thread.run_sync(
                    lambda: _translated(target, action, lambda: work(client)),
                    limiter=self.limiter,
                )
            except _Transient as error:
                if attempt == self.settings.attempts:
                    raise TaskFailed(
                        f"{target.where('endpoint')}: EC2 {action} failed {attempt} times, "
                        f"the last: {error}",
                        retryable=True,
                    ) from None
            await anyio.sleep(random.uniform(wait / 2, wait))  # jitter
            wait = min(wait * 2, self.settings.backoff_max)
        raise AssertionError("unreachable")

    async def _describe(self, target: _Target, instance_id: str) -> dict[str, Any] | None:
        def work(client: Any) -> Any:
            try:
                return client.describe_instances(InstanceIds=[instance_id])
            except ClientError as error:
                if _code(error) == "InvalidInstanceID.NotFound":
                    return {"Reservations": []}
                raise

        answer = await self._call(target, "DescribeInstances", work)
        found = _instances(target, answer)
        return found[0] if found else None

    async def _settle(
        self, target: _Target, instance_id: str, wanted: str, *, gone_is: str | None = None
    ) -> dict[str, Any]:
        """The instance once its state is ``wanted`` (confirm_timeout at most)."""
        deadline = anyio.current_time() + self.settings.confirm_timeout
        while True:
            instance = await self._describe(target, instance_id)
            if instance is None:
                if gone_is == wanted:
                    return {"InstanceId": instance_id, "State": {"Name": wanted}}
                raise TaskFailed(
                    f"{target.where('instance_id')}: EC2 knows no instance {instance_id}"
                )
            state = _state(target, instance)
            if state == wanted:
                return instance
            if anyio.current_time() > deadline:
                raise TaskFailed(
                    f"{target.where('instance_id')}: instance {instance_id} is {state}, not "
                    f"{wanted}, after {self.settings.confirm_timeout:g} s",
                    retryable=True,
                )
            await anyio.sleep(self.settings.confirm_interval)

    # -- the functions -------------------------------------------------------------------

    async def create(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        token = require(parameters, "client_token", str)
        if not TOKEN.match(token):
            raise TaskFailed(f"{target.where('client_token')}: not 1 to 64 ASCII characters")
        shape = _launch_request(target, require(parameters, "instance", dict), token)
        names = require(parameters, "interface_names", list)
        instance_id = await self._launch(target, token, shape)
        instance = await self._settle(target, instance_id, "running")
        return _created(target, instance, names)

    async def _launch(self, target: _Target, token: str, request: dict[str, Any]) -> str:
        """The id of the instance launched with ``token``: the one found by its tag, or a new
        one. Each try looks first, so a launch whose answer was lost is found, not repeated."""

        def work(client: Any) -> str:
            answer = client.describe_instances(
                Filters=[
                    {"Name": f"tag:{TOKEN_TAG}", "Values": [token]},
                    {
                        "Name": "instance-state-name",
                        "Values": ["pending", "running", "stopping", "stopped"],
                    },
                ]
            )
            found = _instances(target, answer)
            if found:
                return _instance_id(target, found[0])
            launched = client.run_instances(**request)
            instances = launched.get("Instances") if isinstance(launched, dict) else None
            if not isinstance(instances, list) or len(instances) != 1:
                raise TaskFailed(
                    f"{target.where('instance_id')}: RunInstances answered no instance"
                )
            return _instance_id(target, instances[0])

        return await self._call(target, "RunInstances", work)

    async def destroy(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        instance_id = _wanted_instance(target, parameters)

        def work(client: Any) -> None:
            try:
                client.terminate_instances(InstanceIds=[instance_id])
            except ClientError as error:
                if _code(error) != "InvalidInstanceID.NotFound":
                    raise

        await self._call(target, "TerminateInstances", work)
        await self._settle(target, instance_id, "terminated", gone_is="terminated")
        return {"instance_id": instance_id, "state": "terminated"}

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        instance_id = _wanted_instance(target, parameters)
        want = require(parameters, "state", str)
        if want not in ("on", "off"):
            raise TaskFailed(f"{target.where('state')}: power state {want!r} is not on or off")
        if want == "on":
            await self._call(
                target, "StartInstances", lambda c: c.start_instances(InstanceIds=[instance_id])
            )
            await self._settle(target, instance_id, "running")
        else:
            await self._call(
                target, "StopInstances", lambda c: c.stop_instances(InstanceIds=[instance_id])
            )
            await self._settle(target, instance_id, "stopped")
        return {"state": want}

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        instance_id = _wanted_instance(target, parameters)
        instance = await self._describe(target, instance_id)
        if instance is None:
            raise TaskFailed(f"{target.where('instance_id')}: EC2 knows no instance {instance_id}")
        state = _state(target, instance)
        return {"state": POWER.get(state, state)}


def _translated(target: _Target, action: str, call: Callable[[], T]) -> T:
    """``call()``, its botocore errors as ``_Transient`` (worth another try) or
    ``TaskFailed`` naming the foundation and the field."""
    try:
        return call()
    except ClientError as error:
        code = _code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = error.response.get("Error", {}).get("Message", "") or code
        if code in THROTTLED or (isinstance(status, int) and status >= 500):
            raise _Transient(f"{code or status}: {text}") from None
        if code in CREDENTIALS:
            raise TaskFailed(
                f"{target.where('access_key_id, secret_access_key')}: EC2 refused the "
                f"credentials for {action} ({code}); fix them, then reset the job"
            ) from None
        raise TaskFailed(f"{target.where(_field_of(code))}: EC2 {action}: {code}: {text}") from None
    except (NoCredentialsError, PartialCredentialsError):
        raise TaskFailed(
            f"{target.where('access_key_id, secret_access_key')}: no AWS credentials (set them "
            "on the foundation, or give the subcontractor its own)"
        ) from None
    except NoRegionError:
        raise TaskFailed(f"{target.where('region')}: no region") from None
    except (BotoConnectionError, HTTPClientError) as error:
        raise _Transient(type(error).__name__) from None
    except BotoCoreError as error:
        raise TaskFailed(f"{target.where('endpoint')}: EC2 {action}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise TaskFailed(f"{target.where('endpoint')}: EC2 {action} answered nonsense") from None


def _code(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    return code if isinstance(code, str) else ""


def _field_of(code: str) -> str:
    """The foundation field or config value an EC2 error code is about."""
    for prefix, field in (
        ("InvalidAMIID", "awsec2_image_id"),
        ("InvalidSubnet", "awsec2_subnet_id"),
        ("InvalidGroup", "awsec2_security_group_ids"),
        ("InvalidKeyPair", "awsec2_key_name"),
        ("InvalidInstanceID", "instance_id"),
        ("InvalidParameterValue", "instance"),
        ("InvalidIamInstanceProfile", "awsec2_iam_instance_profile"),
    ):
        if code.startswith(prefix):
            return field
    return "instance"


def _wanted_instance(target: _Target, parameters: dict[str, Any]) -> str:
    """The ``instance_id`` of the task's connection (or of the task itself)."""
    connection = parameters.get("connection")
    holder = (
        connection if isinstance(connection, dict) and "instance_id" in connection else parameters
    )
    instance_id: str = require(holder, "instance_id", str)
    if not INSTANCE_ID.match(instance_id):
        raise TaskFailed(f"{target.where('instance_id')}: {instance_id!r} is not an instance id")
    return instance_id


def _launch_request(target: _Target, shape: dict[str, Any], token: str) -> dict[str, Any]:
    """RunInstances' arguments for one instance of ``shape``."""
    tags = require(shape, "tags", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise TaskFailed(f"{target.where('awsec2_tags')}: tags must map names to strings")
    tags = {**tags, TOKEN_TAG: token, FOUNDATION_TAG: target.foundation}
    request: dict[str, Any] = {
        "ImageId": require(shape, "image_id", str),
        "InstanceType": require(shape, "instance_type", str),
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": token,
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        ],
    }
    groups = require(shape, "security_group_ids", list)
    public = shape.get("associate_public_ip")
    subnet = shape.get("subnet_id")
    if public is not None:
        # a public address is asked for on the first network interface, which then holds
        # the subnet and the groups
        interface: dict[str, Any] = {"DeviceIndex": 0, "AssociatePublicIpAddress": bool(public)}
        if subnet is not None:
            interface["SubnetId"] = subnet
        if groups:
            interface["Groups"] = groups
        request["NetworkInterfaces"] = [interface]
    else:
        if subnet is not None:
            request["SubnetId"] = subnet
        if groups:
            request["SecurityGroupIds"] = groups
    if shape.get("pair_name") is not None:
        request["KeyName"] = shape["pair_name"]
    if shape.get("iam_instance_profile_arn") is not None:
        request["IamInstanceProfile"] = {"Arn": shape["iam_instance_profile_arn"]}
    return request


def _instances(target: _Target, answer: Any) -> list[dict[str, Any]]:
    try:
        found = [i for r in answer["Reservations"] for i in r["Instances"]]
    except (KeyError, TypeError):
        raise TaskFailed(
            f"{target.where('endpoint')}: DescribeInstances answered no reservations"
        ) from None
    if not all(isinstance(i, dict) for i in found):
        raise TaskFailed(f"{target.where('endpoint')}: DescribeInstances answered nonsense")
    return found


def _instance_id(target: _Target, instance: dict[str, Any]) -> str:
    instance_id = instance.get("InstanceId")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise TaskFailed(
            f"{target.where('instance_id')}: EC2 answered the malformed instance id {instance_id!r}"
        )
    return instance_id


def _state(target: _Target, instance: dict[str, Any]) -> str:
    state = (
        instance.get("State", {}).get("Name") if isinstance(instance.get("State"), dict) else None
    )
    if not isinstance(state, str):
        raise TaskFailed(
            f"{target.where('instance_id')}: EC2 answered no state for instance "
            f"{instance.get('InstanceId')!r}"
        )
    return state


def _created(target: _Target, instance: dict[str, Any], names: list[Any]) -> dict[str, Any]:
    """The create answer from a running instance: its network interfaces by device index,
    named as the foundation's interfaces are (``eth<index>`` past them)."""
    instance_id = _instance_id(target, instance)
    launched = f"instance {instance_id} runs, but EC2 answered"
    interfaces = instance.get("NetworkInterfaces")
    if not isinstance(interfaces, list) or not interfaces:
        raise TaskFailed(f"{target.where('interface_list')}: {launched} no network interfaces")
    listed: list[tuple[int, dict[str, str]]] = []
    private: dict[str, str] = {}
    public: dict[str, str] = {}
    for interface in interfaces:
        try:
            index = int(interface["Attachment"]["DeviceIndex"])
            mac = str(interface["MacAddress"]).lower()
            address = str(interface["PrivateIpAddress"])
        except (KeyError, TypeError, ValueError):
            raise TaskFailed(
                f"{target.where('interface_list')}: {launched} an interface without its device "
                "index, MAC or private address"
            ) from None
        if not MAC.match(mac):
            raise TaskFailed(f"{target.where('interface_list')}: {launched} the MAC {mac!r}")
        name = names[index] if index < len(names) and isinstance(names[index], str) else None
        name = name or f"eth{index}"
        listed.append((index, {"name": name, "mac": mac}))
        private[name] = _address(target, address, launched)
        association = interface.get("Association")
        if isinstance(association, dict) and association.get("PublicIp"):
            public[name] = _address(target, str(association["PublicIp"]), launched)
    return {
        "instance_id": instance_id,
        "state": _state(target, instance),
        "interface_list": [item for _, item in sorted(listed, key=lambda pair: pair[0])],
        "ip_address_map": private,
        "public_ip_address_map": public,
    }


def _address(target: _Target, text: str, launched: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise TaskFailed(
            f"{target.where('ip_address_map')}: {launched} the address {text!r}"
        ) from None
