"""Every row a batch of targets' configurations is built from, in a fixed number of queries.

``Rows.load`` reads the targets, their blueprint chains (ordered parents, recursively), their
site chains and zones, the foundations (as ORM objects: plugins read them), interfaces,
addresses, address blocks, networks, VLANs and complex members, as plain column rows: never
the session's identity-mapped objects, which may be older than the generation just read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Self

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from contractor.errors import NotFound
from contractor.models import (
    AbstractNetworkInterface,
    AddressBlock,
    BaseAddress,
    BluePrint,
    BluePrintParent,
    Complex,
    ComplexMember,
    Foundation,
    Network,
    NetworkAddressBlock,
    RealNetworkInterface,
    Site,
    Structure,
    Zone,
)
from contractor.services.records import Record, is_a

__all__ = ["ConfigTarget", "Key", "Rows", "target_key"]

ConfigTarget = Site | BluePrint | Foundation | Structure | Complex
"""Anything with a configuration. The row only names the target: its sources are read fresh."""

Key = tuple[str, int]
"""A target as ``(kind, id)``: ``("structure", 7)``."""

_KINDS: Final = ("site", "blueprint", "foundation", "structure", "complex")
_CHUNK: Final = 5000  # ids per IN (...) list; stays below SQLite's variable limit


_TARGETS: Final = (
    (Structure, "structure"),
    (Foundation, "foundation"),
    (Site, "site"),
    (BluePrint, "blueprint"),
    (Complex, "complex"),
)


def target_key(target: ConfigTarget | Record) -> Key:
    """The target's key; ``target`` may be a record of its row (``services.records``)."""
    for model, kind in _TARGETS:
        if is_a(target, model):
            ident: int = target.id  # type: ignore[union-attr]
            return (kind, ident)
    named = target.model if isinstance(target, Record) else type(target)
    raise TypeError(f"{named.__name__} has no configuration")


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


async def _by_id(
    session: AsyncSession, ids: Iterable[int], *columns: InstrumentedAttribute[Any]
) -> dict[int, Any]:
    """Rows of ``columns`` (the first is their table's id) for ``ids``, by id."""
    found: dict[int, Any] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(select(*columns).where(columns[0].in_(chunk)))
        found.update((row[0], row) for row in rows)
    return found


async def _by_owner(
    session: AsyncSession,
    ids: Iterable[int],
    owner: InstrumentedAttribute[Any],
    *columns: InstrumentedAttribute[Any],
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[InstrumentedAttribute[Any]] = (),
) -> dict[int, list[Any]]:
    """Rows of ``owner`` and ``columns`` whose ``owner`` is one of ``ids`` (and ``where``
    holds), in a list per owner, each in ``order_by`` order."""
    found: dict[int, list[Any]] = {}
    for chunk in _chunks(ids):
        query = select(owner, *columns).where(owner.in_(chunk), *where).order_by(*order_by)
        for row in await session.execute(query):
            found.setdefault(row[0], []).append(row)
    return found


@dataclass
class Rows:
    """Every row a batch of targets needs, read as plain column rows (never the session's
    identity-mapped objects, which may be older than the generation just read), except the
    Foundations, which plugins need as ORM objects. ``Sources`` makes layers of them."""

    sites: dict[int, Any] = field(default_factory=dict)
    zones: dict[int, Any] = field(default_factory=dict)
    blueprints: dict[int, Any] = field(default_factory=dict)
    parents: dict[int, list[int]] = field(default_factory=dict)
    foundations: dict[int, Foundation] = field(default_factory=dict)
    structures: dict[int, Any] = field(default_factory=dict)
    complexes: dict[int, Any] = field(default_factory=dict)
    complex_members: dict[int, list[Any]] = field(default_factory=dict)
    structure_of_foundation: dict[int, int] = field(default_factory=dict)
    real_interfaces: dict[int, list[Any]] = field(default_factory=dict)
    abstract_interfaces: dict[int, list[Any]] = field(default_factory=dict)
    addresses: dict[int, list[Any]] = field(default_factory=dict)
    pointed: dict[int, Any] = field(default_factory=dict)
    blocks: dict[int, Any] = field(default_factory=dict)
    networks: dict[int, Any] = field(default_factory=dict)
    vlans: dict[tuple[int, int], int] = field(default_factory=dict)
    _ip_networks: dict[int, Any] = field(default_factory=dict)

    @classmethod
    async def load(
        cls, session: AsyncSession, targets: Sequence[ConfigTarget], *, fresh: bool = False
    ) -> Self:
        """``fresh``: reload Foundations already in the session from the database (their
        configurations go into a shared cache, so they must be as new as the generation)."""
        self = cls()
        wanted: dict[str, set[int]] = {kind: set() for kind in _KINDS}
        for target in targets:
            kind, ident = target_key(target)
            wanted[kind].add(ident)
        self.structures = await _by_id(
            session,
            wanted["structure"],
            Structure.id,
            Structure.hostname,
            Structure.site_id,
            Structure.blueprint_id,
            Structure.foundation_id,
            Structure.config_uuid,
            Structure.config_values,
            Structure.built_at,
            Structure.updated,
        )
        self.complexes = await _by_id(
            session,
            wanted["complex"],
            Complex.id,
            Complex.name,
            Complex.site_id,
            Complex.built_percentage,
            Complex.updated,
        )
        foundation_ids = wanted["foundation"] | {
            row.foundation_id for row in self.structures.values()
        }
        for chunk in _chunks(foundation_ids):
            query = select(Foundation).where(Foundation.id.in_(chunk))
            if fresh:
                query = query.execution_options(populate_existing=True)
            found = await session.execute(query)
            self.foundations.update((row.id, row) for row in found.scalars())
        for kind, loaded in (
            ("structure", self.structures),
            ("complex", self.complexes),
            ("foundation", self.foundations),
        ):
            gone = wanted[kind] - loaded.keys()
            if gone:
                raise NotFound(f"{kind} {min(gone)} no longer exists", field=kind)

        owners: list[Any] = [
            *self.structures.values(),
            *(self.foundations[ident] for ident in wanted["foundation"]),
        ]
        site_ids = wanted["site"] | {row.site_id for row in owners}
        site_ids |= {row.site_id for row in self.complexes.values()}
        await self._load_sites(session, site_ids)
        await self._load_blueprints(
            session, wanted["blueprint"] | {row.blueprint_id for row in owners}
        )
        gone = (wanted["site"] - self.sites.keys()) or (
            wanted["blueprint"] - self.blueprints.keys()
        )
        if gone:
            raise NotFound(f"site or blueprint {min(gone)} no longer exists")
        for chunk in _chunks(wanted["foundation"]):  # their structures, for _structure_id
            carried = await session.execute(
                select(Structure.foundation_id, Structure.id).where(
                    Structure.foundation_id.in_(chunk)
                )
            )
            self.structure_of_foundation.update((row[0], row[1]) for row in carried)
        if self.foundations:
            await self._load_networking(session)
        if self.complexes:
            await self._load_complex_members(session)
        return self

    async def _load_sites(self, session: AsyncSession, site_ids: set[int]) -> None:
        if not site_ids:
            return
        for chunk in _chunks(site_ids):
            chain = (
                select(Site.id, Site.parent_id)
                .where(Site.id.in_(chunk))
                .cte("site_chain", recursive=True)
            )
            chain = chain.union(
                select(Site.id, Site.parent_id).join(chain, Site.id == chain.c.parent_id)
            )
            rows = await session.execute(
                select(
                    Site.id,
                    Site.name,
                    Site.parent_id,
                    Site.zone_id,
                    Site.config_values,
                    Site.updated,
                ).where(Site.id.in_(select(chain.c.id)))
            )
            self.sites.update((row.id, row) for row in rows)
        zone_ids = {site.zone_id for site in self.sites.values() if site.zone_id is not None}
        if zone_ids:
            up = (
                select(Zone.id, Zone.parent_id)
                .where(Zone.id.in_(sorted(zone_ids)))
                .cte("zone_chain", recursive=True)
            )
            up = up.union(select(Zone.id, Zone.parent_id).join(up, Zone.id == up.c.parent_id))
            zones = await session.execute(
                select(Zone.id, Zone.name, Zone.parent_id).where(Zone.id.in_(select(up.c.id)))
            )
            self.zones.update((row.id, row) for row in zones)

    async def _load_blueprints(self, session: AsyncSession, blueprint_ids: set[int]) -> None:
        if not blueprint_ids:
            return
        links = (
            select(BluePrintParent.child_id, BluePrintParent.parent_id, BluePrintParent.position)
            .where(BluePrintParent.child_id.in_(sorted(blueprint_ids)))
            .cte("blueprint_links", recursive=True)
        )
        links = links.union(
            select(
                BluePrintParent.child_id, BluePrintParent.parent_id, BluePrintParent.position
            ).join(links, BluePrintParent.child_id == links.c.parent_id)
        )
        rows = await session.execute(
            select(links.c.child_id, links.c.parent_id).order_by(links.c.child_id, links.c.position)
        )
        all_ids = set(blueprint_ids)
        for child, parent in rows:
            self.parents.setdefault(child, []).append(parent)
            all_ids.add(parent)
        self.blueprints = await _by_id(
            session,
            all_ids,
            BluePrint.id,
            BluePrint.name,
            BluePrint.config_values,
            BluePrint.updated,
        )

    async def _load_networking(self, session: AsyncSession) -> None:
        """Interfaces of the foundations and structures, the structures' addresses, their
        blocks, networks and VLANs."""
        foundation_ids = list(self.foundations)
        structure_ids = list(self.structures)
        real = RealNetworkInterface
        self.real_interfaces = await _by_owner(
            session,
            foundation_ids,
            real.foundation_id,
            real.name,
            real.physical_location,
            real.mac,
            real.is_provisioning,
            real.link_name,
            real.network_id,
            order_by=(real.foundation_id, real.id),
        )
        abstract = AbstractNetworkInterface
        self.abstract_interfaces = await _by_owner(
            session,
            structure_ids,
            abstract.structure_id,
            abstract.name,
            abstract.network_id,
            order_by=(abstract.structure_id, abstract.id),
        )
        address = BaseAddress
        self.addresses = await _by_owner(
            session,
            structure_ids,
            address.structure_id,
            address.interface_name,
            address.alias_index,
            address.is_primary,
            address.address_block_id,
            address.offset,
            address.pointer_id,
            where=(address.kind == "address",),
            order_by=(address.structure_id, address.alias_index, address.id),
        )
        interfaces = [*self.real_interfaces.values(), *self.abstract_interfaces.values()]
        network_ids = {i.network_id for rows in interfaces for i in rows} - {None}
        held = [a for rows in self.addresses.values() for a in rows]
        pointer_ids = {a.pointer_id for a in held} - {None}
        self.pointed = await _by_id(
            session, pointer_ids, address.id, address.address_block_id, address.offset
        )
        block_ids = {a.address_block_id for a in [*held, *self.pointed.values()]} - {None}
        self.blocks = await _by_id(
            session,
            block_ids,
            AddressBlock.id,
            AddressBlock.subnet,
            AddressBlock.prefix,
            AddressBlock.gateway_offset,
        )
        for chunk in _chunks(network_ids):
            nets = await session.execute(
                select(Network.id, Network.name, Network.mtu).where(Network.id.in_(chunk))
            )
            self.networks.update((row.id, row) for row in nets)
            vlans = await session.execute(
                select(
                    NetworkAddressBlock.network_id,
                    NetworkAddressBlock.address_block_id,
                    NetworkAddressBlock.vlan,
                ).where(
                    NetworkAddressBlock.network_id.in_(chunk),
                    NetworkAddressBlock.vlan.is_not(None),
                )
            )
            for network_id, block_id, vlan in vlans:
                if vlan is not None:
                    self.vlans[(network_id, block_id)] = vlan

    async def _load_complex_members(self, session: AsyncSession) -> None:
        rows = await session.execute(
            select(ComplexMember.complex_id, Structure.hostname, Structure.built_at)
            .join(Structure, Structure.id == ComplexMember.structure_id)
            .where(ComplexMember.complex_id.in_(sorted(self.complexes)))
            .order_by(ComplexMember.complex_id, Structure.hostname)
        )
        for row in rows:
            self.complex_members.setdefault(row.complex_id, []).append(row)
