"""Expected failures as GraphQL types: every mutation returns its payload or one of these,
all implementing the ``Error`` interface (``code``, ``message``, ``field``). A service error a
mutation raises becomes its answer through the schema's exception handlers, once for all."""

from __future__ import annotations

import functools
import operator
import types
from typing import TYPE_CHECKING, Any, TypeAlias

import strawberry

from contractor import errors


@strawberry.interface(description="A failure the caller can act on; nothing was changed.")
class Error:
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str
    field: str | None = strawberry.field(description="The input field or key at fault, if one.")


def _error_type(name: str, description: str) -> type[Error]:
    """An object type ``name`` implementing ``Error`` and adding nothing to it."""
    kind = types.new_class(name, (Error,))
    kind.__module__ = __name__
    return strawberry.type(kind, description=description)


InvalidInputError = _error_type("InvalidInputError", "An argument is malformed or breaks a rule.")
NotFoundError = _error_type("NotFoundError", "Something named in the arguments does not exist.")
ConflictError = _error_type(
    "ConflictError", "The change would duplicate, overlap or still be in use."
)
InvalidStateError = _error_type("InvalidStateError", "The object's state does not allow this now.")
ExhaustedError = _error_type("ExhaustedError", "The pool has nothing left to allocate.")
ForbiddenError = _error_type("ForbiddenError", "Your role does not allow this.")

ERROR_TYPES = (
    InvalidInputError,
    NotFoundError,
    ConflictError,
    InvalidStateError,
    ExhaustedError,
    ForbiddenError,
)

if TYPE_CHECKING:
    AnyError: TypeAlias = Error  # for the type checker, each of them is an Error
else:
    AnyError = functools.reduce(operator.or_, ERROR_TYPES)  # the union of them, for Strawberry


@strawberry.type(description="Too many failed logins lately: try again after a while.")
class ThrottledError(Error):
    retry_after: int = strawberry.field(description="Seconds to wait before trying again.")

    @classmethod
    def of(cls, refusal: errors.Throttled) -> ThrottledError:
        return cls(
            code=refusal.code,
            message=refusal.message,
            field=refusal.field,
            retry_after=refusal.retry_after,
        )


class _Answer:
    """Turns a service error raised by a field whose type is a union with the Error types
    (a mutation's result) into that union's member; elsewhere the error is raised."""

    def __init__(self, exception_type: Any, error_type: type[AnyError]) -> None:
        self.exception_type = exception_type
        self.error_type = error_type

    def handle(self, exception: errors.ContractorError, *, field: Any, info: Any) -> AnyError:
        return self.error_type(
            code=exception.code, message=exception.message, field=exception.field
        )


# The first that matches answers (the most specific type that applies).
ERROR_HANDLERS = (
    _Answer(errors.InvalidInput, InvalidInputError),
    _Answer(errors.NotFound, NotFoundError),
    _Answer(errors.Conflict, ConflictError),
    _Answer(errors.InvalidState, InvalidStateError),
    _Answer(errors.Exhausted, ExhaustedError),
    _Answer((errors.Forbidden, errors.Unauthorized), ForbiddenError),
    _Answer(errors.ContractorError, InvalidInputError),
)
