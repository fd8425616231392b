"""Zone serials: they only grow (RFC 1982 serial arithmetic) and follow the clock when they can."""

from __future__ import annotations

__all__ = ["next_serial", "serial_gt"]

_MODULUS = 2**32
_HALF = 2**31


def serial_gt(a: int, b: int) -> bool:
    """``a`` is after ``b`` in RFC 1982 serial number arithmetic (32 bits)."""
    return a != b and ((a - b) % _MODULUS) < _HALF


def next_serial(previous: int | None, now: int) -> int:
    """The serial of a zone whose content changed: the Unix time ``now`` when that is after
    ``previous``, else ``previous + 1`` (wrapping at 2**32, which secondaries read as growth).

    Several changes in one second, or a clock set back, still give a growing serial.
    """
    candidate = now % _MODULUS
    if previous is None:
        return candidate
    if serial_gt(candidate, previous):
        return candidate
    return (previous + 1) % _MODULUS
