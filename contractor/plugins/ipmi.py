"""The ``ipmi`` foundation type: a physical machine with a BMC reached over IPMI.

Its power, boot and link functions are tasks for the subcontractor's ``ipmi`` module; the BMC
credentials travel only inside those tasks (never in the runner state, logs, GraphQL output
or configuration). A Foundation job's script may set ``bmc_address``, ``bmc_port`` and
``username``, never the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from contractor.errors import InvalidInput
from contractor.foreman.remote import RemoteCall, power_functions
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins.bmc import BmcCredentials, BmcFoundationType
from contractor.services.validation import check_port
from tscript import ExternalFunction, FunctionFactory


class IpmiFoundation(BmcCredentials, Foundation):
    __tablename__ = "ipmi_foundation"

    id: Mapped[int] = key_of("foundation")
    bmc_port: Mapped[int] = mapped_column(Integer, default=623)

    __mapper_args__ = {"polymorphic_identity": "ipmi"}


LINK_TEST = {"count": 20, "scaler": 0.85, "threshold": 0.8, "delay": 1}


class IpmiFoundationType(BmcFoundationType):
    name = "ipmi"
    prefix = "ipmi"
    model = IpmiFoundation
    class_list = ("Metal", "IPMI")
    description = "a physical machine powered and booted through its BMC (IPMI)"
    fields = ("bmc_address", "bmc_port", "username", "password")
    secret_fields = ("password",)
    settable_fields = ("bmc_address", "bmc_port", "username")

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate_fields(values)
        for name in ("bmc_address", "username", "password"):
            if name in checked and not isinstance(checked[name], str):
                raise InvalidInput(f"{name} must be a string", field=name)
        if "bmc_address" in checked and len(checked["bmc_address"]) > 255:
            raise InvalidInput("bmc_address is longer than 255 characters", field="bmc_address")
        if "bmc_port" in checked:
            check_port(checked["bmc_port"], field="bmc_port")
        return checked

    def tscript_functions(self, foundation: Foundation) -> Mapping[str, FunctionFactory]:
        assert isinstance(foundation, IpmiFoundation)
        address, port = foundation.bmc_address, foundation.bmc_port
        username, password = foundation.username, foundation.password
        locator = foundation.locator

        def connection() -> dict[str, Any]:
            if not address:
                raise ValueError(f"foundation {locator!r} has no bmc_address")
            return {
                "host": address,
                "port": port,
                "username": username,
                "password": password,
            }

        def link_test() -> tuple[str, ExternalFunction]:
            threshold = LINK_TEST["threshold"]
            return (
                "ipmi",
                RemoteCall(
                    "link_test",
                    # count and delay may be given (a quick check before a long one)
                    lambda given: {"connection": connection(), **LINK_TEST, **given},
                    label="link test",
                    accepts={"count": LINK_TEST["count"], "delay": LINK_TEST["delay"]},
                    value=lambda result: float(result["score"]) >= threshold,
                ),
            )

        functions = power_functions("ipmi", connection)
        functions["link_test"] = link_test
        return functions
