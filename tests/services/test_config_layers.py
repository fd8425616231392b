"""The layer builder and the config cache on a real database (PostgreSQL and SQLite).

Layer order per target kind follows ``model-original.md`` §9.3, attributes §9.5, globals §9.4
and ``__last_modified`` §9.6. Cache tests commit, on databases of their own, and play two
processes with two caches and two engines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.config import merge, render
from contractor.db import create_engine, create_session_factory
from contractor.models import ConfigGeneration, Site, Structure
from contractor.services import addresses, building, complexes, directory, interfaces, network
from contractor.services import site as site_service
from contractor.services.blueprint import update_blueprint
from contractor.services.config import (
    ConfigCache,
    composed_config,
    composed_configs,
    config_layers,
    current_generation,
    explain_config,
)
from contractor.services.config.generation import _CHANGED
from contractor.services.config.layers import EPOCH
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
    unique,
)

SETTINGS = Settings(contractor_url="http://contractor:8080", pxe_location="http://static/pxe/")


def names(layers: list[Any]) -> list[str]:
    return [f"{kind} {name}" for kind, _mapping, name in layers]


def without_timestamp(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key != "__timestamp"}


async def build_world(session: AsyncSession) -> dict[str, Any]:
    """root > mid > leaf sites (leaf in zone lab<n>.example<n>), a structure blueprint with a
    diamond (top > left, right > sbp), a foundation blueprint with a parent, a manual
    foundation with two interfaces and a structure with addresses and an abstract bond."""
    parent_zone = await directory.create_zone(session, name=unique("example"))
    zone = await directory.create_zone(session, name=unique("lab"), parent=parent_zone)
    root = await make_site(
        session, unique("root"), config_values={"dns_servers": ["10.0.0.1"], "level": "root"}
    )
    mid = await make_site(
        session, unique("mid"), parent=root, config_values={">dns_servers": "10.0.0.2"}
    )
    leaf = await make_site(
        session,
        unique("leaf"),
        parent=mid,
        zone=zone,
        config_values={"level": "leaf", "only_manual:Manual": "yes", "only_vc:VCenter": "no"},
    )
    fbp_base = await make_foundation_blueprint(
        session, unique("fbase"), config_values={"fb": "base"}
    )
    fbp = await make_foundation_blueprint(
        session, unique("fbp"), parents=[fbp_base], config_values={"fb": "child"}
    )
    top = await make_structure_blueprint(
        session, unique("top"), config_values={"order": ["top"], "level": "blueprint"}
    )
    left = await make_structure_blueprint(
        session, unique("left"), parents=[top], config_values={">order": "left"}
    )
    right = await make_structure_blueprint(
        session, unique("right"), parents=[top], config_values={">order": "right"}
    )
    sbp = await make_structure_blueprint(
        session,
        unique("sbp"),
        parents=[left, right],
        foundation_blueprints=[fbp],
        config_values={">order": "sbp", "greeting": "hello {{ _hostname }}"},
    )
    foundation = await make_foundation(session, leaf, fbp, unique("node"))
    structure = await make_structure(
        session,
        leaf,
        foundation,
        sbp,
        unique("web"),
        config_values={"level": "structure", "<order": "structure"},
    )
    serial = int(unique(""))
    mac = f"aa:bb:cc:00:{serial // 256 % 256:02x}:{serial % 256:02x}"
    net = await network.create_network(session, site=leaf, name="prov", mtu=9000)
    block = await make_block(session, leaf, "10.1.0.0/24", gateway_offset=1)
    await network.link_address_block(session, network=net, block=block, vlan=42)
    await interfaces.add_interface(
        session,
        foundation=foundation,
        physical_location="eth0",
        name="eth0",
        mac=mac.upper(),
        is_provisioning=True,
        network=net,
    )
    await interfaces.add_interface(session, foundation=foundation, physical_location="eth1")
    await interfaces.add_abstract_interface(session, structure=structure, name="bond0")
    await addresses.create_address(
        session,
        structure=structure,
        block=block,
        offset=10,
        interface_name="eth0",
        is_primary=True,
    )
    await addresses.create_address(
        session, structure=structure, block=block, offset=11, interface_name="eth0", alias_index=1
    )
    await addresses.create_address(
        session, structure=structure, block=block, offset=20, interface_name="bond0"
    )
    return {
        "zone": zone,
        "domain": f"{zone.name}.{parent_zone.name}",
        "root": root,
        "mid": mid,
        "leaf": leaf,
        "fbp_base": fbp_base,
        "fbp": fbp,
        "top": top,
        "left": left,
        "right": right,
        "sbp": sbp,
        "foundation": foundation,
        "structure": structure,
        "block": block,
        "mac": mac,
    }


async def test_structure_layers_in_the_original_order(session: AsyncSession) -> None:
    w = await build_world(session)
    layers = await config_layers(session, w["structure"], settings=SETTINGS)
    assert names(layers) == [
        f"values blueprint {w['top'].name}",  # the diamond's top, once per path
        f"values blueprint {w['left'].name}",
        f"values blueprint {w['top'].name}",
        f"values blueprint {w['right'].name}",
        f"values blueprint {w['sbp'].name}",
        "attributes _blueprint",
        f"values site {w['root'].name}",
        f"values site {w['mid'].name}",
        f"values site {w['leaf'].name}",
        "attributes _site",
        f"attributes foundation {w['foundation'].locator}",
        f"values structure {w['structure'].hostname}",
        f"attributes structure {w['structure'].hostname} attributes",
        "attributes globals",
    ]
    # The Foundation's blueprint is not part of a Structure's configuration.
    assert not any(w["fbp"].name in name for *_, name in layers)
    config = merge(layers, ["Metal", "VM", "Container", "Switch", "Manual"])
    # top runs once per path: its plain "order" overwrites what left appended
    assert config["order"] == ["structure", "top", "right", "sbp"]
    assert config["level"] == "structure"  # site beats blueprint, structure beats site
    assert config["dns_servers"] == ["10.0.0.1", "10.0.0.2"]
    assert config["only_manual"] == "yes"
    assert "only_vc" not in config


async def test_structure_attributes(session: AsyncSession) -> None:
    w = await build_world(session)
    structure, foundation = w["structure"], w["foundation"]
    config = await composed_config(session, structure, settings=SETTINGS)
    eth0_primary = {
        "address": "10.1.0.10",
        "netmask": "255.255.255.0",
        "prefix": 24,
        "subnet": "10.1.0.0",
        "gateway": "10.1.0.1",
        "auto": True,
        "alias_index": None,
        "primary": True,
    }
    expected = {
        "_blueprint": w["sbp"].name,
        "_site": w["leaf"].name,
        # foundation attributes; the structure's own _provisioning_interface (the name) wins
        "_foundation_id": foundation.locator,
        "_foundation_type": "manual",
        "_foundation_state": "planned",
        "_foundation_class_list": ["Metal", "VM", "Container", "Switch", "Manual"],
        "_foundation_locator": foundation.locator,
        "_foundation_id_map": None,
        "_console": "console",
        "_structure_id": structure.id,
        "_structure_state": "planned",
        "_structure_config_uuid": structure.config_uuid,
        "_hostname": structure.hostname,
        "_domain_name": w["domain"],
        "_fqdn": f"{structure.hostname}.{w['domain']}",
        "_provisioning_interface": "eth0",
        "_provisioning_interface_mac": w["mac"],
        "_provisioning_address": eth0_primary,
        "_primary_interface": "eth0",
        "_primary_interface_mac": w["mac"],
        "_primary_address": eth0_primary,
        "_interface_map": {
            "eth0": {
                "name": "eth0",
                "network": "prov",
                "mtu": 9000,
                "mac": w["mac"],
                "physical_location": "eth0",
                "link_name": None,
                "address_list": [
                    {**eth0_primary, "vlan": 42},
                    {
                        **eth0_primary,
                        "address": "10.1.0.11",
                        "alias_index": 1,
                        "primary": False,
                        "vlan": 42,
                    },
                ],
            },
            "eth1": {
                "name": "eth1",
                "network": None,
                "mac": None,
                "physical_location": "eth1",
                "link_name": None,
                "address_list": [],
            },
            "bond0": {
                "name": "bond0",
                "network": None,
                "address_list": [
                    {**eth0_primary, "address": "10.1.0.20", "primary": False},
                ],
            },
        },
        "__contractor_host": "http://contractor:8080",
        "__pxe_location": "http://static/pxe/",
    }
    for key, value in expected.items():
        assert config[key] == value, key
    assert config["greeting"] == f"hello {structure.hostname}"  # rendered
    assert list(config)[-4:] == [
        "__last_modified",
        "__timestamp",
        "__contractor_host",
        "__pxe_location",
    ]
    assert isinstance(config["__timestamp"], dt.datetime)


async def test_foundation_layers_and_attributes(session: AsyncSession) -> None:
    w = await build_world(session)
    foundation = w["foundation"]
    layers = await config_layers(session, foundation, settings=SETTINGS)
    assert names(layers) == [
        f"values blueprint {w['fbp_base'].name}",
        f"values blueprint {w['fbp'].name}",
        "attributes _blueprint",
        f"values site {w['root'].name}",
        f"values site {w['mid'].name}",
        f"values site {w['leaf'].name}",
        "attributes _site",
        f"attributes foundation {foundation.locator}",
        "attributes _structure_id",
        "attributes globals",
    ]
    config = await composed_config(session, foundation, settings=SETTINGS)
    assert config["_blueprint"] == w["fbp"].name
    assert config["fb"] == "child"
    assert config["_provisioning_interface"] == "eth0"  # the physical location here
    assert config["_structure_id"] == w["structure"].id
    assert "_hostname" not in config
    assert "greeting" not in config  # no structure blueprint, no structure values
    assert "order" not in config


async def test_foundation_without_structure_and_plugin_attributes(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    foundation = await make_foundation(session, site, fbp, type="simulated")
    layers = await config_layers(session, foundation, settings=SETTINGS)
    assert names(layers)[-2:] == [
        f"attributes foundation {foundation.locator}",
        "attributes globals",
    ]
    config = await composed_config(session, foundation, settings=SETTINGS)
    assert config["_simulated_power_state"] == "off"
    assert config["_foundation_class_list"] == ["Metal", "VM", "Container", "Switch", "Simulated"]
    assert config["_provisioning_interface"] is None


async def test_site_and_blueprint_layers_are_served_unrendered(session: AsyncSession) -> None:
    w = await build_world(session)
    site_layers = await config_layers(session, w["leaf"], settings=SETTINGS)
    assert names(site_layers) == [
        f"values site {w['root'].name}",
        f"values site {w['mid'].name}",
        f"values site {w['leaf'].name}",
        "attributes _site",
        "attributes globals",
    ]
    site_config = await composed_config(session, w["leaf"], settings=SETTINGS)
    assert "only_manual" not in site_config  # no class list for a Site
    assert site_config["level"] == "leaf"
    bp_layers = await config_layers(session, w["sbp"], settings=SETTINGS)
    assert names(bp_layers)[-2:] == ["attributes _blueprint", "attributes globals"]
    unrendered = await composed_config(session, w["sbp"], settings=SETTINGS)
    assert unrendered["greeting"] == "hello {{ _hostname }}"
    assert unrendered["_blueprint"] == w["sbp"].name
    forced = await composed_config(session, w["sbp"], settings=SETTINGS, rendered=True)
    assert forced["greeting"] == "hello "  # no _hostname for a BluePrint


async def test_complex_has_its_site_chain_and_attributes(session: AsyncSession) -> None:
    w = await build_world(session)
    complex_ = await complexes.create_complex(session, name=unique("cluster"), site=w["mid"])
    await complexes.add_complex_member(session, complex_, w["structure"])
    layers = await config_layers(session, complex_, settings=SETTINGS)
    assert names(layers) == [
        f"values site {w['root'].name}",
        f"values site {w['mid'].name}",
        "attributes _site",
        f"attributes complex {complex_.name}",
        "attributes globals",
    ]
    config = await composed_config(session, complex_, settings=SETTINGS)
    assert config["_complex_name"] == complex_.name
    assert config["_complex_state"] == "planned"
    assert config["_complex_members"] == [w["structure"].hostname]


async def test_composed_config_equals_merging_the_layers(session: AsyncSession) -> None:
    w = await build_world(session)
    manual = ["Metal", "VM", "Container", "Switch", "Manual"]
    for target, classes in (
        (w["structure"], manual),
        (w["foundation"], manual),
        (w["leaf"], []),
        (w["sbp"], []),
        (w["fbp"], []),
    ):
        layers = await config_layers(session, target, settings=SETTINGS)
        expected = merge(layers, classes)
        cached = ConfigCache()
        got = await composed_config(session, target, settings=SETTINGS, rendered=False)
        assert without_timestamp(got) == without_timestamp(expected)
        assert list(got) == list(expected)
        got = await composed_config(
            session, target, settings=SETTINGS, rendered=False, cache=cached
        )
        assert without_timestamp(got) == without_timestamp(expected)


async def test_explain_names_the_layers(session: AsyncSession) -> None:
    w = await build_world(session)
    explanation = await explain_config(session, w["structure"], settings=SETTINGS)
    level = explanation.keys["level"]
    assert level.set_by == f"structure {w['structure'].hostname}"
    assert [change.layer for change in level.history] == [
        f"blueprint {w['top'].name}",
        f"blueprint {w['top'].name}",
        f"site {w['root'].name}",
        f"site {w['leaf'].name}",
        f"structure {w['structure'].hostname}",
    ]
    assert explanation.keys["_hostname"].set_by == (
        f"structure {w['structure'].hostname} attributes"
    )
    assert [c.original_key for c in explanation.filtered] == ["only_vc:VCenter"]


async def test_last_modified_is_the_newest_source(session: AsyncSession) -> None:
    w = await build_world(session)
    config = await composed_config(session, w["structure"], settings=SETTINGS, rendered=False)
    stamps = [
        w[name].updated for name in ("root", "mid", "leaf", "top", "left", "right", "sbp")
    ] + [w["foundation"].updated, w["structure"].updated]
    assert config["__last_modified"] == max(stamps)
    assert config["__last_modified"] > EPOCH
    # Not the foundation's blueprint: it is not a source of a Structure's configuration.
    as_json = await composed_config(session, w["structure"], settings=SETTINGS, for_json=True)
    assert as_json["__last_modified"] == max(stamps).isoformat()
    assert isinstance(as_json["__timestamp"], str)


async def test_datetimes_render_as_str_or_iso(session: AsyncSession) -> None:
    site = await make_site(session, config_values={"when": "{{ __last_modified }}"})
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    structure = await make_structure(session, site, await make_foundation(session, site, fbp), sbp)
    plain = await composed_config(session, structure, settings=SETTINGS)
    assert plain["when"] == str(plain["__last_modified"])  # "2026-11-26 15:00:00.123+00:00"
    as_json = await composed_config(session, structure, settings=SETTINGS, for_json=True)
    assert as_json["when"] == as_json["__last_modified"]  # ISO, "T" separated
    assert "T" in as_json["when"]


async def test_structure_values_see_the_foundation_class_list(session: AsyncSession) -> None:
    site = await make_site(session, config_values={"kind:Simulated": "sim", "kind:Manual": "man"})
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    manual = await make_structure(session, site, await make_foundation(session, site, fbp), sbp)
    simulated = await make_structure(
        session, site, await make_foundation(session, site, fbp, type="simulated"), sbp
    )
    cache = ConfigCache()
    configs = await composed_configs(session, [manual, simulated], settings=SETTINGS, cache=cache)
    assert [c["kind"] for c in configs] == ["man", "sim"]  # one prefix per class list


async def test_secrets_from_plugins_are_left_out(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from contractor.plugins.simulated import SimulatedFoundationType

    def attributes(self: Any, foundation: Any) -> dict[str, Any]:
        return {"_bmc_ip_address": "10.9.9.9", "_bmc_password": "hunter22"}

    monkeypatch.setattr(SimulatedFoundationType, "config_attributes", attributes)
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    foundation = await make_foundation(session, site, fbp, type="simulated")
    config = await composed_config(session, foundation, settings=SETTINGS)
    assert config["_bmc_ip_address"] == "10.9.9.9"
    assert "_bmc_password" not in config
    assert "hunter22" not in repr(config)
    assert "_bmc_password" in caplog.text


async def test_uncommitted_changes_bypass_the_cache(session: AsyncSession) -> None:
    w = await build_world(session)
    cache = ConfigCache()
    # build_world changed sources in this open transaction: the shared cache stays untouched
    await composed_config(session, w["structure"], settings=SETTINGS, cache=cache)
    assert len(cache) == 0
    await site_service.update_site(session, w["root"], config_values={"level": "new-root"})
    config = await composed_config(session, w["leaf"], settings=SETTINGS, cache=cache)
    assert config["level"] == "leaf"
    assert (await composed_config(session, w["mid"], settings=SETTINGS, cache=cache))[
        "level"
    ] == "new-root"  # read-your-writes inside the transaction


# -- the cache across transactions and processes ----------------------------------------


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def committed_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of this module's own (these tests commit)."""
    if request.param == "postgresql":
        url = make_pg_database("contractor_config_cache")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('config') / 'cache.sqlite3'}"
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    return settings.database_url


@pytest.fixture
async def engines(committed_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one database: two processes."""
    first = create_engine(Settings(database_url=committed_url))
    second = create_engine(Settings(database_url=committed_url))
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def read(
    sessions: async_sessionmaker[AsyncSession], cache: ConfigCache, structure_ids: list[int]
) -> list[dict[str, Any]]:
    async with sessions() as session, session.begin():
        rows = (
            (await session.execute(select(Structure).where(Structure.id.in_(structure_ids))))
            .scalars()
            .all()
        )
        by_id = {row.id: row for row in rows}
        return await composed_configs(
            session, [by_id[i] for i in structure_ids], settings=SETTINGS, cache=cache
        )


async def test_cache_hits_and_grandparent_invalidation_across_processes(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, engine_b = engines
    sessions_a = create_session_factory(engine_a)
    sessions_b = create_session_factory(engine_b)
    async with sessions_a() as session, session.begin():
        w = await build_world(session)
        fbp, sbp = w["fbp"], w["sbp"]
        more = []
        for _ in range(3):
            foundation = await make_foundation(session, w["leaf"], fbp)
            more.append(await make_structure(session, w["leaf"], foundation, sbp))
        ids = [w["structure"].id] + [s.id for s in more]
        root_id = w["root"].id
    cache_a, cache_b = ConfigCache(), ConfigCache()

    first = await read(sessions_a, cache_a, ids)
    assert {c["level"] for c in first} == {"structure", "leaf"}
    await read(sessions_b, cache_b, ids)
    assert (cache_a.misses, cache_a.hits) == (4, 0)
    with count_statements(engine_a) as statements:
        async with sessions_a() as session, session.begin():
            structures = [await session.get_one(Structure, i) for i in ids]
            with count_statements(engine_a) as compose_statements:
                again = await composed_configs(
                    session, structures, settings=SETTINGS, cache=cache_a
                )
    assert len(compose_statements) == 1  # only the generation
    assert "config_generation" in compose_statements[0]
    assert statements  # (the structures themselves were loaded)
    assert cache_a.hits == 4
    assert [without_timestamp(c) for c in again] == [without_timestamp(c) for c in first]

    # Process B changes the grandparent site of every structure and commits.
    async with sessions_b() as session, session.begin():
        root = await session.get_one(Site, root_id)
        generation = await current_generation(session)
        await site_service.update_site(
            session, root, config_values={"dns_servers": ["192.0.2.53"], "level": "root"}
        )
    async with sessions_b() as session:
        assert await current_generation(session) == generation + 1

    for sessions, cache in ((sessions_a, cache_a), (sessions_b, cache_b)):
        changed = await read(sessions, cache, ids)
        assert {tuple(c["dns_servers"]) for c in changed} == {("192.0.2.53", "10.0.0.2")}
    assert cache_a.generation == cache_b.generation == generation + 1


async def test_cache_invalidated_by_blueprint_parent_structure_and_address(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, engine_b = engines
    sessions_a = create_session_factory(engine_a)
    sessions_b = create_session_factory(engine_b)
    async with sessions_a() as session, session.begin():
        w = await build_world(session)
        ids = [w["structure"].id]
        top_id, structure_id, block_id = w["top"].id, w["structure"].id, w["block"].id
    cache = ConfigCache()
    before = (await read(sessions_a, cache, ids))[0]
    assert before["order"] == ["structure", "top", "right", "sbp"]

    async with sessions_b() as session, session.begin():  # a blueprint grandparent
        top = await session.get_one(w["top"].__class__, top_id)
        await update_blueprint(session, top, config_values={"order": ["TOP"]})
    assert (await read(sessions_a, cache, ids))[0]["order"][:2] == ["structure", "TOP"]

    async with sessions_b() as session, session.begin():  # the structure itself
        structure = await session.get_one(Structure, structure_id)
        await building.update_structure(session, structure, config_values={"level": "changed"})
    assert (await read(sessions_a, cache, ids))[0]["level"] == "changed"

    async with sessions_b() as session, session.begin():  # an address
        structure = await session.get_one(Structure, structure_id)
        block = await session.get_one(w["block"].__class__, block_id)
        await addresses.create_address(
            session, structure=structure, block=block, offset=30, interface_name="eth1"
        )
    after = (await read(sessions_a, cache, ids))[0]
    assert [a["address"] for a in after["_interface_map"]["eth1"]["address_list"]] == ["10.1.0.30"]


async def test_rolled_back_changes_never_reach_the_cache(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, _ = engines
    sessions = create_session_factory(engine_a)
    async with sessions() as session, session.begin():
        w = await build_world(session)
        ids, leaf_id = [w["structure"].id], w["leaf"].id
    cache = ConfigCache()
    await read(sessions, cache, ids)
    async with sessions() as session:
        async with session.begin():
            generation = await current_generation(session)
            leaf = await session.get_one(Site, leaf_id)
            await site_service.update_site(session, leaf, config_values={"level": "doomed"})
            seen = await composed_config(session, leaf, settings=SETTINGS, cache=cache)
            assert seen["level"] == "doomed"  # this transaction sees its own change ...
            await session.rollback()
        assert await current_generation(session) == generation
    assert cache.generation == generation
    assert len(cache) == 1  # ... which never went into the cache
    async with sessions() as session:
        leaf = await session.get_one(Site, leaf_id)
        config = await composed_config(session, leaf, settings=SETTINGS, cache=cache)
    assert config["level"] == "leaf"


async def test_older_generation_readers_do_not_touch_a_newer_cache(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, _ = engines
    sessions = create_session_factory(engine_a)
    async with sessions() as session, session.begin():
        w = await build_world(session)
        ids = [w["structure"].id]
    cache = ConfigCache()
    await read(sessions, cache, ids)
    cache.generation += 1  # as if another reader had already seen a newer commit
    entries = len(cache)
    await read(sessions, cache, ids)
    assert len(cache) == entries
    async with sessions() as session:
        generation = (
            await session.execute(select(ConfigGeneration.value).where(ConfigGeneration.id == 1))
        ).scalar_one()
    assert cache.generation == generation + 1


async def test_the_timestamp_is_fresh_and_volatile_values_are_rerendered(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, _ = engines
    sessions = create_session_factory(engine_a)
    async with sessions() as session, session.begin():
        site = await make_site(session, config_values={"stamp": "at {{ __timestamp }}"})
        fbp = await make_foundation_blueprint(session)
        sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
        structure = await make_structure(
            session, site, await make_foundation(session, site, fbp), sbp
        )
        ids = [structure.id]
    cache = ConfigCache()
    first = (await read(sessions, cache, ids))[0]
    second = (await read(sessions, cache, ids))[0]
    assert cache.hits == 1
    assert second["__timestamp"] > first["__timestamp"]
    assert second["stamp"] == f"at {second['__timestamp']}"
    assert first["stamp"] == f"at {first['__timestamp']}"
    assert render(without_timestamp(second)) == without_timestamp(second)


def test_generation_row_is_created_by_the_migration(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}")
    migrate.upgrade(settings)
    import sqlite3

    with sqlite3.connect(tmp_path / "g.sqlite3") as connection:
        assert connection.execute("SELECT id, value FROM config_generation").fetchall() == [(1, 0)]


async def test_structures_sharing_a_cached_prefix_merge_exactly_and_leave_it_intact(
    session: AsyncSession,
) -> None:
    site = await make_site(
        session,
        config_values={
            "servers": ["a", "b"],
            "options": {"x": 1, "y": 2},
            "banner": "welcome to the site",
            "count": 3,
            "gone": "soon",
            "zz_last": "stays last",
        },
    )
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(
        session, foundation_blueprints=[fbp], config_values={"servers": ["bp"], "nested": [[1]]}
    )
    operators = [
        {">servers": "c", "<servers": ["z"], "-banner": " site", ">options": {"z": 3}},
        {"-servers": ["a", "missing"], "~gone": None, "new_one": 1, "-options": "x"},
        {">count": 5, "servers": "replaced", "another": [1], "~zz_last": None, "zz_last": 0},
        {"nested:Manual": "manual only", "nested:VCenter": "never", "<fresh": "made"},
        {"-nested": [1]},
    ]
    structures = []
    for values in operators:
        foundation = await make_foundation(session, site, fbp)
        structures.append(
            await make_structure(session, site, foundation, sbp, config_values=values)
        )
    # As if committed: this test's transaction never commits, but the cache is the subject.
    session.sync_session.info[_CHANGED] = False
    cache = ConfigCache()
    first = await composed_configs(
        session, structures, settings=SETTINGS, rendered=False, cache=cache
    )
    second = await composed_configs(
        session, structures, settings=SETTINGS, rendered=False, cache=cache
    )
    assert cache.hits == len(structures)
    for structure, got, again in zip(structures, first, second, strict=True):
        layers = await config_layers(session, structure, settings=SETTINGS)
        expected = merge(layers, ["Metal", "VM", "Container", "Switch", "Manual"])
        assert without_timestamp(got) == without_timestamp(expected)
        assert list(got) == list(expected)  # key order too
        assert without_timestamp(again) == without_timestamp(expected)
    (prefix,) = cache._prefixes.values()
    bp_and_site = (await config_layers(session, structures[0], settings=SETTINGS))[:4]
    assert prefix.values == merge(bp_and_site, ["Metal", "VM", "Container", "Switch", "Manual"])
    assert first[0]["servers"] == ["z", "a", "b", "c"]  # the site's list, then the structure's ops
    assert first[0]["banner"] == "welcome to the"
    assert first[1]["options"] == {"y": 2}
    assert "gone" not in first[1]
    assert first[2]["count"] == 3
    assert "zz_last" not in first[2]  # "~" runs after the plain key of the same layer


async def test_rows_loaded_before_a_commit_elsewhere_never_poison_the_cache(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A target row loaded earlier in the reader's transaction may be older than the
    generation read later (PostgreSQL, READ COMMITTED); the cache must not keep its data."""
    engine_a, engine_b = engines
    sessions_a = create_session_factory(engine_a)
    sessions_b = create_session_factory(engine_b)
    async with sessions_a() as session, session.begin():
        w = await build_world(session)
        structure_id, leaf_id = w["structure"].id, w["leaf"].id
    cache = ConfigCache()
    async with sessions_a() as session, session.begin():
        structure = await session.get_one(Structure, structure_id)
        leaf = await session.get_one(Site, leaf_id)
        async with sessions_b() as writer, writer.begin():
            changed = await writer.get_one(Structure, structure_id)
            await building.update_structure(writer, changed, config_values={"level": "new"})
            other_leaf = await writer.get_one(Site, leaf_id)
            await site_service.update_site(writer, other_leaf, config_values={"x": "new"})
        seen = await composed_config(session, structure, settings=SETTINGS, cache=cache)
        seen_site = await composed_config(session, leaf, settings=SETTINGS, cache=cache)
        # PostgreSQL sees the commit (and the new generation); SQLite keeps its snapshot of
        # both. Either way data and generation agree.
        assert (seen["level"], seen_site.get("x")) in {("structure", None), ("new", "new")}
    assert (await read(sessions_a, cache, [structure_id]))[0]["level"] == "new"
    async with sessions_a() as session:
        leaf = await session.get_one(Site, leaf_id)
        assert (await composed_config(session, leaf, settings=SETTINGS, cache=cache))["x"] == "new"


async def test_the_generation_moves_once_per_commit_and_not_for_savepoints(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, engine_b = engines
    sessions_a = create_session_factory(engine_a)
    async with sessions_a() as session, session.begin():
        site = await make_site(session)
        site_id = site.id
    async with sessions_a() as session:
        before = await current_generation(session)
    async with sessions_a() as session, session.begin():
        site = await session.get_one(Site, site_id)
        async with session.begin_nested():
            await site_service.update_site(session, site, config_values={"a": 1})
        await site_service.update_site(session, site, config_values={"a": 2})
        async with create_session_factory(engine_b)() as other:
            assert await current_generation(other) == before  # nothing committed yet
        assert await current_generation(session) == before  # bumped only at the commit
    async with sessions_a() as session:
        assert await current_generation(session) == before + 1
    async with sessions_a() as session, session.begin():  # a read-only transaction
        await composed_config(session, await session.get_one(Site, site_id), settings=SETTINGS)
    async with sessions_a() as session:
        assert await current_generation(session) == before + 1


async def test_a_cache_moved_on_while_reading_is_not_filled_with_older_data(
    engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reading the generation and storing, a call awaits its queries; another
    request may meanwhile have seen a newer generation. What this call read must then stay
    out of the cache."""
    from contractor.services.config.layers import Sources

    engine_a, _ = engines
    sessions = create_session_factory(engine_a)
    async with sessions() as session, session.begin():
        w = await build_world(session)
        ids = [w["structure"].id]
    cache = ConfigCache()
    load = Sources.load

    async def load_while_another_request_moves_on(*args: Any, **kwargs: Any) -> Any:
        sources = await load(*args, **kwargs)
        cache._use(cache.generation + 1)  # what a concurrent newer reader does
        return sources

    monkeypatch.setattr(Sources, "load", staticmethod(load_while_another_request_moves_on))
    (config,) = await read(sessions, cache, ids)
    assert config["_hostname"] == w["structure"].hostname
    assert len(cache) == 0
    assert not cache._prefixes


async def test_large_batches_compose_in_a_worker_thread(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from contractor.services.config import compose
    from contractor.services.config.layers import Sources

    site = await make_site(session, config_values={"thread": "{{ _hostname }}"})
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    structures = [
        await make_structure(session, site, await make_foundation(session, site, fbp), sbp)
        for _ in range(compose._THREAD_FROM)
    ]
    seen: set[int] = set()
    original = Sources.entry

    def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.add(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Sources, "entry", entry)
    configs = await composed_configs(session, structures, settings=SETTINGS)
    assert [c["thread"] for c in configs] == [s.hostname for s in structures]
    assert seen
    assert threading.get_ident() not in seen


async def test_without_the_generation_row_nothing_is_cached(session: AsyncSession) -> None:
    from sqlalchemy import delete

    site = await make_site(session, config_values={"a": 1})
    session.sync_session.info[_CHANGED] = False  # as if committed
    await session.execute(delete(ConfigGeneration))
    assert await current_generation(session) == -1
    cache = ConfigCache()
    config = await composed_config(session, site, settings=SETTINGS, cache=cache)
    assert config["a"] == 1
    assert len(cache) == 0


async def test_only_configurations_mentioning_the_timestamp_are_rerendered(
    session: AsyncSession,
) -> None:
    site = await make_site(session, config_values={"plain": "{{ _hostname }}"})
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    steady = await make_structure(session, site, await make_foundation(session, site, fbp), sbp)
    ticking = await make_structure(
        session,
        site,
        await make_foundation(session, site, fbp),
        sbp,
        config_values={"deep": {"list": ["at {{ __timestamp }}"]}},
    )
    session.sync_session.info[_CHANGED] = False  # as if committed
    cache = ConfigCache()
    first = await composed_configs(session, [steady, ticking], settings=SETTINGS, cache=cache)
    second = await composed_configs(session, [steady, ticking], settings=SETTINGS, cache=cache)
    entries = {key[1]: entry for key, entry in cache._entries.items()}
    assert entries[steady.id].rendered  # kept rendered
    assert not entries[ticking.id].rendered  # rendered afresh on every read
    assert second[1]["deep"]["list"] == [f"at {second[1]['__timestamp']}"]
    assert first[1]["deep"] != second[1]["deep"]
    assert first[0]["plain"] == second[0]["plain"] == steady.hostname
