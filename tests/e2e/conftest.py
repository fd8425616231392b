"""The end-to-end tests' fixtures (``database``: the module's PostgreSQL, ``stack.py``)."""

from tests.e2e.stack import database

__all__ = ["database"]
