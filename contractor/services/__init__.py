"""All SQL and domain rules. Functions take an ``AsyncSession`` and keyword arguments, flush
but never commit: the caller owns the transaction."""

# The outbox's session hooks: every session that changes the inventory writes its events.
from contractor.services import events as events
