"""A zone's settings, checked: its name servers, its SOA contact, its TTL and SOA timers and
the relations between them (RFC 1912, RFC 2308)."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from bindgen import is_hostname, mailbox_to_rname
from contractor.errors import InvalidInput
from contractor.models.directory import (
    DEFAULT_EXPIRE,
    DEFAULT_MINIMUM,
    DEFAULT_REFRESH,
    DEFAULT_RETRY,
    DEFAULT_TTL,
)
from contractor.services.validation import check_int

__all__ = [
    "MAX_TTL",
    "TIMERS",
    "TIMER_DEFAULTS",
    "check_bool",
    "check_nameservers",
    "check_soa_email",
    "check_timers",
]

TIMERS = ("ttl", "refresh", "retry", "expire", "minimum")
TIMER_DEFAULTS = {
    "ttl": DEFAULT_TTL,
    "refresh": DEFAULT_REFRESH,
    "retry": DEFAULT_RETRY,
    "expire": DEFAULT_EXPIRE,
    "minimum": DEFAULT_MINIMUM,
}
MAX_TTL = 2**31 - 1
_MAX_NEGATIVE_TTL = 86400  # RFC 2308 section 5 advises 1 to 3 hours; a day at most
_MAILBOX = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,189}")


def check_nameservers(value: Any, *, field: str = "nameservers") -> list[str]:
    """Fully qualified host names (``ns1.example.com``; a trailing dot is dropped)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of host names", field=field)
    names: list[str] = []
    for item in value:
        name = item.strip().lower().rstrip(".")
        if not is_hostname(name) or "." not in name:
            raise InvalidInput(
                f"name server {item!r} must be a fully qualified host name such as "
                "'ns1.example.com' (letters, digits and inner '-' in each label)",
                field=field,
            )
        if name in names:
            raise InvalidInput(f"name server {name!r} is listed twice", field=field)
        names.append(name)
    return names


def check_soa_email(value: Any, *, field: str = "soa_email") -> str | None:
    """A mailbox such as ``hostmaster@example.com`` (None: inherit from the parent zone)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MAILBOX.fullmatch(value.strip()):
        raise InvalidInput(
            f"{field} {value!r} must be a mailbox such as 'hostmaster@example.com'", field=field
        )
    text = value.strip()
    local, _, domain = text.rpartition("@")
    if not is_hostname(domain) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidInput(
            f"{field} {value!r} must be a mailbox such as 'hostmaster@example.com'", field=field
        )
    mailbox_to_rname(text)
    return text


def check_timers(timers: dict[str, int], given: Collection[str]) -> None:
    """The TTL and SOA timers of a zone, each a number of seconds, and their relations
    (RFC 1912 section 2.2, RFC 2308 section 5), checked whole on every change: ``timers``
    are the zone's after the change, ``given`` the fields the caller set (an error names the
    one at fault among them, else the one the relation is about)."""
    for name in TIMERS:
        check_int(timers[name], field=name, low=1, high=MAX_TTL)
    refresh, retry, expire = timers["refresh"], timers["retry"], timers["expire"]

    def blame(*fields: str) -> str:
        return next((f for f in fields if f in given), fields[0])

    if retry >= refresh:
        raise InvalidInput(
            f"retry ({retry} s) must be shorter than refresh ({refresh} s): a secondary "
            "whose refresh failed tries again before its next refresh",
            field=blame("retry", "refresh"),
        )
    if expire < refresh + retry:
        raise InvalidInput(
            f"expire ({expire} s) must be at least refresh + retry ({refresh + retry} s), or "
            "a secondary drops the zone before it has tried again (RFC 1912 advises 2 to 4 "
            f"weeks, {DEFAULT_EXPIRE} s by default)",
            field=blame("expire", "refresh", "retry"),
        )
    if timers["minimum"] > _MAX_NEGATIVE_TTL:
        raise InvalidInput(
            f"minimum (the negative-caching TTL, RFC 2308) must be at most "
            f"{_MAX_NEGATIVE_TTL} s, got {timers['minimum']} (1 to 3 hours is advised)",
            field="minimum",
        )


def check_bool(value: Any, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false, got {value!r}", field=field)
    return value
