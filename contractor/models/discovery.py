"""Machines that booted with no reservation and reported their hardware (discovery).

One row per boot MAC: a later report of the same MAC updates it. ``foundation_id`` is the
planned Foundation the report matched (by MAC or serial), ``located`` whether that Foundation
was located from it, ``problems`` why not (ambiguity, unmet fingerprint requirements).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base, OrderedJSON, Timestamped, UTCDateTime, utcnow


class DiscoveredHardware(Timestamped, Base):
    __tablename__ = "discovered_hardware"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    serial: Mapped[str | None] = mapped_column(String(200), index=True)
    report: Mapped[dict[str, Any]] = mapped_column(OrderedJSON)
    foundation_id: Mapped[int | None] = mapped_column(
        ForeignKey("foundation.id", ondelete="SET NULL"), index=True
    )
    located: Mapped[bool] = mapped_column(Boolean, default=False)
    problems: Mapped[list[str]] = mapped_column(OrderedJSON, default=list)
    reports: Mapped[int] = mapped_column(Integer, default=1)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
