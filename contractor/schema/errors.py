"""Expected failures as GraphQL types: every mutation returns its payload or one of these,
all implementing the ``Error`` interface (``code``, ``message``, ``field``)."""

from __future__ import annotations

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


AnyError = (
    InvalidInputError
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ExhaustedError
    | ForbiddenError
)

ERROR_TYPES = (
    InvalidInputError,
    NotFoundError,
    ConflictError,
    InvalidStateError,
    ExhaustedError,
    ForbiddenError,
)


def to_graphql_error(error: errors.ContractorError) -> AnyError:
    """The GraphQL type of a service error (the most specific that applies)."""
    kind: type[AnyError]
    if isinstance(error, errors.InvalidInput):
        kind = InvalidInputError
    elif isinstance(error, errors.NotFound):
        kind = NotFoundError
    elif isinstance(error, errors.Conflict):
        kind = ConflictError
    elif isinstance(error, errors.InvalidState):
        kind = InvalidStateError
    elif isinstance(error, errors.Exhausted):
        kind = ExhaustedError
    elif isinstance(error, errors.Forbidden | errors.Unauthorized):
        kind = ForbiddenError
    else:
        kind = InvalidInputError
    return kind(code=error.code, message=error.message, field=error.field)
