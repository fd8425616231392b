"""The console's browser tests share one demo per module and a fresh Chromium per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui.browser import Browser, chromium
from tests.ui.demo import Demo, running_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture
def browser(demo: Demo) -> Iterator[Browser]:
    with chromium(demo.base) as opened:
        yield opened
