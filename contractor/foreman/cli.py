"""``contractor foreman`` (the stepping worker on its own) and ``contractor
subcontractor-token`` (tokens for subcontractor identities)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    import socket

from contractor import logs, metrics, serving
from contractor.command import EnvironmentFailure, prepare, run, settings_of
from contractor.db import create_engine, create_session_factory
from contractor.events.broadcast import EventBroadcaster
from contractor.events.webhooks import events_running
from contractor.foreman.engine import Foreman
from contractor.foreman.hub import Hub
from contractor.monitoring import Monitor, monitor_serving
from contractor.plugins import foundation_types
from contractor.services import tasks as task_service
from contractor.settings import Settings

__all__ = ["foreman_command", "subcontractor_token"]


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


async def run_foreman(
    settings: Settings,
    stop: asyncio.Event | None = None,
    started: Callable[[], object] = lambda: None,
    metrics_socket: socket.socket | None = None,
) -> None:
    """Step jobs, deliver webhooks (``webhooks_enabled``), push DNS updates (zones published
    by updates) and prune old events (``events_retention_days``) until ``stop`` is set (or
    SIGINT/SIGTERM, a clean stop); ``started()`` once those signals stop it cleanly. With
    ``metrics_socket``, /metrics, /readyz and /healthz are served on it meanwhile."""
    foundation_types()
    metrics.instruments().enabled = settings.metrics_enabled
    engine = create_engine(settings)
    metrics.watch_pool(engine)
    hub = Hub()
    hub.attach(engine)
    broadcaster = None
    # it wakes the webhook worker and the DNS pusher when events are written
    if settings.webhooks_enabled or settings.dns_updates_wanted:
        broadcaster = EventBroadcaster(
            database_url=settings.database_url, poll_seconds=settings.events_poll_seconds
        )
        broadcaster.attach(engine)
    foreman = Foreman(
        create_session_factory(engine, writes=True),
        settings=settings,
        hub=hub,
        readers=create_session_factory(engine),
    )
    stop = stop or asyncio.Event()
    monitoring: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if metrics_socket is not None:
        readers = create_session_factory(engine)
        monitor = Monitor(
            settings,
            engine=engine,
            sessions=readers,
            writer_sessions=create_session_factory(engine, writes=True),
            stopping=stop.is_set,
            foreman=foreman,
        )
        monitoring = monitor_serving(monitor, metrics_socket)
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    started()
    listener = (
        None if settings.is_sqlite else asyncio.create_task(hub.listen(settings.database_url))
    )
    try:
        async with monitoring, events_running(settings, broadcaster):
            await foreman.run(stop)
    finally:
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        await engine.dispose()


@click.command("foreman")
@click.pass_context
def foreman_command(ctx: click.Context) -> None:
    """Step jobs and deliver webhooks without serving HTTP. Any number of these (and of
    `contractor serve`) may share one PostgreSQL; run `contractor serve` with
    CONTRACTOR_FOREMAN_ENABLED=false (and CONTRACTOR_WEBHOOKS_ENABLED=false) to leave the
    stepping (and the deliveries) to them."""
    settings = settings_of(ctx)
    sock = None
    if settings.foreman_metrics_port is not None:
        host, port = settings.foreman_metrics_host, settings.foreman_metrics_port
        try:  # first: a port in use is refused before the database is touched
            sock = serving.bind(host, port)
        except OSError as error:
            raise EnvironmentFailure(
                f"cannot listen on {host} port {port} (foreman_metrics_port): "
                f"{error.strerror or error}"
            ) from None
    try:
        prepare(settings, upgrade_schema=settings.migrate_on_start)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    logs.configure(settings)
    doing = "stepping jobs" + (", delivering webhooks" if settings.webhooks_enabled else "")
    say = f"contractor foreman: {doing} (Ctrl-C to stop)"
    if sock is not None:
        say += f"; metrics on {serving.url(sock)}/metrics"
    asyncio.run(
        run_foreman(settings, started=lambda: click.echo(say, err=True), metrics_socket=sock)
    )


@click.group("subcontractor-token")
def subcontractor_token() -> None:
    """Tokens for subcontractors, scoped to sites and modules."""


@subcontractor_token.command("create")
@click.argument("name")
@click.option("--site", "sites", multiple=True, required=True, help="A site it serves (repeat).")
@click.option(
    "--module", "modules", multiple=True, required=True, help="A module it serves (repeat)."
)
@click.pass_context
def token_create(
    ctx: click.Context, name: str, sites: tuple[str, ...], modules: tuple[str, ...]
) -> None:
    """Create a token for subcontractor NAME; printed once, on the last line."""

    async def work(session: AsyncSession) -> str:
        new = await task_service.create_subcontractor_token(
            session, name=name, sites=list(sites), modules=list(modules)
        )
        return new.text

    text = run(settings_of(ctx), work)
    click.echo(f"subcontractor token for {name!r} (shown once; store it now):")
    click.echo(text)
