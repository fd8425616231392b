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
    └── Forbidden                        FORBIDDEN            credentials lack the role

Services raise these; the CLI prints them, GraphQL maps them to error types, and the REST
routes to HTTP statuses (``http_status``).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "Conflict",
    "ContractorError",
    "Exhausted",
    "Forbidden",
    "InUse",
    "InvalidInput",
    "InvalidState",
    "NotFound",
    "Pruned",
    "Stale",
    "Throttled",
    "Unauthorized",
]


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
        super().__init__(message)
        self.message = message
        self.field = field

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
