"""The outbox: one ``Event`` row per changed inventory object, written in the changing
transaction.

Nothing in the services has to remember to write events. Session hooks, installed on every
session factory by ``contractor.db.create_session_factory`` (``install_outbox``), do it for
every session:

- after each flush, the inventory objects that were inserted, updated or deleted are noted
  (one note per object per transaction: created then updated is one ``created``; created and
  deleted again is nothing); link rows (blueprint parents, scripts, complex members, ...) and
  bulk ``UPDATE``/``DELETE`` statements on them count as an update of the object they belong
  to;
- just before the outermost commit the notes become rows, payloads taken from the objects'
  final state. On PostgreSQL the rows are inserted under a transaction-scoped advisory lock,
  so cursors are handed out in commit order (a reader of "after N" can never see N+2 before
  a late N+1), and a ``pg_notify`` wakes listeners when the transaction commits. A rolled
  back savepoint takes its notes with it.

The acting user is ``session.info["actor"]`` (``set_actor``); the GraphQL mutations and the
CLI set it. Other writers (the job engine) record their own events with ``record_event``,
which joins the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from contractor.models import utcnow
from contractor.models.events import Event
from contractor.secret_names import is_secret_name
from contractor.services.events.objects import (
    CREATED,
    DELETED,
    LINK_COLUMNS,
    LINKS,
    UPDATED,
    Identity,
    generic_identity,
    identity_of,
    scrub,
    snapshot,
)

__all__ = [
    "ACTOR_KEY",
    "ANNOUNCE_KEY",
    "NOTIFY_CHANNEL",
    "WROTE_EVENTS_KEY",
    "announce",
    "commit_statement",
    "has_pending_events",
    "install_outbox",
    "record_event",
    "set_actor",
    "wrote_events",
]

ACTOR_KEY: Final = "actor"
NOTIFY_CHANNEL: Final = "contractor_events"
# The channels a transaction announces (``contractor.services.jobs.announce``), kept on its
# connection's info: on PostgreSQL they are notified just before the commit, all in one
# statement with the events' order lock; the hub fires them in this process at the commit.
ANNOUNCE_KEY: Final = "contractor_announce"
_ANNOUNCED: Final = "contractor.events.announced"
# Set on the connection's info when its transaction wrote events (cleared at rollback); the
# event broadcaster turns it into an in-process wake-up once the connection is handed back.
WROTE_EVENTS_KEY: Final = "contractor.events.wrote"
_NOTES: Final = "contractor.events.notes"
_TOUCHED: Final = "contractor.events.touched"
# Set once the transaction flushed a change to an inventory object, kept even when its notes
# cancel out (created and deleted again): what the DNS publish asks before trusting the log.
_CHANGED: Final = "contractor.events.changed"
# Every transaction that writes events takes this lock just before it inserts them; it is
# held until the commit, so cursor order is commit order.
_ORDER_LOCK: Final = 0x636F6E74726163  # "contrac"


def set_actor(session: AsyncSession | Session, actor: str | None) -> None:
    """Name who makes this session's changes (a username, ``cli:<user>``, ``foreman``)."""
    _sync(session).info[ACTOR_KEY] = actor


# -- notes kept during the transaction -----------------------------------------------------


@dataclass
class _Note:
    kind: str
    obj: Any
    transaction: SessionTransaction | None
    changed: set[str] = field(default_factory=set)
    # Set when the row is gone (deleted) or the caller gave them (record_event).
    identity: Identity | None = None
    object_id: int | None = None
    payload: dict[str, Any] | None = None
    actor: str | None = None


def _sync(session: AsyncSession | Session) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def _notes(session: Session) -> dict[Any, _Note]:
    notes: dict[Any, _Note] = session.info.setdefault(_NOTES, {})
    return notes


def _note(session: Session, obj: Any, kind: str, changed: Iterable[str] = ()) -> None:
    key = identity_key(instance=obj)
    notes = _notes(session)
    current = notes.get(key)
    transaction = session.get_nested_transaction()
    if current is None:
        note = _Note(kind, obj, transaction, set(changed))
        if kind == DELETED:
            _freeze(note)
        notes[key] = note
        return
    if kind == DELETED:
        if current.kind == CREATED:
            del notes[key]  # created and deleted in one transaction: nothing happened
            return
        current.kind = DELETED
        _freeze(current)
    elif kind == CREATED and current.kind == DELETED:
        current.kind = UPDATED  # deleted and put back under the same key
        current.obj = obj
        current.identity = current.payload = None
    elif current.kind == UPDATED:
        current.changed.update(changed)


def _freeze(note: _Note) -> None:
    """A deleted object's identity and payload, taken while its attributes are still there."""
    note.identity = identity_of(note.obj)
    note.object_id = inspect(note.obj).identity[0]
    note.payload = snapshot(note.obj, loaded_only=True)


def _touch(session: Session, owner: type[Any], owner_id: Any, what: str) -> None:
    if owner_id is None:
        return
    session.info[_CHANGED] = True
    touched: dict[tuple[type[Any], int], set[str]] = session.info.setdefault(_TOUCHED, {})
    touched.setdefault((owner, int(owner_id)), set()).add(what)


def _changed_attributes(obj: Any) -> list[str]:
    state = inspect(obj)
    return [
        attr.key
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
        and not is_secret_name(attr.key)
        and attr.key != "updated"
    ]


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    for obj in session.new:
        _seen(session, obj, CREATED)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            _seen(session, obj, UPDATED)
    for obj in session.deleted:
        _seen(session, obj, DELETED)


def _seen(session: Session, obj: Any, kind: str) -> None:
    for column in LINK_COLUMNS.get(getattr(obj, "__table__", None), ()):
        owner, what = LINKS[column]
        _touch(session, owner, getattr(obj, column.key), what)
    if identity_of(obj) is None:
        return
    session.info[_CHANGED] = True
    _note(session, obj, kind, _changed_attributes(obj) if kind == UPDATED else ())


def _on_orm_execute(state: ORMExecuteState) -> None:
    """Bulk UPDATE and DELETE skip the flush: count them as updates of their owners."""
    if not (state.is_update or state.is_delete):
        return
    statement: Any = state.statement
    columns = LINK_COLUMNS.get(getattr(statement, "table", None), ())
    where = getattr(statement, "whereclause", None)
    if not columns or where is None:
        return
    for element in visitors.iterate(where):
        if (
            isinstance(element, BinaryExpression)
            and element.operator is operators.eq
            and isinstance(element.right, BindParameter)
        ):
            for column in columns:
                if (
                    getattr(element.left, "name", None) == column.name
                    and getattr(element.left, "table", None) is column.table
                ):
                    owner, what = LINKS[column]
                    _touch(state.session, owner, element.right.effective_value, what)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        session.info.pop(_NOTES, None)
        session.info.pop(_TOUCHED, None)
        session.info.pop(_ANNOUNCED, None)
        return
    notes = _notes(session)
    for key, note in list(notes.items()):
        transaction = note.transaction
        while transaction is not None:
            if transaction is previous:
                del notes[key]
                break
            transaction = transaction.parent


def record_event(
    session: AsyncSession | Session,
    *,
    kind: str,
    object: Any,
    payload: Mapping[str, Any] | None = None,
    changed: Sequence[str] = (),
    object_type: str | None = None,
    site_id: int | None = None,
    blueprint_id: int | None = None,
    actor: str | None = None,
) -> None:
    """Write an event about ``object`` when this transaction commits (never if it rolls back).

    For changes the outbox cannot see as row changes, such as job transitions (``kind`` like
    ``"queued"``, ``"done"``, ``"progress"``). ``object`` is any mapped row; its type, id,
    name, site and blueprint are read at commit (so a row added but not yet flushed is fine)
    unless given here; ``actor`` defaults to the session's. ``payload`` is scrubbed of
    secret-named keys. The row's own column changes are not in this event (a job's are not
    reported at all; an inventory object's are an event of their own).
    """
    sync = _sync(session)
    identity = identity_of(object) or generic_identity(object)
    if object_type is not None:
        identity.object_type = object_type
    if site_id is not None:
        identity.site_id = site_id
    if blueprint_id is not None:
        identity.blueprint_id = blueprint_id
    note = _Note(
        kind,
        object,
        sync.get_nested_transaction(),
        set(changed),
        identity=identity,
        object_id=_persistent_id(object),  # a deleted row's is needed at the commit
        payload=scrub(dict(payload or {})),
        actor=actor,
    )
    notes = _notes(sync)
    notes[("recorded", len(notes), id(note))] = note


def _persistent_id(obj: Any) -> int | None:
    key = inspect(obj).identity
    return None if key is None else int(key[0])


async def announce(session: AsyncSession, *channels: str) -> None:
    """Wake whoever waits on ``channels`` once this transaction commits (nothing happens on
    rollback): on PostgreSQL a NOTIFY for every process, sent just before the commit; in this
    process the hub fires them at the commit (``contractor.foreman.hub``)."""
    connection = await session.connection()
    pending: set[str] = connection.info.setdefault(ANNOUNCE_KEY, set())
    pending.update(channels)
    session.sync_session.info[_ANNOUNCED] = True


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the outermost commit writes
    # SQLAlchemy flushes what is still pending only after this hook: flush it now, so a
    # change only the commit would flush gets its event in this transaction too
    session.flush()
    pending = _take_pending(session)
    if pending is None:
        return
    connection, channels, values = pending
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(*_postgresql_statement(channels, values))
    elif values:
        connection.execute(insert(Event), values)


def _take_pending(session: Session) -> tuple[Connection, list[str], list[dict[str, Any]]] | None:
    """What this transaction has to send at its commit: the channels it announced and its
    event rows (taken off the session, so they are sent once); None for nothing."""
    announced = session.info.pop(_ANNOUNCED, False)
    values = _event_rows(session) if session.info.get(_NOTES) or session.info.get(_TOUCHED) else []
    if not values and not announced:
        return None
    connection = session.connection()
    if values:
        connection.info[WROTE_EVENTS_KEY] = True
    return connection, sorted(connection.info.get(ANNOUNCE_KEY, ())), values


def commit_statement(session: Session) -> tuple[str, dict[str, Any]] | None:
    """PostgreSQL: the statement this transaction sends just before its COMMIT (events, their
    order lock, NOTIFYs), taken off the session for a caller that sends it together with the
    COMMIT (``contractor.services.hotpath.commit``); None when there is nothing to send."""
    session.flush()
    pending = _take_pending(session)
    if pending is None:
        return None
    _, channels, values = pending
    return _postgresql_statement(channels, values)


# The event columns and their types, for the plain SQL below.
_EVENT_COLUMNS: Final = (
    ("at", "timestamptz"),
    ("kind", "varchar"),
    ("object_type", "varchar"),
    ("object_id", "bigint"),
    ("object_name", "varchar"),
    ("site_id", "integer"),
    ("blueprint_id", "integer"),
    ("actor", "varchar"),
    ("changed", "json"),
    ("payload", "json"),
)


def _postgresql_statement(
    channels: list[str], values: list[dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """NOTIFY is delivered at the commit wherever it is sent in the transaction, so one
    statement just before the commit sends them all and, when there are events, takes the
    order lock and then inserts the events (each row is made from the lock's row, so no id
    is drawn before the lock is held)."""
    if values:
        channels = sorted({*channels, NOTIFY_CHANNEL})
    calls = [f"pg_notify(%(c{n})s, '')" for n in range(len(channels))]
    parameters: dict[str, Any] = {f"c{n}": name for n, name in enumerate(channels)}
    if not values:
        return f"SELECT {', '.join(calls)}", parameters
    calls.insert(0, "pg_advisory_xact_lock(%(key)s)")
    parameters["key"] = _ORDER_LOCK
    rows = []
    for n, row in enumerate(values):
        cells = []
        for name, kind in _EVENT_COLUMNS:
            value = row[name]
            parameters[f"e{n}_{name}"] = json.dumps(value) if kind == "json" else value
            cells.append(f"%(e{n}_{name})s::{kind}")
        rows.append(f"({', '.join(cells)})")
    names = ", ".join(name for name, _ in _EVENT_COLUMNS)
    return (
        f"WITH turn AS MATERIALIZED (SELECT {', '.join(calls)}) "
        f"INSERT INTO event ({names}) SELECT v.* FROM turn, (VALUES {', '.join(rows)}) "
        f"AS v({names})",
        parameters,
    )


def _event_rows(session: Session) -> list[dict[str, Any]]:
    """The event rows of what this transaction changed (the notes taken off the session)."""
    session.flush()
    notes = session.info.pop(_NOTES, {})
    touched: dict[tuple[type[Any], int], set[str]] = session.info.pop(_TOUCHED, {})
    for (owner, owner_id), what in touched.items():
        key = identity_key(owner, owner_id)
        note = notes.get(key)
        if note is not None:
            if note.kind == UPDATED:
                note.changed.update(what)
            continue
        obj = session.get(owner, owner_id)
        if obj is not None:
            notes[key] = _Note(UPDATED, obj, None, set(what))
    rows = [_row(note) for note in notes.values()]
    if not rows:
        return []
    _resolve_owners(session, rows)
    actor = session.info.get(ACTOR_KEY)
    now = utcnow()
    values = [
        {
            "at": now,
            "kind": note.kind,
            "object_type": identity.object_type,
            "object_id": object_id,
            "object_name": identity.name[:200],
            "site_id": identity.site_id,
            "blueprint_id": identity.blueprint_id,
            "actor": note.actor or actor,
            "changed": sorted(note.changed),
            "payload": payload,
        }
        for note, identity, object_id, payload in rows
    ]
    return values


def _row(note: _Note) -> tuple[_Note, Identity, int, dict[str, Any]]:
    if note.identity is not None and note.payload is not None and note.kind == DELETED:
        assert note.object_id is not None
        return note, note.identity, note.object_id, note.payload
    identity = note.identity or identity_of(note.obj) or generic_identity(note.obj)
    object_id = int(inspect(note.obj).identity[0])
    payload = note.payload if note.payload is not None else snapshot(note.obj)
    return note, identity, object_id, payload


def _resolve_owners(
    session: Session, rows: list[tuple[_Note, Identity, int, dict[str, Any]]]
) -> None:
    """Give events of parts (interfaces, addresses, dependencies) their owner's site and
    blueprint: from the identity map when loaded, else one query per owner type."""
    wanted: dict[type[Any], set[int]] = {}
    for _n, identity, _i, _p in rows:
        if identity.owner is not None:
            wanted.setdefault(identity.owner[0], set()).add(identity.owner[1])
    found: dict[tuple[type[Any], int], tuple[int | None, int | None]] = {}
    for model, ids in wanted.items():
        missing = []
        for owner_id in ids:
            obj = session.identity_map.get(identity_key(model, owner_id))
            if obj is None:
                missing.append(owner_id)
            else:
                found[(model, owner_id)] = (obj.site_id, getattr(obj, "blueprint_id", None))
        if missing:
            blueprint = getattr(model, "blueprint_id", None)
            columns = [model.id, model.site_id] + ([blueprint] if blueprint is not None else [])
            for row in session.execute(select(*columns).where(model.id.in_(missing))):
                found[(model, row[0])] = (row[1], row[2] if len(row) > 2 else None)
    for _n, identity, _i, _p in rows:
        if identity.owner is not None:
            site, blueprint_id = found.get(identity.owner, (None, None))
            identity.site_id = identity.site_id or site
            identity.blueprint_id = identity.blueprint_id or blueprint_id


def install_outbox(session_class: type[Session]) -> None:
    """Make every session of ``session_class`` write its events (``contractor.db`` calls this
    for each session factory it builds, each with a class of its own: install it once per
    class)."""
    for name, listener in (
        ("after_flush", _after_flush),
        ("before_commit", _before_commit),
        ("after_transaction_end", _after_transaction_end),
        ("after_soft_rollback", _after_soft_rollback),
        ("do_orm_execute", _on_orm_execute),
    ):
        event.listen(session_class, name, listener)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (its events written) or rolled back
        session.info.pop(_CHANGED, None)


def has_pending_events(session: AsyncSession | Session) -> bool:
    """Whether this transaction changed an inventory object, its events still to be written
    at the commit: true even when the changes cancel out (created and deleted again) and
    after a rolled back savepoint. Call it after a flush (unflushed changes are not seen)."""
    return bool(_sync(session).info.get(_CHANGED))


def wrote_events(connection: Connection) -> bool:
    """Whether the connection's last transaction wrote events (and forget it)."""
    return bool(connection.info.pop(WROTE_EVENTS_KEY, False))
