"""``ConfigCache``: composed configurations of one process, valid for one config generation,
and what it keeps: each target's merged map (``Entry``) and the blueprint+site prefixes that
targets share (``Prefix``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from contractor.services.config.rows import Key

__all__ = ["ConfigCache", "Entry", "Prefix", "PrefixKey"]

PrefixKey = tuple[int | None, int | None, tuple[str, ...]]


@dataclass
class Prefix:
    values: dict[str, Any]
    volatile: bool  # some string mentions __timestamp
    last_modified: dt.datetime


@dataclass
class Entry:
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
        self._entries: dict[Key, Entry] = {}
        self._prefixes: dict[PrefixKey, Prefix] = {}

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

    def _get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def _put(self, key: Key, entry: Entry) -> None:
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
