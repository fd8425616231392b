"""The custom scalars of the schema: ``BigInt``, a whole number of any size (offsets in IPv6
blocks reach 2**128 - 2, far past GraphQL's 32-bit ``Int``)."""

from __future__ import annotations

import re
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from contractor.models.offsets import json_exact

__all__ = ["SCALARS", "BigInt"]

BigInt = NewType("BigInt", int)

_WHOLE = re.compile(r"-?[0-9]+")


def _parse(value: object) -> object:
    """A number, or its decimal digits as a string, is that number. Anything else is handed
    on as it came, so that the service refuses it as an ``InvalidInputError`` naming the
    field (as it does a negative offset or one beyond the block) rather than GraphQL
    refusing the whole document."""
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts; still not a usable number
            return value
    return value


SCALARS: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A whole number of any size. Answered as a JSON number when it lies within "
            "±(2^53 - 1), which every JSON parser reads exactly, else as a string of its "
            "decimal digits (`BigInt(value)` in JavaScript takes both). Given as a number or "
            'as a string of decimal digits ("18446744073709551614").'
        ),
        serialize=json_exact,
        parse_value=_parse,
    )
}
