"""Process tuning for the long-running servers."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from contractor.app import create_app
from contractor.runtime import GC_THRESHOLDS, gc_paused, tune_gc
from tests import conftest


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_start_up_objects_and_raises_thresholds(restored_gc: None) -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0


@pytest.mark.parametrize("tuning", [True, False])
async def test_the_app_tunes_only_when_asked(
    restored_gc: None, tmp_path: Path, tuning: bool
) -> None:
    settings = conftest.test_settings(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    app = create_app(settings.model_copy(update={"gc_tuning": tuning}))
    async with app.router.lifespan_context(app):
        assert (gc.get_threshold() == GC_THRESHOLDS) is tuning


def test_gc_paused_pauses_and_resumes_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with gc_paused(active=False):
        assert gc.isenabled()


def test_gc_paused_leaves_a_collector_paused_by_someone_else_to_them() -> None:
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause did not resume it early
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gc_paused_resumes_after_an_error() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
