"""The event log: one ``Event`` row per changed inventory object, written in the changing
transaction (``outbox``: session hooks that every session factory installs), and the queries
subscribers and webhooks read it with (``reading``). What an object is as an event sees it
(type, name, site, payload) is in ``objects``.
"""

from contractor.services.events.objects import scrub
from contractor.services.events.outbox import (
    ACTOR_KEY,
    ANNOUNCE_KEY,
    NOTIFY_CHANNEL,
    WROTE_EVENTS_KEY,
    announce,
    commit_statement,
    has_pending_events,
    install_outbox,
    record_event,
    set_actor,
    wrote_events,
)
from contractor.services.events.reading import (
    EventFilter,
    event_document,
    events_after,
    latest_cursor,
    newest_events,
    site_tree,
)

__all__ = [
    "ACTOR_KEY",
    "ANNOUNCE_KEY",
    "NOTIFY_CHANNEL",
    "WROTE_EVENTS_KEY",
    "EventFilter",
    "announce",
    "commit_statement",
    "event_document",
    "events_after",
    "has_pending_events",
    "install_outbox",
    "latest_cursor",
    "newest_events",
    "record_event",
    "scrub",
    "set_actor",
    "site_tree",
    "wrote_events",
]
