"""The configuration of a target, from the database: its layers, the composed map, a cache.

``config_layers`` builds the exact layer list of the original (``model-original.md`` §9.3) for
a Site, a Foundation or Structure BluePrint, a Foundation, a Structure and a Complex::

    Site              site chain (root first), _site
    BluePrint         blueprint chain (post-order over ordered parents), _blueprint
    Foundation        its blueprint chain, _blueprint, its site chain, _site,
                      foundation attributes, _structure_id (when it carries a structure)
    Structure         its blueprint chain, _blueprint, its site chain, _site,
                      foundation attributes, structure config_values, structure attributes
    Complex           its site chain, _site, complex attributes   (the original refuses)

and always the globals last (``__last_modified``, ``__timestamp``, ``__contractor_host``,
``__pxe_location``). The Foundation's blueprint is not part of a Structure's configuration; the
class list for ``:Class`` keys is the foundation type's (empty for Sites, BluePrints and
Complexes). Job ids (``_structure_job_id``, ``_foundation_job_id``) join the attributes when
the job engine lands.

``composed_config`` merges (and, for Foundations, Structures and Complexes, renders) the layers;
``composed_configs`` does it for many targets with a fixed number of queries; ``explain_config``
reports where each key comes from.

Caching. A ``ConfigCache`` (one per process, on ``app.state.config_cache``) keeps composed
configurations and the merged blueprint+site prefixes they share, tagged with the *config
generation*: a counter in the ``config_generation`` table that every service changing a
configuration source bumps in the same transaction (``config_sources_changed``, bumped just
before the transaction commits). A reader reads the counter first (one indexed single-row
query) and uses the cache only while it matches, so a change committed by any process is seen
by every process at its next read; a session holding uncommitted changes bypasses the cache.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio.to_thread
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from contractor.config import Explanation, explain, merge, parse_key, render
from contractor.config.render import RenderMemo
from contractor.errors import ConfigError, InvalidInput, NotFound
from contractor.models import (
    PXE,
    AbstractNetworkInterface,
    AddressBlock,
    BaseAddress,
    BluePrint,
    BluePrintParent,
    Complex,
    ComplexMember,
    ConfigGeneration,
    Foundation,
    Network,
    NetworkAddressBlock,
    RealNetworkInterface,
    Site,
    Structure,
    Zone,
    complex_state,
    utcnow,
)
from contractor.plugins import foundation_types
from contractor.runtime import gc_paused
from contractor.settings import Settings

__all__ = [
    "ConfigCache",
    "ConfigListing",
    "ConfigTarget",
    "NamedLayer",
    "boot_pxe",
    "composed_config",
    "composed_configs",
    "config_layers",
    "config_sources_changed",
    "current_generation",
    "explain_config",
    "install_generation_bump",
    "list_structure_configs",
    "structure_by_config_uuid",
]

log = logging.getLogger(__name__)

ConfigTarget = Site | BluePrint | Foundation | Structure | Complex
"""Anything with a configuration. The row only names the target: its sources are read fresh."""

NamedLayer = tuple[str, Mapping[str, Any], str]
"""``(kind, mapping, name)``: kind ``"values"`` or ``"attributes"``; see ``contractor.config``."""

EPOCH: Final = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
"""``__last_modified`` when nothing has a timestamp (the original's start value)."""

# Foundations, Structures and Complexes are served rendered; Sites and BluePrints unrendered.
_RENDERED_KINDS: Final = frozenset({"foundation", "structure", "complex"})
_KINDS: Final = ("site", "blueprint", "foundation", "structure", "complex")

# Plugin attributes whose names contain one of these are dropped: a configuration is served
# to anything that knows a config UUID and must never carry a credential.
_SECRET_WORDS: Final = ("password", "passwd", "secret", "credential", "private_key")

_GC_PAUSE_FROM: Final = 100  # targets in one call worth pausing the collector for
_THREAD_FROM: Final = 100  # targets to compose before it is worth a worker thread
_CHUNK: Final = 5000  # ids per IN (...) list; stays below SQLite's variable limit
_GENERATION_ROW: Final = 1
_CHANGED: Final = "contractor.config.changed"


# -- invalidation ------------------------------------------------------------------------


def config_sources_changed(session: AsyncSession) -> None:
    """Record that this transaction changes something configurations are built from.

    Services call it whenever they change a Site, BluePrint, Foundation, Structure, interface,
    address or anything else a layer reads. The config generation is bumped just before the
    transaction commits (so its row lock is held only for the commit), and until then this
    session never reads or fills a shared ``ConfigCache``.
    """
    session.sync_session.info[_CHANGED] = True


def install_generation_bump(session_class: type[Session]) -> None:
    """Bump the config generation at the commit of every session of ``session_class`` that
    ``config_sources_changed`` marked (``contractor.db`` calls this for each session factory
    it builds, each with a class of its own: install it once per class)."""
    event.listen(session_class, "before_commit", _bump_before_commit)


def _bump_before_commit(session: Session) -> None:
    if session.in_nested_transaction() or not session.info.get(_CHANGED):
        return  # a savepoint: the outermost commit bumps
    session.execute(
        update(ConfigGeneration)
        .where(ConfigGeneration.id == _GENERATION_ROW)
        .values(value=ConfigGeneration.value + 1)
    )
    session.info[_CHANGED] = False


def _has_pending_changes(session: AsyncSession) -> bool:
    return bool(session.sync_session.info.get(_CHANGED))


async def current_generation(session: AsyncSession) -> int:
    """The committed config generation as this transaction sees it; -1 when the counter row
    is missing (a database not built by the migrations), which disables caching: without
    the row no change could ever be noticed."""
    query = select(ConfigGeneration.value).where(ConfigGeneration.id == _GENERATION_ROW)
    value = (await session.execute(query)).scalar_one_or_none()
    return -1 if value is None else int(value)


# -- lookups for the /config endpoints -------------------------------------------------


async def structure_by_config_uuid(session: AsyncSession, config_uuid: str) -> Structure:
    """The Structure answering to ``config_uuid`` (any letter case); NotFound otherwise,
    malformed UUIDs included (a booting machine learns nothing from the difference)."""
    try:
        normalised = str(uuid.UUID(config_uuid))
    except (ValueError, AttributeError, TypeError):
        normalised = None
    structure = None
    if normalised is not None:
        query = select(Structure).where(Structure.config_uuid == normalised)
        structure = (await session.execute(query)).scalar_one_or_none()
    if structure is None:
        raise NotFound(f"no configuration has the UUID {config_uuid!r}", field="config_uuid")
    return structure


async def boot_pxe(session: AsyncSession, target: Structure | Foundation) -> PXE | None:
    """What the target boots next: the PXE of its foundation's provisioning interface."""
    foundation_id = target.foundation_id if isinstance(target, Structure) else target.id
    query = (
        select(PXE)
        .join(RealNetworkInterface, RealNetworkInterface.pxe_id == PXE.id)
        .where(
            RealNetworkInterface.foundation_id == foundation_id,
            RealNetworkInterface.is_provisioning.is_(True),
        )
    )
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True)
class ConfigListing:
    config_uuid: str
    hostname: str
    site: str
    structure_id: int


async def list_structure_configs(
    session: AsyncSession,
    *,
    site: str | None = None,
    hostname: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ConfigListing]:
    """Structures with their config UUIDs, by site and hostname (for authenticated users)."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be from 1 to 1000", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    query = (
        select(Structure.config_uuid, Structure.hostname, Site.name, Structure.id)
        .join(Site, Site.id == Structure.site_id)
        .order_by(Site.name, Structure.hostname)
        .limit(limit)
        .offset(offset)
    )
    if site is not None:
        query = query.where(Site.name == site)
    if hostname is not None:
        query = query.where(Structure.hostname == hostname)
    rows = await session.execute(query)
    return [ConfigListing(*row) for row in rows]


# -- the cache ---------------------------------------------------------------------------

_Key = tuple[str, int]
_PrefixKey = tuple[int | None, int | None, tuple[str, ...]]


@dataclass
class _Prefix:
    values: dict[str, Any]
    volatile: bool  # some string mentions __timestamp
    last_modified: dt.datetime


@dataclass
class _Entry:
    kind: str
    merged: dict[str, Any]
    volatile: bool
    rendered: dict[bool, dict[str, Any]] = field(default_factory=dict)  # by "for JSON"


class ConfigCache:
    """Composed configurations of one process, valid for one config generation.

    Holds the merged blueprint-chain + site-chain prefix of each (blueprint, site, class list)
    once, and each target's merged (and, on first use, rendered) configuration. Everything is
    dropped when a newer generation is seen; a reader that saw an older generation than the
    cache holds neither reads nor writes it. At most ``max_entries`` targets are kept (the
    oldest go first). Values handed out share nested objects with the cache: treat them as
    read-only.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.generation = -1
        self.hits = 0
        self.misses = 0
        self._entries: dict[_Key, _Entry] = {}
        self._prefixes: dict[_PrefixKey, _Prefix] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._prefixes.clear()

    def _use(self, generation: int) -> bool:
        """Move to ``generation`` if it is newer; whether the cache may be used for it."""
        if generation > self.generation:
            self.clear()
            self.generation = generation
        return generation == self.generation

    def _get(self, key: _Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def _put(self, key: _Key, entry: _Entry) -> None:
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]


# -- public API --------------------------------------------------------------------------


async def config_layers(
    session: AsyncSession, target: ConfigTarget, *, settings: Settings
) -> list[NamedLayer]:
    """The target's layers in merge order, globals included (see the module docstring)."""
    sources = await _Sources.load(session, [target])
    now = utcnow()
    key = _key(target)
    return [*sources.prefix_layers(key), *sources.tail_layers(key, settings, now)]


async def explain_config(
    session: AsyncSession, target: ConfigTarget, *, settings: Settings
) -> Explanation:
    """For every key of the target's (unrendered) configuration, which layer set it and which
    later layers changed, masked or filtered it."""
    sources = await _Sources.load(session, [target])
    key = _key(target)
    layers = [*sources.prefix_layers(key), *sources.tail_layers(key, settings, utcnow())]
    return explain(layers, sources.class_list(key))


async def composed_config(
    session: AsyncSession,
    target: ConfigTarget,
    *,
    settings: Settings,
    rendered: bool | None = None,
    cache: ConfigCache | None = None,
    for_json: bool = False,
) -> dict[str, Any]:
    """The target's merged configuration.

    ``rendered=None`` renders where the original does (Foundations and Structures, and
    Complexes here) and leaves Sites and BluePrints unrendered; ``True``/``False`` force it.
    ``for_json`` turns datetimes into ISO strings *before* rendering, as the original's
    ``/config`` HTTP handler does (``__last_modified`` then renders as ``2024-01-01T00:00:00``
    instead of ``2024-01-01 00:00:00``). With a ``cache`` the result is reused until a
    configuration source changes; nested values are shared with it (read-only).
    Raises ``ConfigError`` when the values do not merge or render.
    """
    (result,) = await composed_configs(
        session, [target], settings=settings, rendered=rendered, cache=cache, for_json=for_json
    )
    return result


async def composed_configs(
    session: AsyncSession,
    targets: Sequence[ConfigTarget],
    *,
    settings: Settings,
    rendered: bool | None = None,
    cache: ConfigCache | None = None,
    for_json: bool = False,
) -> list[dict[str, Any]]:
    """``composed_config`` for many targets, in order, with a fixed number of queries (one
    when the cache holds them all). Large cold batches are composed in a worker thread, so
    the event loop keeps serving other requests meanwhile."""
    now = utcnow()
    generation = -1
    if cache is not None and not _has_pending_changes(session):
        generation = await current_generation(session)
    use_cache = cache is not None and generation >= 0 and cache._use(generation)
    keys = [_key(target) for target in targets]
    entries: dict[_Key, _Entry] = {}
    missing: list[ConfigTarget] = []
    for target, key in zip(targets, keys, strict=True):
        entry = cache._get(key) if cache is not None and use_cache else None
        if entry is not None:
            entries[key] = entry
        elif key not in entries:
            entries[key] = _PLACEHOLDER
            missing.append(target)
    sources = await _Sources.load(session, missing, fresh=use_cache) if missing else None
    # Built here and stored at the end, if the cache is still at this generation: while this
    # call awaited, another one may have moved it on, and what was read here is older.
    prefixes = dict(cache._prefixes) if cache is not None and use_cache else {}
    built: dict[_Key, _Entry] = {}

    def compose() -> list[dict[str, Any]]:
        memo = RenderMemo()
        with gc_paused(len(targets) >= _GC_PAUSE_FROM):
            if sources is not None:
                for target in missing:
                    key = _key(target)
                    entries[key] = built[key] = sources.entry(key, settings, now, prefixes)
            return [_finish(entries[key], rendered, for_json, now, memo) for key in keys]

    if len(missing) >= _THREAD_FROM:
        results = await anyio.to_thread.run_sync(compose)
    else:
        results = compose()
    if cache is not None and use_cache and cache.generation == generation:
        cache._prefixes.update(prefixes)
        for key, entry in built.items():
            cache._put(key, entry)
    return results


_PLACEHOLDER: Final = _Entry(kind="", merged={}, volatile=True)


def _key(target: ConfigTarget) -> _Key:
    if isinstance(target, Structure):
        return ("structure", target.id)
    if isinstance(target, Foundation):
        return ("foundation", target.id)
    if isinstance(target, Site):
        return ("site", target.id)
    if isinstance(target, BluePrint):
        return ("blueprint", target.id)
    if isinstance(target, Complex):
        return ("complex", target.id)
    raise TypeError(f"{type(target).__name__} has no configuration")


def _finish(
    entry: _Entry,
    rendered: bool | None,
    for_json: bool,
    now: dt.datetime,
    memo: RenderMemo | None = None,
) -> dict[str, Any]:
    """A target's result: the cached map with a fresh ``__timestamp``, rendered if asked."""
    stamp: Any = now.isoformat() if for_json else now
    if not (entry.kind in _RENDERED_KINDS if rendered is None else rendered):
        values = dict(entry.merged)
        values["__timestamp"] = now
        return _json_ready(values) if for_json else values
    done = None if entry.volatile else entry.rendered.get(for_json)
    if done is None:
        values = dict(entry.merged)
        values["__timestamp"] = now
        done = render(_json_ready(values) if for_json else values, memo=memo)
        if not entry.volatile:
            entry.rendered[for_json] = done
    result = dict(done)
    result["__timestamp"] = stamp
    return result


def _json_ready(value: Any) -> Any:
    """Datetimes as ISO strings and keys as strings, at any depth (the original's
    ``_fromPythonMap``)."""
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else str(key): _json_ready(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _mentions_timestamp(values: Mapping[str, Any]) -> bool:
    """Whether any value (at any depth) mentions ``__timestamp``; then the rendered result
    changes on every read and is not kept. ``repr`` is one C-speed walk; a false positive
    (a nested key, or text that is no template) only costs a re-render."""
    return "__timestamp" in repr(list(values.values()))


# -- sources: every row a batch of targets needs, in a fixed number of queries -------------


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _newest(*stamps: dt.datetime | None) -> dt.datetime:
    return max((stamp for stamp in stamps if stamp is not None), default=EPOCH)


@dataclass
class _Sources:
    """Every row a batch of targets needs, read as plain column rows (never the session's
    identity-mapped objects, which may be older than the generation just read), except the
    Foundations, which plugins need as ORM objects."""

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
    ) -> _Sources:
        """``fresh``: reload Foundations already in the session from the database (their
        configurations go into a shared cache, so they must be as new as the generation)."""
        self = cls()
        wanted: dict[str, set[int]] = {kind: set() for kind in _KINDS}
        for target in targets:
            kind, ident = _key(target)
            wanted[kind].add(ident)
        for chunk in _chunks(wanted["structure"]):
            rows = await session.execute(
                select(
                    Structure.id,
                    Structure.hostname,
                    Structure.site_id,
                    Structure.blueprint_id,
                    Structure.foundation_id,
                    Structure.config_uuid,
                    Structure.config_values,
                    Structure.built_at,
                    Structure.updated,
                ).where(Structure.id.in_(chunk))
            )
            self.structures.update((row.id, row) for row in rows)
        for chunk in _chunks(wanted["complex"]):
            rows = await session.execute(
                select(
                    Complex.id,
                    Complex.name,
                    Complex.site_id,
                    Complex.built_percentage,
                    Complex.updated,
                ).where(Complex.id.in_(chunk))
            )
            self.complexes.update((row.id, row) for row in rows)
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
        for chunk in _chunks(all_ids):
            found = await session.execute(
                select(
                    BluePrint.id, BluePrint.name, BluePrint.config_values, BluePrint.updated
                ).where(BluePrint.id.in_(chunk))
            )
            self.blueprints.update((row.id, row) for row in found)

    async def _load_networking(self, session: AsyncSession) -> None:
        """Interfaces of the foundations and structures, the structures' addresses, their
        blocks, networks and VLANs."""
        foundation_ids = list(self.foundations)
        structure_ids = list(self.structures)
        network_ids: set[int] = set()
        real = RealNetworkInterface
        for chunk in _chunks(foundation_ids):
            rows = await session.execute(
                select(
                    real.foundation_id,
                    real.name,
                    real.physical_location,
                    real.mac,
                    real.is_provisioning,
                    real.link_name,
                    real.network_id,
                )
                .where(real.foundation_id.in_(chunk))
                .order_by(real.foundation_id, real.id)
            )
            for row in rows:
                self.real_interfaces.setdefault(row.foundation_id, []).append(row)
                if row.network_id is not None:
                    network_ids.add(row.network_id)
        abstract = AbstractNetworkInterface
        address = BaseAddress
        block_ids: set[int] = set()
        pointer_ids: set[int] = set()
        for chunk in _chunks(structure_ids):
            rows = await session.execute(
                select(abstract.structure_id, abstract.name, abstract.network_id)
                .where(abstract.structure_id.in_(chunk))
                .order_by(abstract.structure_id, abstract.id)
            )
            for row in rows:
                self.abstract_interfaces.setdefault(row.structure_id, []).append(row)
                if row.network_id is not None:
                    network_ids.add(row.network_id)
            rows = await session.execute(
                select(
                    address.structure_id,
                    address.interface_name,
                    address.alias_index,
                    address.is_primary,
                    address.address_block_id,
                    address.offset,
                    address.pointer_id,
                )
                .where(address.structure_id.in_(chunk), address.kind == "address")
                .order_by(address.structure_id, address.alias_index, address.id)
            )
            for row in rows:
                self.addresses.setdefault(row.structure_id, []).append(row)
                if row.address_block_id is not None:
                    block_ids.add(row.address_block_id)
                if row.pointer_id is not None:
                    pointer_ids.add(row.pointer_id)
        for chunk in _chunks(pointer_ids):
            rows = await session.execute(
                select(address.id, address.address_block_id, address.offset).where(
                    address.id.in_(chunk)
                )
            )
            for row in rows:
                self.pointed[row.id] = row
                if row.address_block_id is not None:
                    block_ids.add(row.address_block_id)
        for chunk in _chunks(block_ids):
            found = await session.execute(
                select(
                    AddressBlock.id,
                    AddressBlock.subnet,
                    AddressBlock.prefix,
                    AddressBlock.gateway_offset,
                ).where(AddressBlock.id.in_(chunk))
            )
            self.blocks.update((row.id, row) for row in found)
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

    # -- layers --------------------------------------------------------------------------

    def _prefix_key(self, key: _Key) -> _PrefixKey:
        kind, ident = key
        if kind == "structure":
            structure = self.structures[ident]
            return (structure.blueprint_id, structure.site_id, self.class_list(key))
        if kind == "foundation":
            foundation = self.foundations[ident]
            return (foundation.blueprint_id, foundation.site_id, self.class_list(key))
        if kind == "site":
            return (None, ident, ())
        if kind == "blueprint":
            return (ident, None, ())
        return (None, self.complexes[ident].site_id, ())

    def class_list(self, key: _Key) -> tuple[str, ...]:
        kind, ident = key
        if kind == "structure":
            foundation = self.foundations[self.structures[ident].foundation_id]
        elif kind == "foundation":
            foundation = self.foundations[ident]
        else:
            return ()
        plugin = foundation_types().get(foundation.type)
        return tuple(plugin.class_list) if plugin is not None else ()

    def blueprint_chain(self, blueprint_id: int) -> list[Any]:
        """Post-order over ordered parents; a shared ancestor once per path (§9.3)."""
        order: list[Any] = []

        def visit(node: int) -> None:
            for parent in self.parents.get(node, ()):
                visit(parent)
            order.append(self.blueprints[node])

        visit(blueprint_id)
        return order

    def site_chain(self, site_id: int) -> list[Any]:
        """The root first, the site last."""
        chain: list[Any] = []
        current: int | None = site_id
        while current is not None and len(chain) <= len(self.sites):
            site = self.sites[current]
            chain.append(site)
            current = site.parent_id
        return chain[::-1]

    def _prefix_parts(self, prefix: _PrefixKey) -> tuple[list[NamedLayer], dt.datetime]:
        blueprint_id, site_id, _classes = prefix
        layers: list[NamedLayer] = []
        stamps: list[dt.datetime] = []
        if blueprint_id is not None:
            chain = self.blueprint_chain(blueprint_id)
            layers += [("values", bp.config_values, f"blueprint {bp.name}") for bp in chain]
            layers.append(("attributes", {"_blueprint": chain[-1].name}, "_blueprint"))
            stamps += [bp.updated for bp in chain]
        if site_id is not None:
            sites = self.site_chain(site_id)
            layers += [("values", site.config_values, f"site {site.name}") for site in sites]
            layers.append(("attributes", {"_site": sites[-1].name}, "_site"))
            stamps += [site.updated for site in sites]
        return layers, _newest(*stamps)

    def prefix_layers(self, key: _Key) -> list[NamedLayer]:
        return self._prefix_parts(self._prefix_key(key))[0]

    def tail_layers(self, key: _Key, settings: Settings, now: dt.datetime) -> list[NamedLayer]:
        """Everything after the blueprint and site chains, globals included."""
        layers, last_modified = self._tail_parts(key)
        prefix_modified = self._prefix_parts(self._prefix_key(key))[1]
        layers.append(
            (
                "attributes",
                _globals(_newest(last_modified, prefix_modified), now, settings),
                "globals",
            )
        )
        return layers

    def _tail_parts(self, key: _Key) -> tuple[list[NamedLayer], dt.datetime]:
        kind, ident = key
        if kind == "structure":
            structure = self.structures[ident]
            foundation = self.foundations[structure.foundation_id]
            name = f"structure {structure.hostname}"
            return [
                (
                    "attributes",
                    self.foundation_attributes(foundation),
                    f"foundation {foundation.locator}",
                ),
                ("values", structure.config_values, name),
                ("attributes", self.structure_attributes(structure), f"{name} attributes"),
            ], _newest(foundation.updated, structure.updated)
        if kind == "foundation":
            foundation = self.foundations[ident]
            layers: list[NamedLayer] = [
                (
                    "attributes",
                    self.foundation_attributes(foundation),
                    f"foundation {foundation.locator}",
                )
            ]
            structure_id = self.structure_of_foundation.get(foundation.id)
            if structure_id is not None:
                layers.append(("attributes", {"_structure_id": structure_id}, "_structure_id"))
            return layers, foundation.updated
        if kind == "complex":
            complex_ = self.complexes[ident]
            return [
                (
                    "attributes",
                    self.complex_attributes(complex_),
                    f"complex {complex_.name}",
                )
            ], complex_.updated
        return [], EPOCH

    # -- attributes (§9.5) ---------------------------------------------------------------

    def foundation_attributes(self, foundation: Foundation) -> dict[str, Any]:
        provisioning = self._provisioning_interface(foundation.id)
        plugin = foundation_types().get(foundation.type)
        attributes: dict[str, Any] = {
            "_provisioning_interface": provisioning.physical_location if provisioning else None,
            "_provisioning_interface_mac": provisioning.mac if provisioning else None,
            "_foundation_id": foundation.locator,
            "_foundation_type": foundation.type,
            "_foundation_state": foundation.state,
            "_foundation_class_list": list(plugin.class_list) if plugin else [],
            "_foundation_locator": foundation.locator,
            "_foundation_id_map": foundation.id_map,
            "_console": "console",
        }
        if plugin is not None:
            for name, value in plugin.config_attributes(foundation).items():
                if any(word in name.lower() for word in _SECRET_WORDS):
                    log.warning(
                        "foundation type %r offers config attribute %r, which looks like a "
                        "secret; it is left out of the configuration",
                        foundation.type,
                        name,
                    )
                    continue
                attributes[name] = value
        return attributes

    def _provisioning_interface(self, foundation_id: int) -> Any:
        for interface in self.real_interfaces.get(foundation_id, ()):
            if interface.is_provisioning:
                return interface
        return None

    def structure_attributes(self, structure: Any) -> dict[str, Any]:
        site = self.sites[structure.site_id]
        domain = self._zone_fqdn(site.zone_id) if site.zone_id is not None else None
        addresses = self.addresses.get(structure.id, [])
        real = self.real_interfaces.get(structure.foundation_id, [])
        abstract = self.abstract_interfaces.get(structure.id, [])
        provisioning = self._provisioning_interface(structure.foundation_id)
        primary = next((a for a in addresses if a.is_primary), None)

        provisioning_address = None
        if provisioning is not None:
            on_it = [a for a in addresses if a.interface_name == provisioning.name]
            if primary is not None and primary.interface_name == provisioning.name:
                provisioning_address = self._address_dict(primary)
            elif on_it:
                provisioning_address = self._address_dict(on_it[0])

        primary_interface: Any = None
        if primary is not None:
            primary_interface = next(
                (i for i in real if i.name == primary.interface_name),
                next((i for i in abstract if i.name == primary.interface_name), None),
            )

        interface_map: dict[str, Any] = {}
        for interface in real:
            config = self._interface_config(interface.name, interface.network_id)
            config["mac"] = interface.mac
            config["physical_location"] = interface.physical_location
            config["link_name"] = interface.link_name
            config["address_list"] = self._address_list(addresses, interface)
            interface_map[interface.name] = config
        for interface in abstract:
            config = self._interface_config(interface.name, interface.network_id)
            config["address_list"] = self._address_list(addresses, interface)
            interface_map[interface.name] = config

        return {
            "_structure_id": structure.id,
            "_structure_state": "planned" if structure.built_at is None else "built",
            "_structure_config_uuid": structure.config_uuid,
            "_hostname": structure.hostname,
            "_domain_name": domain,
            "_fqdn": f"{structure.hostname}.{domain}" if domain else structure.hostname,
            "_provisioning_interface": provisioning.name if provisioning else None,
            "_provisioning_interface_mac": provisioning.mac if provisioning else None,
            "_provisioning_address": provisioning_address,
            "_primary_interface": primary_interface.name if primary_interface else None,
            "_primary_interface_mac": getattr(primary_interface, "mac", None),
            "_primary_address": self._address_dict(primary) if primary is not None else None,
            "_interface_map": interface_map,
        }

    def complex_attributes(self, complex_: Any) -> dict[str, Any]:
        members = self.complex_members.get(complex_.id, [])
        built = sum(1 for member in members if member.built_at is not None)
        return {
            "_complex_id": complex_.id,
            "_complex_name": complex_.name,
            "_complex_state": complex_state(len(members), built, complex_.built_percentage),
            "_complex_built_percentage": complex_.built_percentage,
            "_complex_members": [member.hostname for member in members],
        }

    def _zone_fqdn(self, zone_id: int) -> str:
        labels: list[str] = []
        current: int | None = zone_id
        while current is not None and len(labels) <= len(self.zones):
            zone = self.zones[current]
            labels.append(zone.name)
            current = zone.parent_id
        return ".".join(labels)

    def _interface_config(self, name: str, network_id: int | None) -> dict[str, Any]:
        network = self.networks.get(network_id) if network_id is not None else None
        config: dict[str, Any] = {"name": name, "network": network.name if network else None}
        if network is not None and network.mtu is not None:
            config["mtu"] = network.mtu
        return config

    def _address_list(self, addresses: list[Any], interface: Any) -> list[dict[str, Any]]:
        result = []
        for address in addresses:
            if address.interface_name != interface.name:
                continue
            item = self._address_dict(address)
            block_id = self._location(address)[0]
            if interface.network_id is not None and block_id is not None:
                vlan = self.vlans.get((interface.network_id, block_id))
                if vlan is not None:
                    item["vlan"] = vlan
            result.append(item)
        return result

    def _location(self, address: Any) -> tuple[int | None, int | None]:
        """(block id, offset) of an address, following its pointer."""
        if address.pointer_id is not None and address.pointer_id in self.pointed:
            target = self.pointed[address.pointer_id]
            return target.address_block_id, target.offset
        return address.address_block_id, address.offset

    def _address_dict(self, address: Any) -> dict[str, Any]:
        """The original's ``Address.as_dict`` (alias index 0, the interface's own address,
        is ``None`` there)."""
        block_id, offset = self._location(address)
        ip = netmask = subnet = gateway = prefix = None
        if block_id is not None and offset is not None:
            block = self.blocks[block_id]
            network = self._ip_networks.get(block_id)
            if network is None:
                network = ipaddress.ip_network(f"{block.subnet}/{block.prefix}")
                self._ip_networks[block_id] = network
            ip = str(network.network_address + offset)
            netmask = str(network.netmask)
            subnet = block.subnet
            prefix = block.prefix
            if block.gateway_offset is not None:
                gateway = str(network.network_address + block.gateway_offset)
        return {
            "address": ip,
            "netmask": netmask,
            "prefix": prefix,
            "subnet": subnet,
            "gateway": gateway,
            "auto": True,
            "alias_index": address.alias_index or None,
            "primary": bool(address.is_primary),
        }

    # -- composing -----------------------------------------------------------------------

    def prefix(self, key: _Key, prefixes: dict[_PrefixKey, _Prefix]) -> _Prefix:
        prefix_key = self._prefix_key(key)
        found = prefixes.get(prefix_key)
        if found is None:
            layers, last_modified = self._prefix_parts(prefix_key)
            values = merge(layers, prefix_key[2])
            found = prefixes[prefix_key] = _Prefix(
                values=values,
                volatile=_mentions_timestamp(values),
                last_modified=last_modified,
            )
        return found

    def entry(
        self,
        key: _Key,
        settings: Settings,
        now: dt.datetime,
        prefixes: dict[_PrefixKey, _Prefix],
    ) -> _Entry:
        """Merge ``key``'s configuration on top of its (shared) blueprint+site prefix."""
        prefix = self.prefix(key, prefixes)
        tail, last_modified = self._tail_parts(key)
        tail.append(
            (
                "attributes",
                _globals(_newest(prefix.last_modified, last_modified), now, settings),
                "globals",
            )
        )
        values = _merge_onto(prefix.values, tail, self._prefix_key(key)[2])
        volatile = prefix.volatile or any(_mentions_timestamp(layer[1]) for layer in tail)
        return _Entry(kind=key[0], merged=values, volatile=volatile)


def _merge_onto(
    base: Mapping[str, Any], layers: Sequence[NamedLayer], class_list: tuple[str, ...]
) -> dict[str, Any]:
    """``merge([("attributes", base), *layers])`` without deep-copying all of ``base``.

    The result shares the values of ``base`` that no layer touches (so ``base``, a cached
    prefix, must never be mutated, and neither may the result's nested values). Attribute
    layers only replace keys; a values layer may change a value in place, so the keys it
    names are copied and merged on their own, then put back: kept keys stay where they are,
    new keys are appended in the order the layer set them, and masked keys go. A values
    layer deletes a key only with ``~``, which runs last in its layer, so a deleted key is
    never set again by the same layer and this order is exactly ``merge``'s.
    """
    result = dict(base)
    for kind, mapping, name in layers:
        if kind == "attributes":
            for key, value in mapping.items():
                result[key] = _copy(value)
            continue
        try:
            names = {parse_key(raw).name for raw in mapping}
        except ConfigError:
            names = set(result)  # let merge report the bad key, naming the layer
        subset = {key: result[key] for key in names if key in result}
        merged = merge([("attributes", subset, "base"), (kind, mapping, name)], class_list)
        for key in subset:
            if key not in merged:
                del result[key]
        result.update(merged)
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _globals(last_modified: dt.datetime, now: dt.datetime, settings: Settings) -> dict[str, Any]:
    """The ``__`` globals (§9.4), in the original's order."""
    return {
        "__last_modified": last_modified,
        "__timestamp": now,
        "__contractor_host": settings.contractor_url,
        "__pxe_location": settings.pxe_location,
    }
