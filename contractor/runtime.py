"""Process-wide tuning of the garbage collector: for the long-running processes (`contractor
serve`, `contractor foreman`) at start, and paused around bulk work that makes no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GC_THRESHOLDS", "gc_paused", "tune_gc"]

# Collect the youngest generation every 50,000 net allocations instead of 700; older
# generations as usual relative to it.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze everything allocated so far (modules, the schema, settings: it lives as long as
    the process, so full collections need not scan it) and raise the collection threshold.
    Cyclic garbage is still collected, only in larger batches."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def gc_paused(active: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector for a stretch of bulk work (when ``active``).

    Composing a thousand configurations or assembling every DNS zone allocates millions of
    short-lived objects, none of them in cycles; with the collector running, its generation
    scans over the growing heap cost as much as the work itself. A collector that is already
    paused (by an enclosing pause, or anyone else) is left as it is: whoever paused it
    resumes it.
    """
    if not active or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
