"""Composed configurations: a target's layers, their explanation, its merged (and rendered)
map, for one target or many with a fixed number of queries, through a ``ConfigCache``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final, Required, TypedDict, Unpack

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.config import Explanation, explain, render
from contractor.config.render import RenderMemo
from contractor.models import utcnow
from contractor.runtime import gc_paused
from contractor.services.config.cache import ConfigCache, Entry
from contractor.services.config.generation import current_generation, has_pending_changes
from contractor.services.config.layers import NamedLayer, Sources
from contractor.services.config.rows import ConfigTarget, Key, target_key
from contractor.settings import Settings

__all__ = ["Composing", "composed_config", "composed_configs", "config_layers", "explain_config"]

# Foundations, Structures and Complexes are served rendered; Sites and BluePrints unrendered.
_RENDERED_KINDS: Final = frozenset({"foundation", "structure", "complex"})
_GC_PAUSE_FROM: Final = 100  # targets in one call worth pausing the collector for
_THREAD_FROM: Final = 100  # targets to compose before it is worth a worker thread


async def config_layers(
    session: AsyncSession, target: ConfigTarget, *, settings: Settings
) -> list[NamedLayer]:
    """The target's layers in merge order, globals included (see the module docstring)."""
    sources = await Sources.load(session, [target])
    now = utcnow()
    key = target_key(target)
    return [*sources.prefix_layers(key), *sources.tail_layers(key, settings, now)]


async def explain_config(
    session: AsyncSession, target: ConfigTarget, *, settings: Settings
) -> Explanation:
    """For every key of the target's (unrendered) configuration, which layer set it and which
    later layers changed, masked or filtered it."""
    sources = await Sources.load(session, [target])
    key = target_key(target)
    layers = [*sources.prefix_layers(key), *sources.tail_layers(key, settings, utcnow())]
    return explain(layers, sources.class_list(key))


class Composing(TypedDict, total=False):
    """How ``composed_config`` and ``composed_configs`` compose; only ``settings`` is needed.

    ``rendered`` (None by default) renders where the original does (Foundations and
    Structures, and Complexes here) and leaves Sites and BluePrints unrendered; ``True`` or
    ``False`` force it. ``for_json`` (False by default) turns datetimes into ISO strings
    *before* rendering, as the original's ``/config`` HTTP handler does (``__last_modified``
    then renders as ``2024-01-01T00:00:00`` instead of ``2024-01-01 00:00:00``). With a
    ``cache`` the result is reused until a configuration source changes; nested values are
    shared with it (read-only).
    """

    settings: Required[Settings]
    rendered: bool | None
    cache: ConfigCache | None
    for_json: bool


async def composed_config(
    session: AsyncSession, target: ConfigTarget, **options: Unpack[Composing]
) -> dict[str, Any]:
    """The target's merged configuration, composed as ``options`` say (``Composing``).
    Raises ``ConfigError`` when the values do not merge or render."""
    (result,) = await composed_configs(session, [target], **options)
    return result


async def composed_configs(
    session: AsyncSession, targets: Sequence[ConfigTarget], **options: Unpack[Composing]
) -> list[dict[str, Any]]:
    """``composed_config`` for many targets, in order, with a fixed number of queries (one
    when the cache holds them all). Large cold batches are composed in a worker thread, so
    the event loop keeps serving other requests meanwhile."""
    settings, cache = options["settings"], options.get("cache")
    rendered, for_json = options.get("rendered"), options.get("for_json", False)
    now = utcnow()
    generation = -1
    if cache is not None and not has_pending_changes(session):
        generation = await current_generation(session)
    use_cache = cache is not None and generation >= 0 and cache._use(generation)
    keys = [target_key(target) for target in targets]
    entries: dict[Key, Entry] = {}
    missing: list[ConfigTarget] = []
    for target, key in zip(targets, keys, strict=True):
        entry = cache._get(key) if cache is not None and use_cache else None
        if entry is not None:
            entries[key] = entry
        elif key not in entries:
            entries[key] = _PLACEHOLDER
            missing.append(target)
    sources = await Sources.load(session, missing, fresh=use_cache) if missing else None
    # Built here and stored at the end, if the cache is still at this generation: while this
    # call awaited, another one may have moved it on, and what was read here is older.
    prefixes = dict(cache._prefixes) if cache is not None and use_cache else {}
    built: dict[Key, Entry] = {}

    def compose() -> list[dict[str, Any]]:
        memo = RenderMemo()
        with gc_paused(len(targets) >= _GC_PAUSE_FROM):
            if sources is not None:
                for target in missing:
                    key = target_key(target)
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


_PLACEHOLDER: Final = Entry(kind="", merged={}, volatile=True)


def _finish(
    entry: Entry,
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
