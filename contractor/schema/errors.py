"""Expected failures as GraphQL types: every mutation returns its payload or one of these,
all implementing the ``Error`` interface (``code``, ``message``, ``field``). A service error a
mutation raises becomes its answer through the schema's exception handlers, once for all."""

from __future__ import annotations

from typing import Any, get_args

import strawberry

from contractor import errors


@strawberry.interface(description="A failure the caller can act on; nothing was changed.")
class Error:
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str
    field: str | None = strawberry.field(description="The input field or key at fault, if one.")


@strawberry.type(description="An argument is malformed or breaks a rule.")
class InvalidInputError(Error):
    pass


@strawberry.type(description="Something named in the arguments does not exist.")
class NotFoundError(Error):
    pass


@strawberry.type(description="The change would duplicate, overlap or still be in use.")
class ConflictError(Error):
    pass


@strawberry.type(description="The object's state does not allow this now.")
class InvalidStateError(Error):
    pass


@strawberry.type(description="The pool has nothing left to allocate.")
class ExhaustedError(Error):
    pass


@strawberry.type(description="Your role does not allow this.")
class ForbiddenError(Error):
    pass


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


AnyError = (
    InvalidInputError
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ExhaustedError
    | ForbiddenError
)

ERROR_TYPES: tuple[type[AnyError], ...] = get_args(AnyError)


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
