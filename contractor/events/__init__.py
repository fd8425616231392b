"""Pushing changes out: the per-process event broadcaster that feeds GraphQL subscriptions,
and the webhook worker. The outbox itself (the ``event`` table and the session hooks that
fill it) is ``contractor.services.events``."""
