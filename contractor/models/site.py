"""Sites: named, nested groups whose configuration values flow down to everything inside."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, OrderedJSON, Timestamped

if TYPE_CHECKING:
    from contractor.models.directory import Zone


class Site(Timestamped, Base):
    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("site.id", ondelete="RESTRICT"), index=True
    )
    zone_id: Mapped[int | None] = mapped_column(
        ForeignKey("zone.id", ondelete="RESTRICT"), index=True
    )
    config_values: Mapped[dict[str, Any]] = mapped_column(OrderedJSON, default=dict)

    parent: Mapped[Site | None] = relationship(remote_side=[id], lazy="raise")
    zone: Mapped[Zone | None] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"<Site {self.name}>"
