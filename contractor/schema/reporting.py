"""How GraphQL errors are told to the client and to the server's log.

Three kinds, by what caused them (``is_unexpected``):

* GraphQL's own errors (syntax, validation, a variable of the wrong type: their original
  error is None or a ``GraphQLError``) and domain errors (a ``ContractorError``: not found,
  forbidden, invalid input) reach the client as they are, and are logged in one line at INFO
  (``contractor.graphql``), naming the request id, the operation, the path and the code;
* anything else is unexpected: the client sees only "Unexpected error." with
  ``extensions.requestId`` (unless ``debug``), and the log line says the same request id,
  with the traceback.

The request id is the one ``contractor.requestid`` gave the HTTP request or WebSocket
connection (the ``X-Request-ID`` response header).
"""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from contractor import requestid
from contractor.errors import ContractorError

__all__ = ["MASKED_MESSAGE", "ContractorSchema", "MaskUnexpected", "is_unexpected"]

log = logging.getLogger("contractor.graphql")
MASKED_MESSAGE = "Unexpected error."
MAX_LOGGED = 300  # characters of an error message in a log line (it may quote client input)


def is_unexpected(error: GraphQLError) -> bool:
    """Neither GraphQL's own error nor a domain error: masked for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, ContractorError | GraphQLError)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_LOGGED else line[: MAX_LOGGED - 1] + "…"


class ContractorSchema(strawberry.Schema):
    """The schema, logging its errors as the module says (strawberry logs each with its
    traceback at ERROR)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        request = requestid.current()
        operation = getattr(execution_context, "operation_name", None) or "-"
        for error in errors:
            where = ".".join(str(part) for part in error.path) if error.path else "-"
            if is_unexpected(error):
                log.error(
                    "request %s: operation %s at %s: unexpected error: %s",
                    request,
                    operation,
                    where,
                    _one_line(error.message),
                    exc_info=error.original_error,
                )
                continue
            code = getattr(error.original_error, "code", None) or "GRAPHQL_ERROR"
            log.info(
                "request %s: operation %s at %s: %s: %s",
                request,
                operation,
                where,
                code,
                _one_line(error.message),
            )


class MaskUnexpected(MaskErrors):
    """Strawberry's masking of unexpected errors, the request id added to each."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=MASKED_MESSAGE)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"requestId": requestid.current()},
        )
