"""Provenance: which layer set each configuration key, and which later layers changed it.

``explain`` runs the same merge as ``merge`` while recording every entry of every layer, so
its final values agree with ``merge`` by construction. For each final key it reports the
layer that gave the key its current base value (``set_by``: a plain key, a ``<``/``>`` on a
missing key, or an attributes layer) and the later entries that modified it (``changes``:
prepend, append, update, remove), plus the full ``history`` including overridden values,
masks, entries that did nothing and entries a ``:Class`` filter skipped. Keys deleted by
``~`` and not set again are listed under ``masked``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from contractor.config.engine import Layer, Op, copy_value, merge_layers

__all__ = ["Change", "Explanation", "KeyProvenance", "explain"]

_BASE_OPS: frozenset[Op] = frozenset({"set", "replace", "attribute"})
_CHANGE_OPS: frozenset[Op] = frozenset({"prepend", "append", "update", "remove"})


@dataclass(frozen=True, slots=True)
class Change:
    """One layer entry as it applied to one key."""

    layer: str
    """The layer's name (``layer 0``, ``layer 1``, ... unless the layer was given one)."""
    op: Op
    key: str
    """The key it acted on, without operator or class filter."""
    original_key: str
    """The key as written in the layer, e.g. ``<dns_search:VCenter``."""
    value: Any
    """The entry's value as written in the layer (the operand)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "op": self.op,
            "key": self.key,
            "original_key": self.original_key,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class KeyProvenance:
    """Where one key's value comes from."""

    key: str
    value: Any
    """The merged (unrendered) value; for a masked key, the value the mask deleted."""
    set_by: str | None
    """The layer that gave the key its current base value (``None`` if it never had one)."""
    changes: tuple[Change, ...]
    """Entries after ``set_by`` that modified the value, in order."""
    history: tuple[Change, ...]
    """Every entry that named this key, in order, including overridden and ignored ones."""
    masked_by: str | None = None
    """For a masked key, the layer whose ``~`` deleted it."""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "value": self.value,
            "set_by": self.set_by,
            "changes": [change.to_dict() for change in self.changes],
            "history": [change.to_dict() for change in self.history],
        }
        if self.masked_by is not None:
            result["masked_by"] = self.masked_by
        return result


@dataclass(frozen=True, slots=True)
class Explanation:
    """The result of ``explain``."""

    keys: Mapping[str, KeyProvenance]
    """Every key of the merged map, in the merged map's order."""
    masked: Mapping[str, KeyProvenance]
    """Keys deleted by ``~`` (after some layer set them) and absent from the result."""
    filtered: tuple[Change, ...]
    """Entries skipped because their ``:Class`` is not in the class list."""
    ignored: tuple[Change, ...] = field(default=())
    """Operator entries that did nothing: ``-``/``~`` on a missing key, ``<``/``>``/``-`` on
    an int, float, bool or null value, ``-`` on a dict with an operand that is neither a
    string nor a list."""

    @property
    def values(self) -> dict[str, Any]:
        """The merged map (equal to what ``merge`` returns for the same layers)."""
        return {key: provenance.value for key, provenance in self.keys.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (values are kept as they are: datetimes stay datetimes)."""
        return {
            "keys": {key: item.to_dict() for key, item in self.keys.items()},
            "masked": {key: item.to_dict() for key, item in self.masked.items()},
            "filtered": [change.to_dict() for change in self.filtered],
            "ignored": [change.to_dict() for change in self.ignored],
        }


class _KeyRecord:
    __slots__ = ("changes", "history", "masked_by", "masked_value", "set_by")

    def __init__(self) -> None:
        self.set_by: str | None = None
        self.changes: list[Change] = []
        self.history: list[Change] = []
        self.masked_by: str | None = None
        self.masked_value: Any = None


class _Recorder:
    def __init__(self) -> None:
        self.records: dict[str, _KeyRecord] = {}
        self.filtered: list[Change] = []
        self.ignored: list[Change] = []

    def record(
        self, layer: str, op: Op, key: str, original_key: str, operand: Any, removed: Any
    ) -> None:
        change = Change(layer, op, key, original_key, copy_value(operand))
        record = self.records.setdefault(key, _KeyRecord())
        record.history.append(change)
        if op in _BASE_OPS:
            record.set_by = layer
            record.changes = []
            record.masked_by = None
        elif op in _CHANGE_OPS:
            record.changes.append(change)
        elif op == "mask":
            record.masked_by = layer
            record.masked_value = removed
        elif op == "filtered":
            self.filtered.append(change)
        else:
            self.ignored.append(change)


def explain(layers: Iterable[Layer], class_list: Iterable[str] | None = ()) -> Explanation:
    """Merge ``layers`` like ``merge`` and report where every key's value comes from.

    Layers are ``(kind, mapping)`` or ``(kind, mapping, name)`` tuples; unnamed layers are
    called ``layer 0``, ``layer 1``, ... by position. Raises ``ConfigError`` like ``merge``.
    """
    recorder = _Recorder()
    merged = merge_layers(layers, class_list, recorder)
    keys: dict[str, KeyProvenance] = {}
    for key, value in merged.items():
        record = recorder.records[key]
        keys[key] = KeyProvenance(
            key, value, record.set_by, tuple(record.changes), tuple(record.history)
        )
    masked = {
        key: KeyProvenance(
            key,
            record.masked_value,
            record.set_by,
            tuple(record.changes),
            tuple(record.history),
            masked_by=record.masked_by,
        )
        for key, record in recorder.records.items()
        if key not in merged and record.masked_by is not None
    }
    return Explanation(
        keys=MappingProxyType(keys),
        masked=MappingProxyType(masked),
        filtered=tuple(recorder.filtered),
        ignored=tuple(recorder.ignored),
    )
