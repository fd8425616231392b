"""The one error hierarchy of Contractor.

Every error a user can cause is a ``ContractorError`` with a stable ``code`` (a short
upper-case string that clients may switch on; never reworded) and a message written for the
person who caused it, naming the field, key or object that is wrong::

    ContractorError                      code
    ├── InvalidInput                     INVALID_INPUT        bad value for a field
    │   └── ConfigError                  CONFIG_ERROR         bad config value, key or template
    ├── NotFound                         NOT_FOUND            no such object
    │   └── Pruned                       PRUNED               events past their retention
    ├── Conflict                         CONFLICT             would duplicate or overlap
    │   ├── InUse                        IN_USE               still used by something else
    │   └── Stale                        STALE                an old task result, lease or cookie
    ├── InvalidState                     INVALID_STATE        the transition is not allowed now
    ├── Exhausted                        EXHAUSTED            nothing left to allocate
    ├── Unauthorized                     UNAUTHORIZED         no valid credentials
    │   └── Throttled                    THROTTLED            too many refused logins: wait
    ├── Forbidden                        FORBIDDEN            credentials lack the role
    ├── TooLarge                         TOO_LARGE            a request body over its limit
    └── DatabaseNotReady                 DATABASE_NOT_READY   unreachable, missing, or behind

Services raise these; the CLI prints them, GraphQL maps them to error types, and the REST
routes to HTTP statuses (``http_status``).

A message quotes what the client sent, but never much of it: ``bounded`` (applied to every
message here, and by GraphQL to graphql-core's own errors) cuts each long run of characters
to an ``excerpt`` and the whole message to ``MESSAGE_LIMIT`` characters, so a 20 MB name
neither comes back in the answer nor lands in a log line.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

__all__ = [
    "EXCERPT_LIMIT",
    "MESSAGE_LIMIT",
    "ConfigError",
    "Conflict",
    "ContractorError",
    "DatabaseNotReady",
    "Exhausted",
    "Forbidden",
    "InUse",
    "InvalidInput",
    "InvalidState",
    "NotFound",
    "Pruned",
    "Stale",
    "Throttled",
    "TooLarge",
    "Unauthorized",
    "bounded",
    "excerpt",
]

# How much of one piece of client input a message quotes, and the longest message.
EXCERPT_LIMIT = 200
MESSAGE_LIMIT = 1000
# A run of 300 characters without a space is one piece of input (a name, a token), not prose;
# a fully qualified host name (253 characters at most) is still quoted whole.
_LONG_RUN = re.compile(r"\S{300,}")


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """``text`` when it is at most ``limit`` characters, else its first ``limit`` characters
    and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def bounded(message: str) -> str:
    """``message`` with every long run of non-space characters cut to an excerpt, and cut
    to ``MESSAGE_LIMIT`` characters itself (and anything UTF-8 cannot carry escaped)."""
    if not message.isascii():  # a lone surrogate (JSON "\udc80") has no UTF-8
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(message) <= EXCERPT_LIMIT:
        return message  # the common case: nothing to look for
    message = _LONG_RUN.sub(lambda run: excerpt(run.group()), message)
    return excerpt(message, MESSAGE_LIMIT)


class ContractorError(Exception):
    """Base of every error Contractor reports to a user. A subclass gives its ``code`` (and
    its ``http_status`` when not its parent's) in its class line."""

    code: ClassVar[str] = "CONTRACTOR_ERROR"
    http_status: ClassVar[int] = 400

    def __init_subclass__(
        cls, *, code: str | None = None, http_status: int | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if http_status is not None:
            cls.http_status = http_status

    def __init__(self, message: str, *, field: str | None = None) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message
        self.field = None if field is None else excerpt(field)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(ContractorError, code="INVALID_INPUT"):
    """A value does not satisfy its field's rules."""


class ConfigError(InvalidInput, code="CONFIG_ERROR"):
    """A configuration value, key or template is invalid, or rendering does not settle."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message, field=key)
        self.key = key


class NotFound(ContractorError, code="NOT_FOUND", http_status=404):
    """The named object does not exist."""


class Pruned(NotFound, code="PRUNED", http_status=410):
    """What was asked for is older than the retention and was removed (events after a
    cursor that has been pruned)."""


class Conflict(ContractorError, code="CONFLICT", http_status=409):
    """The change would duplicate or overlap something that exists."""


class InUse(Conflict, code="IN_USE"):
    """The object cannot be deleted or changed because something still uses it."""


class Stale(Conflict, code="STALE"):
    """A task result, error or heartbeat that is no longer current (answered already, leased
    to someone else, or for an earlier call); nothing was changed."""


class InvalidState(ContractorError, code="INVALID_STATE", http_status=409):
    """The object's current state does not allow this transition."""


class Exhausted(ContractorError, code="EXHAUSTED", http_status=409):
    """A pool (an address block, say) has nothing left to hand out."""


class Unauthorized(ContractorError, code="UNAUTHORIZED", http_status=401):
    """No valid credentials were presented."""


class Throttled(Unauthorized, code="THROTTLED", http_status=429):
    """Too many refused logins for this username or client address lately: refused without
    looking at the password until ``retry_after`` seconds have passed."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(ContractorError, code="FORBIDDEN", http_status=403):
    """The credentials are valid but their role does not allow this."""


class TooLarge(ContractorError, code="TOO_LARGE", http_status=413):
    """A request body is larger than its route allows (refused before it was parsed)."""


class DatabaseNotReady(ContractorError, code="DATABASE_NOT_READY", http_status=503):
    """The database cannot be used as it is: it cannot be reached or opened, it does not
    exist, or its schema is not the one this Contractor needs. The message names the
    database (never its password) and says what to do."""
