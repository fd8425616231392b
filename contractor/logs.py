"""Log lines: one per event, JSON (``--log-format json``) or readable text, with the request
id, the job id and the task id where they apply, and secrets masked.

``configure(settings)`` (``contractor serve``, ``contractor foreman``, every ``serve
--workers`` process) installs one handler on the root logger (standard error) and takes over
uvicorn's loggers, so its lines are formatted the same way; each request's access line is
``access``'s (written inside the request, so it has the request id), uvicorn's
own is off (``uvicorn.access`` at warning). ``log_level`` is the level
of everything, ``log_levels`` (``{"contractor.foreman": "debug", "uvicorn.access":
"warning"}``) of single components.

Each line carries ``request_id`` (the ``X-Request-ID`` the client was told,
``contractor.requestid``), and ``job_id`` and ``task_id`` while ``job_and_task`` says which
job or task the work is for (the foreman's step, a task API call). A JSON line::

    {"time": "2026-12-07T02:40:01.123Z", "level": "warning", "logger": "contractor.foreman.engine",
     "message": "...", "request_id": "9f...", "job_id": 12, "task_id": 40}

Masked (``MASK``) before a line is written, message and traceback alike: API and
subcontractor tokens (``ctr_<key>.<secret>``, ``sct_<key>.<secret>``: the key stays, it
names the token), bearer credentials, a URL's password, the config UUID in ``/config/<uuid>``
and ``/api/v1/signal/<uuid>`` paths (it is a booting machine's secret), values of
secret-named keys (``password=...``, ``"secret": "..."``), and the secret settings
themselves (the TSIG secret, the metrics token, the database password).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from contractor.requestid import peek
from contractor.secret_names import MASK, SECRET_WORDS_PATTERN
from contractor.settings import Settings

__all__ = ["MASK", "Redactor", "configure", "job_and_task", "redactor_for"]

_job_id: ContextVar[int | None] = ContextVar("contractor_log_job_id", default=None)
_task_id: ContextVar[int | None] = ContextVar("contractor_log_task_id", default=None)
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b((?:ctr|sct)_[a-z0-9]{16})\.[A-Za-z0-9_\-]+"), rf"\1.{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {MASK}"),
    (re.compile(r"\b([a-z][a-z0-9+.\-]*://[^:/@\s]*):[^@/\s]+@"), rf"\1:{MASK}@"),
    (re.compile(r"(/(?:config|api/v1/signal)/)[0-9a-fA-F-]{8,}"), rf"\1{MASK}"),
    (
        re.compile(
            rf"(?i)([\"']?\b\w*(?:{SECRET_WORDS_PATTERN})\w*[\"']?\s*[:=]\s*)([\"'])(.*?)\2"
        ),
        rf"\1\2{MASK}\2",
    ),
    (re.compile(rf"(?i)(\b\w*(?:{SECRET_WORDS_PATTERN})\w*=)([^\s&,;\"']+)"), rf"\1{MASK}"),
]


class Redactor:
    """Masks the secret shapes above and the ``secrets`` given (the settings' own)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None

    def __call__(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(MASK, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def redactor_for(settings: Settings) -> Redactor:
    """A ``Redactor`` that also knows ``settings``' secrets."""
    from sqlalchemy.engine import make_url

    secrets: list[str] = []
    for secret in (settings.dns_tsig_secret, settings.metrics_token):
        if secret is not None:
            secrets.append(secret.get_secret_value())
    try:
        password = make_url(settings.database_url).password
    except Exception:  # a URL sqlalchemy cannot read holds no password it would use
        password = None
    if password:
        secrets.append(str(password))
    return Redactor(secrets)


@contextmanager
def job_and_task(job_id: int | None = None, task_id: int | None = None) -> Iterator[None]:
    """Log lines inside carry ``job_id`` and ``task_id`` (those given)."""
    tokens = []
    if job_id is not None:
        tokens.append((_job_id, _job_id.set(job_id)))
    if task_id is not None:
        tokens.append((_task_id, _task_id.set(task_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _context() -> dict[str, Any]:
    found: dict[str, Any] = {}
    request_id = peek()
    if request_id is not None:
        found["request_id"] = request_id
    job_id, task_id = _job_id.get(), _task_id.get()
    if job_id is not None:
        found["job_id"] = job_id
    if task_id is not None:
        found["task_id"] = task_id
    return found


class _Formatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def _parts(self, record: logging.LogRecord) -> tuple[str, str | None]:
        message = self.redact(record.getMessage())
        trace = None
        if record.exc_info:
            trace = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            trace = self.redact(record.exc_text)
        return message, trace


class JsonFormatter(_Formatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message, trace = self._parts(record)
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
            **_context(),
        }
        if trace is not None:
            line["exception"] = trace
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(_Formatter):
    """``time level logger [request_id=... job_id=... task_id=...] message``, a traceback
    after it indented."""

    def format(self, record: logging.LogRecord) -> str:
        message, trace = self._parts(record)
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        context = " ".join(f"{key}={value}" for key, value in _context().items())
        line = f"{when} {record.levelname.lower():<7} {record.name}: " + (
            f"[{context}] {message}" if context else message
        )
        if trace is not None:
            line += "\n" + "\n".join(f"    {part}" for part in trace.splitlines())
        return line


class _Ours(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs (so configuring again replaces it)."""


def configure(settings: Settings) -> None:
    """Install the log handler and levels ``settings`` name (see the module docstring)."""
    redact = redactor_for(settings)
    handler = _Ours(sys.stderr)
    formatter = JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Ours)] + [handler]
    root.setLevel(settings.log_level.upper())
    for name in _UVICORN:  # their lines through ours, formatted the same way
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # uvicorn's access line is written outside the request (no request id): access
    # writes one inside it instead
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for name, level in settings.log_levels.items():
        logging.getLogger(name).setLevel(level.upper())
