"""Configuration value keys: the key grammar, its parts, and validation.

A key in a ``config_values`` map is an optional one-character operator (``-`` ``<`` ``>``
``~``), a name that starts with a letter or digit, and an optional ``:Class`` filter made of
letters and digits. Names starting with ``_`` (attributes) or ``__`` (globals) cannot be
written through config values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from contractor.errors import ConfigError

__all__ = [
    "CONFIG_KEY_PATTERN",
    "OPERATORS",
    "ParsedKey",
    "parse_key",
    "validate_config_values",
]

CONFIG_KEY_PATTERN = re.compile(r"[<>\-~]?[a-zA-Z0-9][a-zA-Z0-9_\-]*(:[a-zA-Z0-9]+)?")
"""The key grammar; always applied with ``fullmatch`` (a trailing newline is not allowed)."""

OPERATORS = "-<>~"

# Keys of one layer are applied in the order of their first character along this string
# (a stable sort, so keys sharing a first character keep the layer's order).
_RANK_ORDER = "-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz<>~"


class ParsedKey(NamedTuple):
    """A valid key taken apart: ``"<dns_servers:VCenter"`` → ``("<", "dns_servers", "VCenter")``."""

    rank: int
    op: str
    """One of ``-`` ``<`` ``>`` ``~``, or ``""`` for a plain key."""
    name: str
    class_name: str | None


def _why_invalid(key: str) -> str:
    if not key:
        return "a key cannot be empty"
    body = key[1:] if key[0] in OPERATORS else key
    if body.startswith("_"):
        return "names starting with '_' are reserved for attributes and globals"
    name, _, class_name = body.partition(":")
    if not name:
        return "the name after the operator is missing"
    if name[0] in OPERATORS:
        return "a key takes at most one operator (- < > ~)"
    if ":" in body and not re.fullmatch(r"[a-zA-Z0-9]+", class_name):
        return "the class after ':' must be letters and digits only"
    return (
        "a key is an optional operator (- < > ~), then letters, digits, '_' or '-', "
        "then an optional ':Class'"
    )


@lru_cache(maxsize=8192)
def _parse_str_key(key: str) -> ParsedKey:
    if CONFIG_KEY_PATTERN.fullmatch(key) is None:
        raise ConfigError(f"invalid config key {key!r}: {_why_invalid(key)}", key=key)
    op = key[0] if key[0] in OPERATORS else ""
    body = key[1:] if op else key
    name, sep, class_name = body.partition(":")
    return ParsedKey(_RANK_ORDER.index(key[0]), op, name, class_name if sep else None)


def parse_key(key: object) -> ParsedKey:
    """Split a config key into operator, name and class filter; ``ConfigError`` if invalid."""
    if not isinstance(key, str):
        raise ConfigError(f"invalid config key {key!r}: keys must be strings", key=repr(key))
    return _parse_str_key(key)


def validate_config_values(mapping: Mapping[str, Any]) -> None:
    """Check every key of a ``config_values`` map; ``ConfigError`` names the first bad one.

    Only keys are checked: values are arbitrary (a template that is invalid on its own may
    become valid once ``<``/``>`` operators from other layers complete it).
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"config values must be a map, got {type(mapping).__name__}")
    for key in mapping:
        parse_key(key)
