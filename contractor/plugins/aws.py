"""The ``aws`` foundation type (``AWS`` in the original's resource files): one EC2
instance, run by the subcontractor's ``aws`` module.

The instance's shape comes from the blueprint's config values, read when the task is handed
out: ``awsec2_image_id``, ``awsec2_type`` (the original's names), ``awsec2_subnet_id``,
``awsec2_security_group_ids``, ``awsec2_key_name``, ``awsec2_tags``,
``awsec2_iam_instance_profile`` (an ARN) and ``awsec2_public_ip``; ``awsec2_region`` stands
in for an unset ``region`` field. The credentials (``access_key_id``, ``secret_access_key``)
are secrets: they travel only inside tasks; with neither set, the subcontractor uses its own
(environment or instance profile).

``foundation.create()`` launches the instance with a client token made of the foundation's
and the job's ids, so a task sent again (a lost answer, a subcontractor killed mid-call, a
job reset) finds the instance it already launched instead of starting a second one; its
value is ``{instance_id, state, interface_list, ip_address_map, public_ip_address_map}``
(for ``set_interface_macs( interface_list=... )`` and ``set_ip_addresses( ip_address_map=...
)``), and the instance id and public address are recorded on the foundation as the answer
is taken. ``destroy()`` terminates it and forgets them; its value's ``ip_address_map`` maps
each interface to ``none`` (releasing the addresses). ``power_on``, ``power_off``,
``power_state`` and ``wait_for_poweroff`` start and stop the instance.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall, power_functions
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins import FoundationType, JobAccess
from contractor.plugins.connections import with_recorded_id
from contractor.services.validation import check_pattern
from tscript import ExternalFunction, FunctionFactory

__all__ = ["AwsFoundation", "AwsFoundationType", "client_token"]


class AwsFoundation(Foundation):
    __tablename__ = "aws_foundation"

    id: Mapped[int] = key_of("foundation")
    region: Mapped[str | None] = mapped_column(String(30))
    endpoint_url: Mapped[str | None] = mapped_column(String(255))
    access_key_id: Mapped[str] = mapped_column(String(128), default="")
    secret_access_key: Mapped[str] = mapped_column(String(255), default="")
    instance_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    public_ip_address: Mapped[str | None] = mapped_column(String(45))

    __mapper_args__ = {"polymorphic_identity": "aws"}


REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}\Z")
ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?(/[^\s]*)?\Z")
ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}\Z")
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}\Z")
IMAGE_ID = re.compile(r"ami-[0-9a-f]{8,17}\Z")
SUBNET_ID = re.compile(r"subnet-[0-9a-f]{8,17}\Z")
GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}\Z")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9\-]*\.[a-z0-9]+\Z")
PROFILE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:instance-profile/[\w+=,.@/\-]{1,128}\Z")
TAG_KEY = re.compile(r"[^\x00-\x1f]{1,128}\Z")
DEFAULT_TYPE = "t3.micro"
MODULE = "aws"


def client_token(foundation_id: int, job_id: int | None) -> str:
    """The RunInstances client token of a foundation's create job (at most 64 characters):
    the same for every attempt of one job, another for the next create."""
    return f"contractor-{foundation_id}-{job_id if job_id is not None else 0}"


class AwsFoundationType(FoundationType):
    name = "aws"
    model = AwsFoundation
    class_list = ("VM", "AWS")
    description = "an EC2 instance in Amazon Web Services"
    fields = (
        "region",
        "endpoint_url",
        "access_key_id",
        "secret_access_key",
        "instance_id",
        "public_ip_address",
    )
    secret_fields = ("access_key_id", "secret_access_key")
    # not endpoint_url: a script could send the credentials' signed requests elsewhere
    settable_fields = ("region",)
    uses_job = True

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        rules = {
            "region": (REGION, "an AWS region name like us-east-1"),
            "endpoint_url": (ENDPOINT, "an http:// or https:// URL"),
            "access_key_id": (ACCESS_KEY_ID, "an AWS access key id (capital letters, digits)"),
            "instance_id": (INSTANCE_ID, "an EC2 instance id like i-0123456789abcdef0"),
        }
        for name, (pattern, what) in rules.items():
            if checked.get(name) is not None:
                check_pattern(checked[name], field=name, pattern=pattern, what=what)
        secret = checked.get("secret_access_key")
        if secret is not None and (not isinstance(secret, str) or len(secret) > 255):
            raise InvalidInput(
                "secret_access_key must be a string of at most 255 characters",
                field="secret_access_key",
            )
        address = checked.get("public_ip_address")
        if address is not None:
            try:
                checked["public_ip_address"] = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidInput(
                    f"public_ip_address must be an IP address, got {address!r}",
                    field="public_ip_address",
                ) from None
        return checked

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, AwsFoundation)
        return {
            "_aws_instance_id": foundation.instance_id,
            "_aws_region": foundation.region,
            "_aws_public_ip_address": foundation.public_ip_address,
        }

    def tscript_values(self, foundation: Foundation) -> dict[str, Any]:
        assert isinstance(foundation, AwsFoundation)
        return {
            "instance_id": foundation.instance_id,
            "public_ip_address": foundation.public_ip_address,
        }

    def job_functions(
        self, foundation: Foundation, job: JobAccess
    ) -> Mapping[str, FunctionFactory]:
        assert isinstance(foundation, AwsFoundation)
        connection = _connection(foundation, job)
        with_instance = with_recorded_id(connection, foundation, "instance_id", "instance")

        functions = power_functions(MODULE, with_instance, soft_off=False)
        del functions["set_boot_device"]  # an instance boots its image
        functions["create"] = _create(foundation, job, connection)
        functions["destroy"] = _destroy(foundation, job, with_instance)
        return functions


def _connection(foundation: AwsFoundation, job: JobAccess) -> Callable[[], dict[str, Any]]:
    locator = foundation.locator
    region = foundation.region or job.config.get("awsec2_region")
    endpoint, key_id, secret = (
        foundation.endpoint_url,
        foundation.access_key_id,
        foundation.secret_access_key,
    )

    def connection() -> dict[str, Any]:
        if bool(key_id) != bool(secret):
            missing = "secret_access_key" if key_id else "access_key_id"
            raise ValueError(
                f"foundation {locator!r}: {missing} is not set (set both credentials or "
                "neither, to use the subcontractor's own)"
            )
        found: dict[str, Any] = {"foundation": locator}
        if region is not None:
            found["region"] = _checked_config(locator, "awsec2_region", region, REGION, "a region")
        if endpoint:
            found["endpoint_url"] = endpoint
        if key_id:
            found["access_key_id"] = key_id
            found["secret_access_key"] = secret
        return found

    return connection


def _checked_config(
    locator: str, name: str, value: Any, pattern: re.Pattern[str], what: str
) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(
            f"foundation {locator!r}: config value {name} must be {what}, got {value!r}"
        )
    return value


def instance_shape(locator: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's shape from the foundation's config values, checked; ``ValueError``
    names the foundation and the value."""
    if "awsec2_image_id" not in config:
        raise ValueError(f"foundation {locator!r}: config value awsec2_image_id is not set")
    shape: dict[str, Any] = {
        "image_id": _checked_config(
            locator, "awsec2_image_id", config["awsec2_image_id"], IMAGE_ID, "an AMI id"
        ),
        "instance_type": _checked_config(
            locator,
            "awsec2_type",
            config.get("awsec2_type", DEFAULT_TYPE),
            INSTANCE_TYPE,
            "an instance type like t3.micro",
        ),
    }
    if config.get("awsec2_subnet_id") is not None:
        shape["subnet_id"] = _checked_config(
            locator, "awsec2_subnet_id", config["awsec2_subnet_id"], SUBNET_ID, "a subnet id"
        )
    groups = config.get("awsec2_security_group_ids", [])
    if not isinstance(groups, list):
        raise ValueError(
            f"foundation {locator!r}: config value awsec2_security_group_ids must be a list"
        )
    shape["security_group_ids"] = [
        _checked_config(locator, "awsec2_security_group_ids", g, GROUP_ID, "security group ids")
        for g in groups
    ]
    if config.get("awsec2_key_name") is not None:
        name = config["awsec2_key_name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ValueError(f"foundation {locator!r}: config value awsec2_key_name is not a name")
        shape["pair_name"] = name  # not "key_name": answers are masked of secret-named values
    tags = config.get("awsec2_tags", {})
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and TAG_KEY.match(k) and isinstance(v, str) and len(v) <= 256
        for k, v in tags.items()
    ):
        raise ValueError(
            f"foundation {locator!r}: config value awsec2_tags must map tag names to strings"
        )
    shape["tags"] = {"Name": locator, **tags}
    if config.get("awsec2_iam_instance_profile") is not None:
        shape["iam_instance_profile_arn"] = _checked_config(
            locator,
            "awsec2_iam_instance_profile",
            config["awsec2_iam_instance_profile"],
            PROFILE_ARN,
            "an instance profile ARN (arn:aws:iam::<account>:instance-profile/<name>)",
        )
    public = config.get("awsec2_public_ip")
    if public is not None:
        if not isinstance(public, bool):
            raise ValueError(
                f"foundation {locator!r}: config value awsec2_public_ip must be true or false"
            )
        shape["associate_public_ip"] = public
    return shape


def _created(locator: str, names: list[str], result: dict[str, Any]) -> dict[str, Any]:
    """The create answer, checked: the value the script sees."""

    def wrong(field: str) -> ValueError:
        return ValueError(f"foundation {locator!r}: the answer's {field} is missing or malformed")

    instance_id = result.get("instance_id")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise wrong("instance_id")
    interfaces = result.get("interface_list")
    if not isinstance(interfaces, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("mac"), str)
        for i in interfaces
    ):
        raise wrong("interface_list")
    maps = {}
    for field in ("ip_address_map", "public_ip_address_map"):
        found = result.get(field, {})
        if not isinstance(found, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in found.items()
        ):
            raise wrong(field)
        for ip in found.values():
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise wrong(field) from None
        maps[field] = found
    return {
        "instance_id": instance_id,
        "state": result.get("state"),
        "interface_list": interfaces,
        **maps,
    }


def _create(
    foundation: AwsFoundation, job: JobAccess, connection: Callable[[], dict[str, Any]]
) -> FunctionFactory:
    locator, names = foundation.locator, list(job.interface_names)
    token = client_token(foundation.id, job.job_id)

    def parameters(_: dict[str, Any]) -> dict[str, Any]:
        return {
            "connection": connection(),
            "client_token": token,
            "instance": instance_shape(locator, job.config),
            "interface_names": names,
        }

    def value(result: dict[str, Any]) -> dict[str, Any]:
        created = _created(locator, names, result)
        public = next(iter(created["public_ip_address_map"].values()), None)
        job.record({"instance_id": created["instance_id"], "public_ip_address": public})
        return created

    def factory() -> tuple[str, ExternalFunction]:
        return (MODULE, RemoteCall("create", parameters, label="create instance", value=value))

    return factory


def _destroy(
    foundation: AwsFoundation, job: JobAccess, with_instance: Callable[[], dict[str, Any]]
) -> FunctionFactory:
    names = list(job.interface_names)

    def value(result: dict[str, Any]) -> dict[str, Any]:
        if result.get("state") != "terminated":
            raise ValueError(
                f"foundation {foundation.locator!r}: the answer's state is not terminated"
            )
        job.record({"instance_id": None, "public_ip_address": None})
        return {
            "instance_id": result.get("instance_id"),
            "state": "terminated",
            "ip_address_map": dict.fromkeys(names),
        }

    def factory() -> tuple[str, ExternalFunction]:
        return (
            MODULE,
            RemoteCall(
                "destroy",
                lambda _: {"connection": with_instance()},
                label="terminate instance",
                value=value,
            ),
        )

    return factory
