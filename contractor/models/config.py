"""The configuration generation: a counter that moves whenever a configuration source changes.

Every process keeps composed configurations in memory (``contractor.services.config``); this
one-row table is how they learn, with a single cheap query, that some other process changed a
Site, a BluePrint, a Foundation, a Structure or their addresses since.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base


class ConfigGeneration(Base):
    __tablename__ = "config_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
