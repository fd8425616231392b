"""Rows read without the ORM: a record per row, holding its model's column attributes by
name (and the model's own properties), for reads that only look at values.

A page of a thousand nodes reads thousands of rows; through the ORM each becomes an
instrumented object with its state in the session, which costs more than the statement.
A record is a named tuple made from the result row in one call. ``is_a`` answers what
``isinstance`` answers of the ORM object (a polymorphic row's record is made for its
row's own class). A model whose rows are not all plain columns of one table (joined
inheritance, expressions, deferred columns) has no record type: ``reader`` is None for it,
and callers read it through the ORM.
"""

from __future__ import annotations

import collections
import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Column, Select, inspect, select
from sqlalchemy.orm import ColumnProperty, Mapper

__all__ = ["Reader", "Record", "as_records", "is_a", "reader"]


class Record(tuple[Any, ...]):
    """A row's values by its model's attribute names; ``model`` is the row's mapped class."""

    __slots__ = ()
    model: ClassVar[type]

    # one object per row read, as the ORM's are: equal only to itself, hashed by identity
    # (its values may be dicts)
    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    __hash__ = object.__hash__


def is_a(row: Any, model: type) -> bool:
    """``isinstance(row, model)``, for an ORM object or a record of one."""
    if isinstance(row, Record):
        return issubclass(row.model, model)
    return isinstance(row, model)


@dataclass(frozen=True)
class Reader:
    """How records of a model are read: the statement (every column of its table, selected
    as the ORM selects the model), and how each result row becomes a record."""

    statement: Select[Any]
    make: Callable[[Sequence[Any]], Record]

    def column(self, attribute: Any) -> Column[Any]:
        """The table column an attribute of the model is mapped to."""
        prop = attribute.property
        assert isinstance(prop, ColumnProperty)
        found = prop.columns[0]
        assert isinstance(found, Column)
        return found


def _properties(model: type) -> dict[str, property]:
    """The model's own properties (``state``, ``cidr``): computed from its columns."""
    found: dict[str, property] = {}
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, property):
                found[name] = value
    return found


def _columns(mapper: Mapper[Any], tables: Sequence[Any]) -> dict[str, Column[Any]] | None:
    """Each attribute of the mapper by key, with the column of ``tables`` (the first there)
    it reads; None if one is not a plain column of them."""
    found: dict[str, Column[Any]] = {}
    for attribute in mapper.column_attrs:
        columns = [c for c in attribute.columns if isinstance(c, Column) and c.table in tables]
        if (
            len(columns) != len(attribute.columns)
            or not columns
            or attribute.deferred
            or not attribute.key.isidentifier()
            or attribute.key.startswith("_")
        ):
            return None
        found[attribute.key] = min(columns, key=lambda c: tables.index(c.table))
    return found


@functools.cache
def reader(model: type) -> Reader | None:
    """The record reader of ``model`` (a mapped class that inherits from no other; its
    subclasses' tables, if any, are outer-joined as ``with_polymorphic="*"`` does), or
    None where a record would not hold every attribute. Made on first use, which is after
    every foundation type's tables are mapped (``create_app`` maps them first)."""
    mapper: Mapper[Any] = inspect(model)
    if mapper.inherits is not None:
        return None
    base = mapper.local_table
    tables: list[Any] = [base]
    joined: Any = base
    for sub in mapper.self_and_descendants:
        if sub.local_table not in tables:
            if sub.inherit_condition is None:
                return None
            tables.append(sub.local_table)
            joined = joined.outerjoin(sub.local_table, sub.inherit_condition)
    selected: list[Column[Any]] = [c for table in tables for c in table.columns]
    position = {column: n for n, column in enumerate(selected)}
    concrete: dict[Any, Callable[[Sequence[Any]], Record]] = {}
    for sub in mapper.self_and_descendants:
        columns = _columns(sub, tables)
        if columns is None:
            return None
        if not sub.polymorphic_abstract:
            places = tuple(position[column] for column in columns.values())
            concrete[sub.polymorphic_identity] = _maker(sub.class_, tuple(columns), places)
    statement = select(*selected).select_from(joined)
    if mapper.polymorphic_on is None:
        (single,) = concrete.values()
        return Reader(statement, single)
    where = position.get(mapper.polymorphic_on)  # type: ignore[call-overload]
    if where is None:
        return None

    def make(row: Sequence[Any]) -> Record:
        return concrete[row[where]](row)

    return Reader(statement, make)


def as_records(query: Select[Any]) -> tuple[Select[Any], Callable[[Sequence[Any]], Record]] | None:
    """``query``, a select of one mapped class (its criteria, order and FROM as they are),
    as a select of its records' columns, and what makes a record of a result row; None
    where the class has no records or its columns would not come from the same FROM
    (joined inheritance, a join)."""
    described = query.column_descriptions
    if len(described) != 1 or described[0]["expr"] is not described[0]["entity"]:
        return None
    model = described[0]["entity"]
    read = None if model is None else reader(model)
    if read is None:
        return None
    plain = query.with_only_columns(*read.statement.selected_columns)
    froms, plain_froms = query.get_final_froms(), plain.get_final_froms()
    if len(froms) != len(plain_froms):
        return None
    if any(a is not b for a, b in zip(froms, plain_froms, strict=True)):
        return None
    return plain, read.make


def _maker(
    model: type, keys: tuple[str, ...], places: tuple[int, ...]
) -> Callable[[Sequence[Any]], Record]:
    """What makes a record of ``model`` (attributes ``keys``) from a result row that holds
    them at ``places``: a named tuple's ``_make``, without its length check."""
    values = collections.namedtuple(f"{model.__name__}Values", keys)  # type: ignore[misc]
    namespace: dict[str, Any] = {"__slots__": (), "model": model, **_properties(model)}
    kind = type(f"{model.__name__}Record", (values, Record), namespace)
    make = functools.partial(tuple.__new__, kind)
    if places == tuple(range(len(places))) and len(places) > 1:
        return make
    take = operator.itemgetter(*places)
    if len(places) == 1:
        return lambda row: make((take(row),))
    return lambda row: make(take(row))
