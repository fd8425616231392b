"""All SQL and domain rules. Functions take an ``AsyncSession`` and keyword arguments, flush
but never commit: the caller owns the transaction.

Two rules ride on the session itself, as hooks that ``contractor.db.create_session_factory``
installs on every factory it builds (``install_session_hooks``; nothing is installed at
import): the outbox writes an event for every changed inventory object
(``contractor.services.events``), and a transaction that changed a configuration source bumps
the config generation at its commit (``contractor.services.config``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from contractor.services.config import install_generation_bump
from contractor.services.events import install_outbox
from contractor.services.observability import install_commit_counts

__all__ = ["install_session_hooks"]


def install_session_hooks(session_class: type[Session]) -> None:
    """The services' hooks on every session of ``session_class``. The outbox comes first: at
    the commit its events (and, on PostgreSQL, their order lock) are written before the
    config generation's row is locked, as they always were."""
    install_outbox(session_class)
    install_generation_bump(session_class)
    install_commit_counts(session_class)  # the metrics' counts of what a commit did
