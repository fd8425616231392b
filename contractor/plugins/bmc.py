"""What the foundation types of machines behind a BMC (``ipmi``, ``redfish``) have alike:
the BMC's address and credentials as columns (``BmcCredentials``; the port, whose default
differs, is each type's own), and the address as a configuration attribute and, with the
username, as TScript values under the type's ``prefix`` (the password never)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, cast

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.building import Foundation
from contractor.plugins import FoundationType

__all__ = ["BmcCredentials", "BmcFoundationType"]


class BmcCredentials:
    """The BMC's address (none until it is known) and the credentials to reach it."""

    bmc_address: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(64), default="")
    password: Mapped[str] = mapped_column(String(255), default="")


class _Bmc(Protocol):
    bmc_address: str | None
    username: str


class BmcFoundationType(FoundationType):
    """A foundation type whose model has ``bmc_address`` and ``username`` columns."""

    prefix: ClassVar[str]

    def _bmc(self, foundation: Foundation) -> _Bmc:
        assert isinstance(foundation, self.model)
        return cast(_Bmc, foundation)

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        return {f"_{self.prefix}_address": self._bmc(foundation).bmc_address}

    def tscript_values(self, foundation: Foundation) -> dict[str, Any]:
        bmc = self._bmc(foundation)
        # the original's names: ``<prefix>_ip_address`` and (Redfish) ``redfish_username``
        return {
            f"{self.prefix}_address": bmc.bmc_address,
            f"{self.prefix}_ip_address": bmc.bmc_address,
            f"{self.prefix}_username": bmc.username,
        }
