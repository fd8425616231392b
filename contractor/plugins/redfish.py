"""The ``redfish`` foundation type (the original's ``RedFish``): a physical machine whose BMC
speaks Redfish (HTTPS + JSON, DMTF DSP0266).

Its power, boot, virtual-media, link and interface-map functions are tasks for the
subcontractor's ``redfish`` module. The BMC credentials travel only inside those tasks (never
in the runner state, logs, GraphQL output or configuration). The BMC's TLS certificate is
checked against ``ca_bundle`` (PEM, the BMC's own certificate or the CA that signed it) or,
without one, the subcontractor's trust store; ``verify_tls = false`` turns the check off for
BMCs with self-signed certificates nobody has collected. ``system_id`` picks one of several
systems behind a BMC; left empty, the subcontractor uses the only one there is. A Foundation
job's script may set every field but the password. docs/foundations.md has the whole surface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import (
    RemoteCall,
    answer_field,
    interface_map_call,
    power_functions,
)
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins.bmc import BmcCredentials, BmcFoundationType
from contractor.services.validation import check_port
from tscript import ExternalFunction, FunctionFactory, ParameterError

MODULE = "redfish"
# Host names, IPv4 and IPv6 literals (no scheme, port or path: those are fields of their own).
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,253})\Z|[0-9A-Fa-f:.]{2,45}\Z")
# A Redfish resource Id as it appears in a URL path segment.
_SYSTEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,254}\Z")
DEVICES = ("pxe", "network", "disk", "hd", "hdd", "cd", "cdrom", "dvd", "usb", "bios", "none")
MAX_CA_BUNDLE = 65536


class RedfishFoundation(BmcCredentials, Foundation):
    __tablename__ = "redfish_foundation"

    id: Mapped[int] = key_of("foundation")
    bmc_port: Mapped[int] = mapped_column(Integer, default=443)
    system_id: Mapped[str | None] = mapped_column(String(255))
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    ca_bundle: Mapped[str | None] = mapped_column(Text)

    __mapper_args__ = {"polymorphic_identity": "redfish"}


def _check_ca_bundle(text: str) -> None:
    from cryptography import x509

    if len(text) > MAX_CA_BUNDLE:
        raise InvalidInput(
            f"ca_bundle is longer than {MAX_CA_BUNDLE} characters", field="ca_bundle"
        )
    try:
        found = x509.load_pem_x509_certificates(text.encode())
    except ValueError as error:
        raise InvalidInput(
            f"ca_bundle must be PEM certificates (-----BEGIN CERTIFICATE-----): {error}",
            field="ca_bundle",
        ) from None
    if not found:  # pragma: no cover - cryptography raises for an empty bundle
        raise InvalidInput("ca_bundle holds no certificate", field="ca_bundle")


class RedfishFoundationType(BmcFoundationType):
    name = "redfish"
    prefix = "redfish"
    model = RedfishFoundation
    class_list = ("Metal", "RedFish")
    description = "a physical machine powered, booted and given media through its BMC (Redfish)"
    fields = (
        "bmc_address",
        "bmc_port",
        "username",
        "password",
        "system_id",
        "verify_tls",
        "ca_bundle",
    )
    secret_fields = ("password",)
    settable_fields = ("bmc_address", "bmc_port", "username", "system_id", "verify_tls")

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        for name in ("bmc_address", "username", "password", "system_id", "ca_bundle"):
            value = checked.get(name)
            if name in checked and value is not None and not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string", field=name)
        for name in ("username", "password"):
            if checked.get(name) is None and name in checked:
                raise InvalidInput(f"{name} must be a string", field=name)
        address = checked.get("bmc_address")
        if address:
            if len(address) > 255 or not _HOST.match(address):
                raise InvalidInput(
                    f"bmc_address must be a host name or IP address (no scheme, port or "
                    f"path), got {address!r}",
                    field="bmc_address",
                )
        elif "bmc_address" in checked:
            checked["bmc_address"] = None
        if "bmc_port" in checked:
            check_port(checked["bmc_port"], field="bmc_port")
        if "username" in checked and len(checked["username"]) > 64:
            raise InvalidInput("username is longer than 64 characters", field="username")
        if "password" in checked and len(checked["password"]) > 255:
            raise InvalidInput("password is longer than 255 characters", field="password")
        system_id = checked.get("system_id")
        if system_id:
            if not _SYSTEM_ID.match(system_id):
                raise InvalidInput(
                    f"system_id must be a Redfish resource id (letters, digits, '.', '_', "
                    f"':', '-'), got {system_id!r}",
                    field="system_id",
                )
        elif "system_id" in checked:
            checked["system_id"] = None  # found by the subcontractor
        if "verify_tls" in checked and not isinstance(checked["verify_tls"], bool):
            raise InvalidInput("verify_tls must be true or false", field="verify_tls")
        bundle = checked.get("ca_bundle")
        if bundle:
            _check_ca_bundle(bundle)
        elif "ca_bundle" in checked:
            checked["ca_bundle"] = None
        return checked

    def tscript_functions(self, foundation: Foundation) -> Mapping[str, FunctionFactory]:
        connection = _connection(foundation)

        def with_connection(extra: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
            return lambda parameters: {"connection": connection(), **extra(parameters)}

        def call(
            function: str,
            label: str,
            extra: Callable[[dict[str, Any]], dict[str, Any]],
            accepts: Mapping[str, Any],
            value: Callable[[dict[str, Any]], Any],
        ) -> FunctionFactory:
            def factory() -> tuple[str, ExternalFunction]:
                return (
                    MODULE,
                    RemoteCall(
                        function,
                        with_connection(extra),
                        label=label,
                        accepts=accepts,
                        value=value,
                    ),
                )

            return factory

        functions = power_functions(MODULE, connection)
        functions["set_boot_device"] = call(
            "set_boot_device",
            "set boot device",
            _boot_parameters,
            {"device": ..., "continuous": False},
            lambda _: True,
        )
        functions["insert_media"] = call(
            "insert_media", "insert virtual media", _media_parameters, {"url": ...}, _inserted
        )
        functions["eject_media"] = call(
            "eject_media", "eject virtual media", lambda _: {}, {}, lambda _: True
        )
        functions["link_test"] = call(
            "link_test",
            "link test",
            lambda given: {"count": given["count"], "delay": given["delay"]},
            {"count": 3, "delay": 1},
            answer_field("success", bool),
        )
        return functions

    def interface_map_reader(
        self, foundation: Foundation, locations: Sequence[str]
    ) -> FunctionFactory | None:
        return interface_map_call(MODULE, _connection(foundation), locations)


def _connection(foundation: Foundation) -> Callable[[], dict[str, Any]]:
    assert isinstance(foundation, RedfishFoundation)
    locator = foundation.locator
    values = {
        "host": foundation.bmc_address,
        "port": foundation.bmc_port if foundation.bmc_port is not None else 443,
        "username": foundation.username or "",
        "password": foundation.password or "",
        "system_id": foundation.system_id,
        "verify": foundation.verify_tls is not False,
        "ca_bundle": foundation.ca_bundle,
    }

    def connection() -> dict[str, Any]:
        if not values["host"]:
            raise ValueError(f"foundation {locator!r} has no bmc_address")
        return dict(values)

    return connection


def _boot_parameters(given: dict[str, Any]) -> dict[str, Any]:
    device, continuous = given["device"], given["continuous"]
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise ParameterError("device", f"must be one of {', '.join(DEVICES)}, got {device!r}")
    if not isinstance(continuous, bool):
        raise ParameterError("continuous", "must be true (every boot) or false (the next one)")
    return {"device": device.lower(), "continuous": continuous}


def _media_parameters(given: dict[str, Any]) -> dict[str, Any]:
    url = given["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https", "nfs", "cifs") or not parts.netloc:
        raise ParameterError(
            "url", f"must be the http(s), nfs or cifs URL of an image (an ISO), got {url!r}"
        )
    if parts.username or parts.password:
        raise ParameterError(
            "url", "must not hold credentials (they would be saved with the job and shown)"
        )
    return {"url": url}


def _inserted(result: dict[str, Any]) -> str:
    image = result.get("image")
    if result.get("inserted") is not True or not isinstance(image, str):
        raise ValueError('the answer needs "inserted": true and the "image" URL')
    return image
