"""What the foundation types of machines behind a BMC (``ipmi``, ``redfish``) show alike:
the BMC's address as a configuration attribute and, with its username, as TScript values,
under the type's ``prefix`` (the password never)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, cast

from contractor.models.building import Foundation
from contractor.plugins import FoundationType

__all__ = ["BmcFoundationType"]


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
