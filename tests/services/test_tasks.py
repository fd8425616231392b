"""The subcontractor token cache: checked tokens are trusted for a while, then read again."""

from __future__ import annotations

from contractor.services.tasks import Subcontractor, TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _identity() -> Subcontractor:
    return Subcontractor(
        name="sub1", key="0123456789abcdef", sites=("site1",), modules=("simulated",)
    )


def test_entries_expire() -> None:
    clock = Clock()
    cache = TokenCache(5.0, clock=clock)
    cache.put("sct_a.secret", _identity())
    assert cache.get("sct_a.secret") == _identity()
    assert cache.get("sct_a.other") is None  # another secret for the same key: not trusted
    clock.now += 5.0
    assert cache.get("sct_a.secret") is None


def test_zero_seconds_caches_nothing() -> None:
    cache = TokenCache(0.0)
    cache.put("sct_a.secret", _identity())
    assert cache.get("sct_a.secret") is None
