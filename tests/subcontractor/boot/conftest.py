"""The boot services' fixtures (``served``: a real Contractor app, ``served.py``)."""

from tests.subcontractor.boot.served import served

__all__ = ["served"]
