"""Keeps a site's boot data current from Contractor's boot data API
(``POST /api/v1/subcontractor/boot``, ``docs/boot.md``, "The agent's loop").

A snapshot first (in pages while ``cursor`` is set), then ``since`` + ``wait`` long-polls
(pages too), each answer's entries upserted by id and its ``removed`` ids dropped; a 410
(``PRUNED``) takes a snapshot again. Each new version is checked whole
(``BootData.from_json``), written atomically to ``<state_dir>/boot-data.json`` and handed
to the callback. When Contractor cannot be reached at the start, the copy on disk is
served until it can: booting goes on while Contractor is away. Errors back off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from subcontractor.agent import Backoff
from subcontractor.boot.backend import BootData, Pool, Reservation, _pool, _reservation, _unique
from subcontractor.client import Client, Rejected, Unavailable

__all__ = ["DATA_FILE", "Follower", "load_saved", "save"]

log = logging.getLogger("subcontractor.boot")

DATA_FILE = "boot-data.json"
PAGE = 1000


def save(path: Path, data: BootData) -> None:
    """Write ``data`` to ``path`` atomically (a crash leaves the old copy or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with part.open("w", encoding="utf-8") as out:
        json.dump(data.to_json(), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)


def load_saved(path: Path, site: str) -> BootData | None:
    """The boot data saved at ``path`` for ``site``, or None (none, damaged, another site)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        data = BootData.from_json(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # (json's errors are ValueErrors)
        log.warning("the saved boot data %s is not usable (%s); ignored", path, error)
        return None
    if data.site != site:
        log.warning("the saved boot data %s is of site %r, not %r; ignored", path, data.site, site)
        return None
    return data


class Follower:
    """Follows ``site``'s boot data; ``on_change`` gets each new version."""

    def __init__(
        self,
        client: Client,
        site: str,
        state_dir: Path,
        on_change: Callable[[BootData], Awaitable[None]],
        *,
        wait: float = 30.0,
        limit: int = PAGE,
    ) -> None:
        self.client = client
        self.site = site
        self.path = state_dir / DATA_FILE
        self.on_change = on_change
        self.wait = wait
        self.limit = limit
        self.data: BootData | None = None
        self.ready = asyncio.Event()  # set once there is data (from Contractor or disk)
        self.snapshots = 0
        self.version: int | None = None  # what the next poll asks since (None: a snapshot)
        self._entries: dict[str, dict[str, Any]] = {}
        # each entry's answer object and what checking it gave (``_built``)
        self._checked: dict[str, tuple[dict[str, Any], Reservation | Pool]] = {}

    async def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.client.boot({"site": self.site, "limit": self.limit, **body})
        if not isinstance(answer, dict):
            raise ValueError("the boot data answer is not an object")
        return answer

    def _take(self, answer: dict[str, Any]) -> None:
        for key in ("reservations", "pools"):
            entries = answer.get(key) or []
            if not isinstance(entries, list):
                raise ValueError(f"{key}: expected a list")
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    raise ValueError(f"{key}: an entry without an id")
                self._entries[entry["id"]] = entry
        removed = answer.get("removed") or []
        if not isinstance(removed, list):
            raise ValueError("removed: expected a list")
        for entry_id in removed:
            self._entries.pop(str(entry_id), None)

    async def _pages(self, first: dict[str, Any]) -> int:
        answer = await self._ask(first)
        self._take(answer)
        while answer.get("cursor"):
            answer = await self._ask({"cursor": answer["cursor"]})
            self._take(answer)
        version = answer.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("version: expected an integer")
        return version

    def _built(self, version: int) -> BootData:
        """The entries held, each checked as ``BootData.from_json`` checks it; one unchanged
        since the last build (the same answer's object) is not checked again: with 10,000
        reservations, checking them all took a second for each change."""
        if not 0 <= version <= 2**63 - 1:
            raise ValueError("version: out of range")
        checked: dict[str, tuple[dict[str, Any], Reservation | Pool]] = {}
        reservations: list[Reservation] = []
        pools: list[Pool] = []
        for entry_id, raw in self._entries.items():
            held = self._checked.get(entry_id)
            if entry_id.startswith("reservation:"):
                if held is not None and held[0] is raw and isinstance(held[1], Reservation):
                    reservation = held[1]
                else:
                    reservation = _reservation(raw, f"reservations[{len(reservations)}]")
                reservations.append(reservation)
                checked[entry_id] = (raw, reservation)
            elif entry_id.startswith("pool:"):
                if held is not None and held[0] is raw and isinstance(held[1], Pool):
                    pool = held[1]
                else:
                    pool = _pool(raw, f"pools[{len(pools)}]")
                pools.append(pool)
                checked[entry_id] = (raw, pool)
        _unique(reservations, pools)
        self._checked = checked
        return BootData(
            site=self.site, version=version, reservations=tuple(reservations), pools=tuple(pools)
        )

    async def snapshot(self) -> BootData:
        """All of the site's boot data, anew."""
        self._entries = {}
        version = await self._pages({})
        self.snapshots += 1
        return self._built(version)

    async def changes(self, since: int) -> BootData:
        """The data held with the changes after ``since`` (waiting up to ``wait`` for one)."""
        previous = dict(self._entries)
        try:
            version = await self._pages({"since": since, "wait": self.wait})
            return self._built(version)
        except BaseException:
            self._entries = previous  # half a change is no data
            raise

    async def _publish(self, data: BootData) -> None:
        changed = self.data is None or data != self.data
        self.data = data
        if changed:
            log.info(
                "boot data of site %r version %d: %d reservation(s), %d pool(s)",
                data.site,
                data.version,
                len(data.reservations),
                len(data.pools),
            )
            await self.on_change(data)
            save(self.path, data)  # after the DHCP server has it: not in the change's way
        self.ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until ``stop`` is set."""
        saved = load_saved(self.path, self.site)
        backoff = Backoff()
        failing = False
        while not stop.is_set():
            asking = asyncio.create_task(
                self.snapshot() if self.version is None else self.changes(self.version)
            )
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({asking, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # (also when this task is cancelled: no request is left behind)
                stopped.cancel()
                if not asking.done():
                    asking.cancel()
                    await asyncio.gather(asking, return_exceptions=True)
            if asking.cancelled():  # stopped while a long-poll waits
                return
            try:
                data = asking.result()
            except Rejected as error:
                if error.status == 410:
                    log.info("boot data since version %s pruned: a snapshot again", self.version)
                    self.version = None
                    continue
                delay = max(backoff.next(), 10.0)
                log.warning("boot data refused (%s); asking again in %.1fs", error, delay)
            except (Unavailable, ValueError, KeyError, TypeError) as error:
                delay = backoff.next()
                if not isinstance(error, Unavailable):
                    self.version = None  # an answer not understood: start again from a snapshot
                if not failing:
                    log.warning("boot data not read (%s); retrying with back-off", error)
                    failing = True
            else:
                if failing:
                    log.info("boot data read again")
                    failing = False
                backoff.reset()
                self.version = data.version
                await self._publish(data)
                continue
            if saved is not None and self.data is None:
                log.info(
                    "Contractor is not reachable: serving the saved boot data (version %d)",
                    saved.version,
                )
                await self._publish(saved)
            await _sleep(stop, delay)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
