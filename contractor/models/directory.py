"""DNS zones (records and zone files come from bindgen)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, Timestamped


class Zone(Timestamped, Base):
    """One DNS zone; ``fqdn`` is its name followed by its parents' names."""

    __tablename__ = "zone"
    __table_args__ = (
        UniqueConstraint("parent_id", "name"),
        # NULL parents are distinct to SQL, so top-level names need their own index.
        Index(
            "uq_zone_top_level_name",
            "name",
            unique=True,
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("zone.id", ondelete="RESTRICT"), index=True
    )
    ttl: Mapped[int] = mapped_column(Integer, default=3600)
    refresh: Mapped[int] = mapped_column(Integer, default=86400)
    retry: Mapped[int] = mapped_column(Integer, default=7200)
    expire: Mapped[int] = mapped_column(Integer, default=36000)
    minimum: Mapped[int] = mapped_column(Integer, default=172800)

    parent: Mapped[Zone | None] = relationship(remote_side=[id], lazy="raise")

    def __repr__(self) -> str:
        return f"<Zone {self.name}>"
