"""Hosted foundation types: Foundations (VMs, containers) carried by the members of a typed
Complex.

A hosted type names its ``complex_type`` (``libvirt``, ``docker``, ``simulated``) and says in
``demand`` what a new Foundation takes of its member. Every hosted type takes two more
fields at creation, never stored on its row: ``complex`` (the Complex's name, required) and
``member`` (a member Structure's hostname, to pin the Foundation to it). Creating the
Foundation places it (``contractor.services.placement.place``) in the same transaction;
destroying or deleting it releases the placement. Its job functions (``uses_job``) find
the carrying member in ``JobAccess.member``: its endpoint and credentials, the password
for task parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from contractor.errors import InvalidInput
from contractor.models.building import Foundation
from contractor.plugins import FoundationType
from contractor.services.placement import HOSTING_FIELDS, Demand

__all__ = ["HostedFoundationType"]


class HostedFoundationType(FoundationType):
    """A foundation type whose Foundations are placed on the members of a Complex."""

    complex_type: ClassVar[str]
    uses_job = True
    placement_fields: ClassVar[tuple[str, ...]] = HOSTING_FIELDS

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The type's own fields (``FoundationType.validate_fields``) and the hosting
        fields, ``complex`` and ``member``, each a name when given."""
        hosting = {k: v for k, v in values.items() if k in HOSTING_FIELDS}
        for name, value in hosting.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(
                    f"{name} must be a name, got {value!r}",
                    field=name,
                )
        own = super().validate_fields({k: v for k, v in values.items() if k not in HOSTING_FIELDS})
        return {**own, **hosting}

    def demand(self, foundation: Foundation, values: Mapping[str, Any]) -> Demand:
        raise NotImplementedError(f"hosted foundation type {self.name!r} has no demand")
