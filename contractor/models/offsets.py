"""The ``Offset`` column type: a whole number from 0 to 2**128, exact on both databases and
ordered numerically, for the offsets of addresses in their blocks (an IPv6 /64 has offsets
up to 2**64 - 2, past any database's 64-bit integer); ``next_offset``, its successor in SQL,
for the lowest-free search; and ``json_exact``, how an offset is written in JSON.

PostgreSQL keeps an offset as ``numeric(39, 0)``. SQLite's integers stop at 2**63 - 1 and
its other numbers are floats, so there an offset below 2**62 is an SQLite integer and a
larger one the string of its 39 decimal digits with leading zeros. The column is declared
``BLOB``, which has no affinity, so each value keeps its storage class, and SQLite orders
every integer before every string: the column's order is numeric order, and the offsets
allocated in practice are plain integers with integer arithmetic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import LargeBinary, Numeric, literal
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["MAX_OFFSET", "Offset", "json_exact", "next_offset", "offset_literal"]

MAX_OFFSET = 2**128  # the successor of the last offset of a /0 is still one
DIGITS = len(str(MAX_OFFSET))  # 39
SQLITE_INTEGER_BELOW = 2**62  # so that the successor of an SQLite integer offset is one too


class _Untouched(LargeBinary):
    """SQLite's ``BLOB`` column type, its values handed to and from the driver as they are."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class Offset(TypeDecorator[int]):
    """An offset, exact: see the module's docstring for how each database keeps it."""

    impl = Numeric(DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _Untouched()
        return dialect.type_descriptor(Numeric(DIGITS, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Decimal | int | str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
            # The services check offsets first: this is a bug, not bad input.
            raise ValueError(f"not an offset: {value!r}")
        if dialect.name != "sqlite":
            return Decimal(value)
        return value if value < SQLITE_INTEGER_BELOW else f"{value:0{DIGITS}d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def offset_literal(value: int) -> ColumnElement[int]:
    """A bound ``Offset`` value, for SQL that has no offset column to take the type from."""
    return literal(value, Offset())


class next_offset(FunctionElement[int]):
    """``offset + 1``, in SQL, for an ``Offset`` column or expression."""

    type = Offset()
    inherit_cache = True
    name = "next_offset"


@compiles(next_offset)
def _next_offset(element: next_offset, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + 1)"


# SQLite: an integer plus one (the last one's successor is the first string); a string in
# three pieces (3, 18 and 18 digits, each within SQLite's integers), carrying from the last.
_NINES = "9" * 18
_ZEROS = "0" * 18
_SQLITE_NEXT = (
    "(CASE WHEN typeof({x}) = 'integer' THEN"
    f" (CASE WHEN {{x}} < {SQLITE_INTEGER_BELOW - 1} THEN {{x}} + 1"
    f" ELSE '{SQLITE_INTEGER_BELOW:0{DIGITS}d}' END)"
    " WHEN typeof({x}) <> 'text' THEN NULL"
    f" WHEN substr({{x}}, 22) <> '{_NINES}'"
    " THEN substr({x}, 1, 21) || printf('%018d', CAST(substr({x}, 22) AS INTEGER) + 1)"
    f" WHEN substr({{x}}, 4, 18) <> '{_NINES}'"
    " THEN substr({x}, 1, 3) || printf('%018d', CAST(substr({x}, 4, 18) AS INTEGER) + 1)"
    f" || '{_ZEROS}'"
    f" ELSE printf('%03d', CAST(substr({{x}}, 1, 3) AS INTEGER) + 1) || '{_ZEROS}{_ZEROS}' END)"
)


@compiles(next_offset, "sqlite")
def _next_offset_sqlite(element: next_offset, compiler: SQLCompiler, **kw: Any) -> str:
    return _SQLITE_NEXT.format(x=compiler.process(element.clauses, **kw))


# The largest whole number every JSON parser reads exactly (an IEEE 754 double's 53 bits).
JSON_EXACT_MAX = 2**53 - 1


def json_exact(value: int) -> int | str:
    """A whole number as JSON carries it exactly: a number within ±``JSON_EXACT_MAX``, else
    the string of its decimal digits (how offsets appear in GraphQL and in event payloads)."""
    return value if -JSON_EXACT_MAX <= value <= JSON_EXACT_MAX else str(value)
