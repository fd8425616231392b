"""BluePrints (what to build), Scripts (TScript source) and PXE boot descriptions.

A BluePrint is either a FoundationBluePrint (the shape of the hardware, VM or container and
the fingerprint a Foundation must show) or a StructureBluePrint (the OS or service). Parent
lists are ordered: the order decides config layering and script lookup.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, OrderedJSON, Timestamped, key_of


class BluePrint(Timestamped, Base):
    __tablename__ = "blueprint"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(200), default="")
    config_values: Mapped[dict[str, Any]] = mapped_column(OrderedJSON, default=dict)

    __mapper_args__ = {
        "polymorphic_on": "kind",
        "polymorphic_abstract": True,
        "with_polymorphic": "*",
    }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class FoundationBluePrint(BluePrint):
    __tablename__ = "foundation_blueprint"

    id: Mapped[int] = key_of("blueprint")
    # Foundation type names (plugin names) this blueprint accepts.
    foundation_types: Mapped[list[str]] = mapped_column(OrderedJSON, default=list)
    physical_interface_names: Mapped[list[str]] = mapped_column(OrderedJSON, default=list)
    # Fingerprint requirements, compared with a Foundation's reported hardware identity.
    min_cpu_count: Mapped[int | None] = mapped_column(Integer)
    min_memory_mb: Mapped[int | None] = mapped_column(Integer)
    required_pci_devices: Mapped[list[str]] = mapped_column(OrderedJSON, default=list)
    # Minimum size in GB of each disk the machine must have, largest first.
    required_disks_gb: Mapped[list[int]] = mapped_column(OrderedJSON, default=list)

    __mapper_args__ = {"polymorphic_identity": "foundation"}


class StructureBluePrint(BluePrint):
    __tablename__ = "structure_blueprint"

    id: Mapped[int] = key_of("blueprint")

    __mapper_args__ = {"polymorphic_identity": "structure"}


class BluePrintParent(Base):
    """An ordered parent link; both ends are of the same kind (checked by the service)."""

    __tablename__ = "blueprint_parent"

    child_id: Mapped[int] = key_of("blueprint")
    parent_id: Mapped[int] = key_of("blueprint", ondelete="RESTRICT", index=True)
    position: Mapped[int] = mapped_column(Integer)


class StructureFoundationBluePrint(Base):
    """The FoundationBluePrints a StructureBluePrint may be built on, in order."""

    __tablename__ = "structure_foundation_blueprint"

    structure_blueprint_id: Mapped[int] = key_of("structure_blueprint")
    foundation_blueprint_id: Mapped[int] = key_of(
        "foundation_blueprint", ondelete="RESTRICT", index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class Script(Timestamped, Base):
    __tablename__ = "script"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(Text, default="")

    def __repr__(self) -> str:
        return f"<Script {self.name}>"


class BluePrintScript(Base):
    """A BluePrint's script for a role: ``create``, ``destroy`` or any utility name."""

    __tablename__ = "blueprint_script"
    __table_args__ = (UniqueConstraint("blueprint_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    blueprint_id: Mapped[int] = mapped_column(ForeignKey("blueprint.id", ondelete="CASCADE"))
    script_id: Mapped[int] = mapped_column(ForeignKey("script.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(50))

    script: Mapped[Script] = relationship(lazy="raise")


class PXE(Timestamped, Base):
    """What a machine boots next: an iPXE boot script and an installer template (Jinja2)."""

    __tablename__ = "pxe"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    boot_script: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str] = mapped_column(Text, default="")

    def __repr__(self) -> str:
        return f"<PXE {self.name}>"
