"""The boot services' fixtures (``served``: a real Contractor app; ``contractor``: one whose
site's block is the test module's ``netns``; both in ``served.py``)."""

from tests.subcontractor.boot.served import contractor, served

__all__ = ["contractor", "served"]
