"""GraphQL error messages that quote a short excerpt of the client's input at most.

graphql-core quotes what it could not parse or validate whole (``Syntax Error: Unexpected
Name 'AAAA…'`` with every character of a megabyte-long name). ``BoundedMessages`` cuts the
messages of parse and validation errors with ``contractor.errors.bounded`` right after those
steps, before the errors are logged (where a long document is not quoted either), and every
message of the answer once the operation has run (domain errors are bounded already, where
they are raised).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from contractor.errors import bounded

__all__ = ["BoundedMessages"]


# A document longer than this is not quoted around an error's location in the log (graphql-core
# prints the whole line there, in pieces: a megabyte of it for a one-line document).
QUOTED_DOCUMENT = 10_000


def _bound(errors: Iterable[GraphQLError] | None, *, unquoted: bool = False) -> None:
    for error in errors or ():
        error.message = bounded(error.message)
        if unquoted:  # the answer's locations are computed already and stay
            error.nodes = None
            error.source = None


class BoundedMessages(SchemaExtension):
    def _bound_before_logging(self) -> None:
        context = self.execution_context
        long = len(context.query or "") > QUOTED_DOCUMENT
        _bound(context.pre_execution_errors, unquoted=long)

    def on_parse(self) -> Iterator[None]:
        yield
        self._bound_before_logging()

    def on_validate(self) -> Iterator[None]:
        yield
        self._bound_before_logging()

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None:
            _bound(result.errors)
