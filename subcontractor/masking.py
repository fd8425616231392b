"""Secrets out of every log line and every message sent back to Contractor.

The agent knows some secrets up front (its token) and learns others from tasks (any string
under a key such as ``password`` or ``secret``). ``Masker.mask`` replaces each known secret and
anything shaped like a subcontractor token; ``MaskingFormatter`` applies it to whole formatted
records, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Masker", "MaskingFormatter", "redacted"]

MASK = "***"
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
_TOKEN = re.compile(r"sct_([a-z0-9]{16})\.[A-Za-z0-9_\-]+")
MIN_LENGTH = 3  # shorter strings would mask ordinary words; keys are redacted regardless
KEEP = 4096


class Masker:
    """The secrets seen so far (the newest ``KEEP``), shared by threads."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) < MIN_LENGTH:
            return
        with self._lock:
            if secret in self._secrets:
                self._secrets.move_to_end(secret)
                return
            self._secrets[secret] = None
            while len(self._secrets) > KEEP:
                self._secrets.popitem(last=False)
            self._pattern = None

    def learn(self, value: Any) -> None:
        """Remember every string under a secret-looking key anywhere in ``value``."""
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _SECRET_KEY.search(key) and isinstance(item, str):
                    self.add(item)
                else:
                    self.learn(item)
        elif isinstance(value, list):
            for item in value:
                self.learn(item)

    def mask(self, text: str) -> str:
        text = _TOKEN.sub(lambda m: f"sct_{m.group(1)}.{MASK}", text)
        with self._lock:
            if self._pattern is None and self._secrets:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


def redacted(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced, for logging."""
    if isinstance(value, dict):
        return {
            key: MASK if isinstance(key, str) and _SECRET_KEY.search(key) else redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


class MaskingFormatter(logging.Formatter):
    def __init__(self, masker: Masker, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        return self.masker.mask(super().format(record))
