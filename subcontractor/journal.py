"""Answers not yet acknowledged by Contractor, kept on disk until accepted or rejected.

One small JSON file per answer in the journal directory, written to a temporary name, synced
and renamed, so a crash leaves either the whole entry or none. An entry is removed when
Contractor accepts or rejects the answer; whatever is left when the agent stops is sent again
after it starts. A lock file keeps two agents off one journal.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from subcontractor.config import ConfigError

__all__ = ["Entry", "Journal"]


@dataclass
class Entry:
    kind: str  # "result" or "error"
    task_id: int
    job_id: int
    module: str
    function: str
    cookie: str
    lease: str
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    retryable: bool = False
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return f"{self.task_id:012d}-{self.lease}.json"

    def describe(self) -> str:
        return f"task {self.task_id} ({self.module}.{self.function}, job {self.job_id})"


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock: TextIO | None = None

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = (self.directory / ".lock").open("a")
        except OSError as error:
            raise ConfigError(
                f"agent.journal_dir (flag --journal-dir): cannot use {self.directory}: "
                f"{error.strerror}"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ConfigError(
                f"agent.journal_dir (flag --journal-dir): {self.directory} is in use by another "
                "subcontractor (give each its own)"
            ) from None
        self._lock = lock

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def add(self, entry: Entry) -> Entry:
        final = self.directory / entry.name
        temporary = final.with_suffix(".tmp")
        record = asdict(entry)
        record.pop("path")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        entry.path = final
        return entry

    def remove(self, entry: Entry) -> None:
        if entry.path is not None:
            entry.path.unlink(missing_ok=True)
            entry.path = None

    def pending(self) -> list[Entry]:
        """Entries left from before, oldest task first; unreadable ones are set aside."""
        entries = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                entry = Entry(**record)
            except (OSError, ValueError, TypeError):
                path.rename(path.with_suffix(".bad"))
                continue
            entry.path = path
            entries.append(entry)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        return entries
