"""The one mapping from domain errors to REST answers, for every route of the app.

A route raises any ``ContractorError``; the app's exception handler (``exception_handlers``,
given to Starlette by ``create_app``) answers with the error's ``http_status`` and
``{"error": {"code", "message", "field", "request_id"}}`` (the request's ``X-Request-ID``),
and ``WWW-Authenticate`` on 401. A module whose routes answer some errors otherwise says so
per endpoint (``ErrorAnswers``: the config routes, whose answers are never cached). The
GraphQL route reports its errors itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contractor import requestid
from contractor.errors import ContractorError

__all__ = ["ErrorAnswer", "ErrorAnswers", "error_response", "exception_handlers"]

ErrorAnswer = Callable[[ContractorError], Response]
# Endpoints (as routed) whose domain errors get their own answer.
ErrorAnswers = Mapping[Callable[..., Any], ErrorAnswer]


def error_response(error: ContractorError, *, status: int | None = None) -> JSONResponse:
    """The JSON answer for a domain error, with its HTTP status (or ``status``) and the
    request's id (``request_id``, as its ``X-Request-ID`` header says)."""
    headers = {"WWW-Authenticate": 'Bearer realm="contractor"'} if error.http_status == 401 else {}
    body = {**error.as_dict(), "request_id": requestid.current()}
    return JSONResponse({"error": body}, status_code=status or error.http_status, headers=headers)


def exception_handlers(answers: ErrorAnswers) -> dict[Any, Callable[..., Any]]:
    """Starlette's ``exception_handlers`` for the app: a ``ContractorError`` raised by a route
    is answered by ``answers`` for its endpoint, else by ``error_response``."""

    async def contractor_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ContractorError)
        return answers.get(request.scope["endpoint"], error_response)(error)

    return {ContractorError: contractor_error}
