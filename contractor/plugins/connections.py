"""The ``connection`` parameter that foundation types' job functions put in their tasks,
built when the task is handed out: the member of a Complex carrying a hosted Foundation, and
the id a create task recorded on the Foundation. A connection is a function, so that the
password it carries is read then and only ever travels inside the task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contractor.models.building import Foundation
from contractor.plugins import JobAccess

__all__ = ["Connection", "member_connection", "with_recorded_id"]

Connection = Callable[[], dict[str, Any]]


def member_connection(foundation: Foundation, job: JobAccess, complex_kind: str) -> Connection:
    """The endpoint and credentials of the member carrying ``foundation`` (``job.member``),
    a ``ValueError`` when it is not placed on a member of a ``complex_kind`` complex."""
    locator = foundation.locator

    def connection() -> dict[str, Any]:
        member = job.member
        if member is None:
            raise ValueError(
                f"foundation {locator!r} is not placed on a member of a {complex_kind} complex "
                "(create it with a complex)"
            )
        return {
            "foundation": locator,
            "member": member.structure,
            "endpoint": member.endpoint,
            "username": member.username,
            "password": member.password,
        }

    return connection


def with_recorded_id(
    connection: Connection, foundation: Foundation, field: str, what: str, key: str = ""
) -> Connection:
    """``connection`` with the foundation's ``field`` (the id of its ``what``, recorded by its
    create task) under ``key`` (default: ``field``); a ``ValueError`` while it has none."""

    def found() -> dict[str, Any]:
        value = getattr(foundation, field)
        if not value:
            raise ValueError(
                f"foundation {foundation.locator!r} has no {field}: create its {what} first"
            )
        return {**connection(), key or field: value}

    return found
