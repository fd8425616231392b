"""The ``manual`` foundation type: machines an operator racks, powers and wipes by hand."""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.building import Foundation
from contractor.plugins import FoundationType


class ManualFoundation(Foundation):
    __tablename__ = "manual_foundation"

    id: Mapped[int] = mapped_column(
        ForeignKey("foundation.id", ondelete="CASCADE"), primary_key=True
    )

    __mapper_args__ = {"polymorphic_identity": "manual"}


class ManualFoundationType(FoundationType):
    name = "manual"
    model = ManualFoundation
    class_list = ("Metal", "VM", "Container", "Switch", "Manual")
    description = "anything built by hand; Contractor only records it"
