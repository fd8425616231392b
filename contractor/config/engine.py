"""Merging configuration layers: the ``-`` ``<`` ``>`` ``~`` operators and ``:Class`` filters.

A target's configuration is built by applying layers in order to an empty map. A ``values``
layer is a ``config_values`` map whose keys may carry an operator and a class filter; an
``attributes`` layer (``_site``, ``_hostname``, ...) is a plain update. The semantics follow
the original Contractor exactly, odd corners included (``docs/`` and the tests list them):

* keys of one layer run in the order of their first character along
  ``- _ 0-9 A-Z a-z < > ~`` (stable, so keys sharing a first character keep layer order);
* a ``:Class`` key applies only when the class is in the target's class list (exact match);
* ``<``/``>`` prepend/append to strings and lists, update dicts, and are ignored on other
  scalars; ``-`` removes a substring, list items or dict keys; ``~`` deletes the key.

Inputs are never mutated: every value taken from a layer is copied.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from contractor.config.keys import parse_key
from contractor.errors import ConfigError

__all__ = ["LAYER_KINDS", "Layer", "MergeObserver", "Op", "merge", "merge_layers"]

LAYER_KINDS = ("values", "attributes")

Layer = tuple[str, Mapping[str, Any] | None] | tuple[str, Mapping[str, Any] | None, str]
"""``(kind, mapping)`` or ``(kind, mapping, name)``; kind is ``"values"`` or ``"attributes"``."""

Op = Literal[
    "set",  # the key did not exist and now holds the operand
    "replace",  # a plain key overwrote an existing value
    "attribute",  # an attributes layer set the key (existing or not)
    "prepend",  # '<' on a string or list
    "append",  # '>' on a string or list
    "update",  # '<' or '>' on a dict (dict.update)
    "remove",  # '-' on a string, list or dict
    "mask",  # '~' deleted the key
    "no-op",  # the operator had nothing to act on (missing key, or an int/bool/None value)
    "filtered",  # the ':Class' filter did not match the class list
]

_IMMUTABLE = (str, int, float, bool, type(None), datetime.datetime, datetime.date)
_MISSING = object()


class MergeObserver(Protocol):
    """Told about every entry of every layer as it is applied (used for provenance)."""

    def record(
        self, layer: str, op: Op, key: str, original_key: str, operand: Any, removed: Any
    ) -> None:
        """``operand`` is the entry's value as written; ``removed`` what a ``mask`` deleted."""


def copy_value(value: Any) -> Any:
    """A deep copy, fast for JSON shapes (plain dicts, lists and scalars)."""
    kind = type(value)
    if kind is dict:
        return {key: copy_value(item) for key, item in value.items()}
    if kind is list:
        return [copy_value(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def _unpack(layer: object, index: int) -> tuple[str, Mapping[str, Any] | None, str]:
    if not isinstance(layer, Sequence) or isinstance(layer, str) or len(layer) not in (2, 3):
        raise ConfigError(
            f"layer {index} must be a (kind, mapping) or (kind, mapping, name) tuple, "
            f"got {type(layer).__name__}"
        )
    kind, mapping = layer[0], layer[1]
    name = str(layer[2]) if len(layer) == 3 else f"layer {index}"
    if kind not in LAYER_KINDS:
        raise ConfigError(
            f"{name}: unknown layer kind {kind!r} (expected 'values' or 'attributes')"
        )
    if mapping is not None and not isinstance(mapping, Mapping):
        raise ConfigError(f"{name}: a layer must be a map, got {type(mapping).__name__}")
    return kind, mapping, name


def merge(layers: Iterable[Layer], class_list: Iterable[str] | None = ()) -> dict[str, Any]:
    """Apply ``layers`` in order to an empty map and return the result (unrendered).

    ``class_list`` is the foundation's class list (empty or None for Sites and BluePrints): a
    ``key:Class`` entry applies only when ``Class`` is in it. Raises ``ConfigError`` naming
    the key for an invalid key or an operator the value cannot take.
    """
    return merge_layers(layers, class_list, None)


def merge_layers(
    layers: Iterable[Layer], class_list: Iterable[str] | None, observer: MergeObserver | None
) -> dict[str, Any]:
    """``merge`` that reports every applied entry to ``observer`` (when given)."""
    classes = tuple(class_list or ())
    config: dict[str, Any] = {}
    try:
        for index, layer in enumerate(layers):
            kind, mapping, name = _unpack(layer, index)
            if mapping is None:
                continue
            if kind == "values":
                _apply_values(config, mapping, classes, name, observer)
            else:
                for key, value in mapping.items():
                    config[key] = copy_value(value)
                    if observer is not None:
                        observer.record(name, "attribute", key, key, value, None)
    except RecursionError:
        raise ConfigError("configuration values are nested too deeply") from None
    return config


def _operator_error(layer: str, raw_key: str, message: str) -> ConfigError:
    return ConfigError(f"{layer}: config key {raw_key!r}: {message}", key=raw_key)


def _apply_values(
    config: dict[str, Any],
    mapping: Mapping[str, Any],
    classes: tuple[str, ...],
    layer: str,
    observer: MergeObserver | None,
) -> None:
    try:
        entries = sorted(
            ((parse_key(raw), raw, value) for raw, value in mapping.items()),
            key=lambda entry: entry[0].rank,
        )
    except ConfigError as error:
        raise ConfigError(f"{layer}: {error.message}", key=error.key) from None

    for parsed, raw, value in entries:
        name = parsed.name
        op = parsed.op
        if parsed.class_name is not None and parsed.class_name not in classes:
            if observer is not None:
                observer.record(layer, "filtered", name, raw, value, None)
            continue

        done: Op
        removed: Any = None
        if op == "":
            done = "replace" if name in config else "set"
            config[name] = copy_value(value)
        elif op == "~":
            removed = config.pop(name, _MISSING)
            done = "mask" if removed is not _MISSING else "no-op"
        elif name not in config:
            if op == "-":
                done = "no-op"
            else:
                config[name] = copy_value(value)
                done = "set"
        else:
            done = _apply_operator(config, name, op, value, layer, raw)
        if observer is not None:
            observer.record(layer, done, name, raw, value, None if done == "no-op" else removed)


def _apply_operator(
    config: dict[str, Any], name: str, op: str, value: Any, layer: str, raw: str
) -> Op:
    """Apply ``-``, ``<`` or ``>`` to the existing ``config[name]``; return what it did."""
    old = config[name]
    if isinstance(old, str):
        text = value if isinstance(value, str) else str(value)
        if op == "-":
            config[name] = old.replace(text, "", 1)
            return "remove"
        if op == "<":
            config[name] = text + old
            return "prepend"
        config[name] = old + text
        return "append"

    if isinstance(old, dict):
        if op == "-":
            if isinstance(value, str):
                old.pop(value, None)
            elif isinstance(value, list):
                for item in value:
                    # ``del`` (not ``pop``) so an unhashable item fails even on an empty dict.
                    try:
                        del old[item]
                    except KeyError:
                        pass
                    except TypeError:
                        raise _operator_error(
                            layer, raw, f"cannot remove {item!r} from a dict: not a valid key"
                        ) from None
            else:
                return "no-op"
            return "remove"
        if not isinstance(value, dict):
            raise _operator_error(
                layer,
                raw,
                f"{op!r} on a dict value needs a dict operand, got {type(value).__name__}",
            )
        old.update(copy_value(value))
        return "update"

    if isinstance(old, list):
        if op == "-":
            for item in value if isinstance(value, list) else (value,):
                with contextlib.suppress(ValueError):
                    old.remove(item)
            return "remove"
        items = copy_value(value) if isinstance(value, list) else [copy_value(value)]
        if op == "<":
            config[name] = items + old
            return "prepend"
        config[name] = old + items
        return "append"

    # int, float, bool, None and anything else: the original ignores the operator.
    return "no-op"
