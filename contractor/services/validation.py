"""Checks on single values (names, hostnames, MACs, config maps) shared by the services."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from contractor.config import validate_config_values
from contractor.errors import InvalidInput

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-]*")
HOSTNAME_RE = re.compile(r"[a-z0-9][a-z0-9\-]*[a-z0-9]")
NETWORK_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-]*(\.[0-9]{1,4})?")
ZONE_NAME_RE = re.compile(r"[a-z][a-z0-9]+")
_MAC_COLON_RE = re.compile(r"[0-9a-f]{2}([:-][0-9a-f]{2}){5}")
_MAC_CISCO_RE = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}")
_MAC_BARE_RE = re.compile(r"[0-9a-f]{12}")


def check_name(value: str, *, field: str, max_length: int = 40, what: str | None = None) -> str:
    """A name: letters, digits, ``_`` and ``-``, starting with a letter or digit."""
    return _check_text(
        value,
        field=field,
        what=what or field,
        max_length=max_length,
        pattern=NAME_RE,
        rule="may only contain letters, digits, '_' and '-', and must start with a letter or digit",
    )


def check_hostname(value: str, *, field: str = "hostname") -> str:
    """A DNS label: lower-case letters, digits and inner '-', at least two characters."""
    return _check_text(
        value,
        field=field,
        what="hostname",
        max_length=63,
        pattern=HOSTNAME_RE,
        rule="must be at least two characters of lower-case letters, digits and '-', not "
        "starting or ending with '-' (no dots: the zone supplies the domain)",
    )


def _check_text(
    value: str, *, field: str, what: str, max_length: int, pattern: re.Pattern[str], rule: str
) -> str:
    """``value`` when it is non-empty text of at most ``max_length`` characters that matches
    ``pattern``; else InvalidInput saying so (``rule`` says what ``pattern`` wants)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{what} {value!r} is longer than {max_length} characters", field=field)
    if not pattern.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} {rule}", field=field)
    return value


def check_description(value: str, *, field: str = "description", max_length: int = 200) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    return value


def normalise_mac(value: str | None, *, field: str = "mac") -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from colon, dash, Cisco dotted or bare-hex forms; None stays None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput("MAC address must be text", field=field)
    text = value.strip().lower()
    if _MAC_COLON_RE.fullmatch(text):
        digits = text.replace(":", "").replace("-", "")
    elif _MAC_CISCO_RE.fullmatch(text):
        digits = text.replace(".", "")
    elif _MAC_BARE_RE.fullmatch(text):
        digits = text
    else:
        raise InvalidInput(
            f"MAC address {value!r} is not in a known form "
            "(aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff)",
            field=field,
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_int(value: Any, *, field: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number, got {value!r}", field=field)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{field} must be {bounds}, got {value}", field=field)
    return value


def check_port(value: Any, *, field: str) -> int:
    """A TCP or UDP port, 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(f"{field} must be 1 to 65535, got {value!r}", field=field)
    return value


def check_pattern(value: Any, *, field: str, pattern: re.Pattern[str], what: str) -> str:
    """``value`` when it is text that ``pattern`` matches (from its start); else InvalidInput
    naming ``field``, saying it must be ``what``."""
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"{field} must be {what}, got {value!r}", field=field)
    return value


def check_string_list(
    value: Any, *, field: str, item_re: re.Pattern[str] | None = None
) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of strings", field=field)
    for item in value:
        if item_re is not None and not item_re.fullmatch(item):
            raise InvalidInput(f"{field} has an invalid entry {item!r}", field=field)
    if len(set(value)) != len(value):
        raise InvalidInput(f"{field} lists an entry twice", field=field)
    return list(value)


def check_json_object(value: Any, *, field: str) -> dict[str, Any]:
    """A JSON object of JSON values (finite numbers, string keys), copied."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a map, got {type(value).__name__}", field=field)
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"{field} holds a value JSON cannot store: {error}", field=field
        ) from None
    copied: dict[str, Any] = json.loads(text)
    return copied


# Keys that hold lists wherever they are set outright (the original checks only the first it
# meets); operators may still prepend or append single items.
_LIST_KEYS = ("dns_servers", "dns_search", "domain_search", "log_servers")


def check_config_values(value: Any, *, field: str = "config_values") -> dict[str, Any]:
    """A config-value map: valid keys (operators, ``:Class``), JSON values, order kept."""
    values = check_json_object(value, field=field)
    validate_config_values(values)
    for key, item in values.items():
        name = key.lstrip("<>-~").split(":", 1)[0]
        if name in _LIST_KEYS and key[0] not in "<>-~" and not isinstance(item, list):
            raise InvalidInput(
                f"config value {key!r} must be a list, got {type(item).__name__}",
                field=f"{field}.{key}",
            )
    return values
