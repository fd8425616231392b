"""All SQL and domain rules. Functions take an ``AsyncSession`` and keyword arguments, flush
but never commit: the caller owns the transaction."""
