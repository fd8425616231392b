"""Foundations, Structures, Complexes and Dependencies, and their network interfaces.

States are never stored: they follow from the timestamps (see ``contractor.services.building``
for the transitions and their preconditions).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base, OrderedJSON, Timestamped, UTCDateTime, partial_index


def new_config_uuid() -> str:
    return str(uuid.uuid4())


class Foundation(Timestamped, Base):
    """Something to build on. Its ``type`` names the plugin whose table extends this row."""

    __tablename__ = "foundation"

    id: Mapped[int] = mapped_column(primary_key=True)
    locator: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"), index=True)
    blueprint_id: Mapped[int] = mapped_column(
        ForeignKey("foundation_blueprint.id", ondelete="RESTRICT"), index=True
    )
    located_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Hardware identity as reported by the machine (serial, cpu_count, memory_mb, pci_devices,
    # disks_gb, network); checked against the blueprint's fingerprint requirements.
    id_map: Mapped[dict[str, Any] | None] = mapped_column(OrderedJSON)

    __mapper_args__ = {
        "polymorphic_on": "type",
        "polymorphic_abstract": True,
        "with_polymorphic": "*",
    }

    @property
    def state(self) -> str:
        return foundation_state(self.located_at, self.built_at)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.locator}>"


def foundation_state(located_at: dt.datetime | None, built_at: dt.datetime | None) -> str:
    if located_at is None:
        return "planned"
    return "located" if built_at is None else "built"


class RealNetworkInterface(Timestamped, Base):
    """A physical (or virtual hardware) interface of a Foundation."""

    __tablename__ = "real_network_interface"
    __table_args__ = (
        UniqueConstraint("foundation_id", "physical_location"),
        partial_index(
            "uq_real_network_interface_one_provisioning",
            "foundation_id",
            where="is_provisioning",
            unique=True,
        ),
        partial_index("uq_real_network_interface_mac", "mac", where="mac IS NOT NULL", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    foundation_id: Mapped[int] = mapped_column(ForeignKey("foundation.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(20))
    physical_location: Mapped[str] = mapped_column(String(100))
    mac: Mapped[str | None] = mapped_column(String(17))
    is_provisioning: Mapped[bool] = mapped_column(Boolean, default=False)
    link_name: Mapped[str | None] = mapped_column(String(100))
    network_id: Mapped[int | None] = mapped_column(
        ForeignKey("network.id", ondelete="RESTRICT"), index=True
    )
    pxe_id: Mapped[int | None] = mapped_column(
        ForeignKey("pxe.id", ondelete="RESTRICT"), index=True
    )


class Structure(Timestamped, Base):
    """What is built on a Foundation: a host with a hostname, a site and a blueprint."""

    __tablename__ = "structure"
    __table_args__ = (UniqueConstraint("site_id", "hostname"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(100), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"))
    blueprint_id: Mapped[int] = mapped_column(
        ForeignKey("structure_blueprint.id", ondelete="RESTRICT"), index=True
    )
    foundation_id: Mapped[int] = mapped_column(
        ForeignKey("foundation.id", ondelete="RESTRICT"), unique=True
    )
    config_uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_config_uuid)
    config_values: Mapped[dict[str, Any]] = mapped_column(OrderedJSON, default=dict)
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @property
    def state(self) -> str:
        return "planned" if self.built_at is None else "built"

    def __repr__(self) -> str:
        return f"<Structure {self.hostname}>"


class AbstractNetworkInterface(Timestamped, Base):
    """A Structure's logical interface (a bond member name, a VLAN interface, ...)."""

    __tablename__ = "abstract_network_interface"
    __table_args__ = (UniqueConstraint("structure_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(20))
    network_id: Mapped[int | None] = mapped_column(
        ForeignKey("network.id", ondelete="RESTRICT"), index=True
    )


# The kinds of Complex: what its members are (the subcontractor module that reads their
# capacity and the hosted foundation types placed on them). Matched without regard to case.
COMPLEX_TYPES = ("generic", "libvirt", "docker", "simulated")


class Complex(Timestamped, Base):
    """Structures that together provide Foundations (a VM cluster, a container host).

    A typed Complex (not ``generic``) hosts Foundations of its type's hosted foundation
    types on its members, within their capacity times the over-commit ratios."""

    __tablename__ = "complex"
    __table_args__ = (
        CheckConstraint("built_percentage BETWEEN 1 AND 100", name="built_percentage_range"),
        CheckConstraint(
            "cpu_overcommit >= 1 AND memory_overcommit >= 1 AND disk_overcommit >= 1",
            name="overcommit_at_least_one",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"), index=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    built_percentage: Mapped[int] = mapped_column(Integer, default=90)
    type: Mapped[str] = mapped_column(String(40), default="generic")
    cpu_overcommit: Mapped[float] = mapped_column(Float, default=1.0)
    memory_overcommit: Mapped[float] = mapped_column(Float, default=1.0)
    disk_overcommit: Mapped[float] = mapped_column(Float, default=1.0)


class ComplexMember(Base):
    """A Structure's membership of a Complex; a Structure is in at most one.

    ``endpoint`` is how the Complex type's module reaches the member (a libvirt URI, a Docker
    endpoint); ``password`` is a secret (never shown, logged or configured). The capacity is
    null until read from the host (or set by hand)."""

    __tablename__ = "complex_member"
    __table_args__ = (
        CheckConstraint(
            "cpu_count >= 0 AND memory_mb >= 0 AND disk_gb >= 0", name="capacity_not_negative"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    complex_id: Mapped[int] = mapped_column(
        ForeignKey("complex.id", ondelete="CASCADE"), index=True
    )
    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structure.id", ondelete="RESTRICT"), unique=True
    )
    endpoint: Mapped[str] = mapped_column(String(255), default="")
    username: Mapped[str] = mapped_column(String(64), default="")
    password: Mapped[str] = mapped_column(String(255), default="")
    cpu_count: Mapped[int | None] = mapped_column(Integer)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    disk_gb: Mapped[int | None] = mapped_column(Integer)
    capacity_read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # What the foundations placed on the member take: the sums of its placements, kept by
    # ``services.placement`` (place and release) so a placement reads no placement rows.
    allocated_cpus: Mapped[int] = mapped_column(Integer, default=0)
    allocated_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    allocated_disk_gb: Mapped[int] = mapped_column(Integer, default=0)


class FoundationPlacement(Base):
    """Where a hosted Foundation is placed: the member of its Complex that carries it and
    what it takes of the member's capacity (``pinned``: the caller chose the member)."""

    __tablename__ = "foundation_placement"
    __table_args__ = (
        CheckConstraint(
            "cpus >= 0 AND memory_mb >= 0 AND disk_gb >= 0", name="demand_not_negative"
        ),
    )

    foundation_id: Mapped[int] = mapped_column(
        ForeignKey("foundation.id", ondelete="CASCADE"), primary_key=True
    )
    complex_id: Mapped[int] = mapped_column(
        ForeignKey("complex.id", ondelete="RESTRICT"), index=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("complex_member.id", ondelete="RESTRICT"), index=True
    )
    cpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


def complex_state(member_count: int, built_count: int, built_percentage: int) -> str:
    if member_count == 0:
        return "planned"
    return "built" if 100 * built_count >= built_percentage * member_count else "planned"


class Dependency(Timestamped, Base):
    """A Foundation's dependency on a Structure or on another Dependency.

    The Foundation's create job waits until this is built; with ``link='hard'`` destroying
    the dependency destroys the Foundation too. Scripts run on ``script_structure`` (default
    ``structure``).
    """

    __tablename__ = "dependency"
    __table_args__ = (
        CheckConstraint("structure_id IS NOT NULL OR dependency_id IS NOT NULL", name="has_target"),
        CheckConstraint("link IN ('soft', 'hard')", name="link_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int | None] = mapped_column(
        ForeignKey("structure.id", ondelete="RESTRICT"), index=True
    )
    dependency_id: Mapped[int | None] = mapped_column(
        ForeignKey("dependency.id", ondelete="RESTRICT"), index=True
    )
    foundation_id: Mapped[int | None] = mapped_column(
        ForeignKey("foundation.id", ondelete="RESTRICT"), unique=True
    )
    script_structure_id: Mapped[int | None] = mapped_column(
        ForeignKey("structure.id", ondelete="RESTRICT"), index=True
    )
    link: Mapped[str] = mapped_column(String(4), default="soft")
    create_script_name: Mapped[str | None] = mapped_column(String(40))
    destroy_script_name: Mapped[str | None] = mapped_column(String(40))
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @property
    def state(self) -> str:
        return "planned" if self.built_at is None else "built"
