"""Registering a foundation type plugin in a test, by entry point, as a distribution would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contractor.plugins import ENTRY_POINT_GROUP, foundation_types
from contractor.plugins.manual import ManualFoundationType


class AmtType(ManualFoundationType):
    """A stand-in for an ``amt`` plugin (the manual type's table and functions)."""

    name = "amt"


@contextmanager
def registering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, target: str
) -> Iterator[Callable[[], None]]:
    """A function that registers ``target`` (``module:Class``) as the type ``name``; after the
    block the registration is gone and the installed types are read again."""

    def register() -> None:
        info = tmp_path / f"{name}_plugin-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        foundation_types.cache_clear()
        assert name in foundation_types()

    try:
        yield register
    finally:
        monkeypatch.undo()
        foundation_types.cache_clear()
        assert name not in foundation_types()
