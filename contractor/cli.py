"""The ``contractor`` command: serve, database, users and tokens."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from contractor.cli_accounts import token, user
from contractor.cli_bootimage import discovery_image
from contractor.command import (
    DEBUG,
    ContractorGroup,
    EnvironmentFailure,
    directory_for_output,
    file_for_input,
    file_for_output,
    keep_created_database,
    prepare,
    run_with_sessions,
)
from contractor.command import run as _run
from contractor.command import settings_of as _settings
from contractor.errors import ContractorError
from contractor.foreman.cli import foreman_command, subcontractor_token
from contractor.plugins import foundation_types
from contractor.settings import Settings

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


def _bounded(
    name: str, low: int, high: int, default: int, help: str
) -> Callable[[Decorated], Decorated]:
    """An integer option from ``low`` to ``high``, its default shown in ``--help``."""
    return click.option(
        name, type=click.IntRange(low, high), default=default, show_default=True, help=help
    )


@click.group(cls=ContractorGroup)
@click.option(
    "--database-url",
    envvar="CONTRACTOR_DATABASE_URL",
    help="SQLAlchemy URL (default: the SQLite file ./contractor.sqlite3).",
)
@click.option("--debug", is_flag=True, help="On a failure, print its traceback too.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as readable text or JSON, one per event (CONTRACTOR_LOG_FORMAT).",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None, debug: bool, log_format: str | None) -> None:
    """Contractor: provision infrastructure and be its single source of truth.

    Every command that uses the database first makes it ready as `serve` does: the SQLite
    default is created or migrated; a PostgreSQL database behind is refused, naming
    `contractor db upgrade`. Failures are one line (exit 2 for the environment: database,
    files; 1 for what the command was asked to do); --debug adds the traceback."""
    ctx.meta[DEBUG] = debug
    try:
        given: dict[str, Any] = {"database_url": database_url, "log_format": log_format}
        ctx.obj = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise click.UsageError(f"bad settings: {problems}") from None


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 8080).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes on the one port (PostgreSQL only); each runs a foreman too.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Run the API server (and, on the embedded SQLite default, migrate first). It announces
    its address once it answers, and exits 0 after a clean stop on SIGINT or SIGTERM."""
    import uvicorn

    from contractor import logs, serving

    settings = _settings(ctx)
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    settings = settings.model_copy(update=updates)
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError(
            "--workers needs PostgreSQL: SQLite has one writer, so run one process on it"
        )
    if workers > 1 and settings.port == 0:
        raise click.UsageError("--workers needs a port to share: name one with --port")
    if workers == 1:
        try:  # first: a port in use is refused before the database is touched
            sock = serving.bind(settings.host, settings.port)
        except OSError as error:
            raise EnvironmentFailure(
                f"cannot listen on {settings.host} port {settings.port}: {_strerror(error)}"
            ) from None
        try:
            prepare(settings, upgrade_schema=settings.migrate_on_start)
        except BaseException:
            sock.close()
            raise
        settings = settings.model_copy(update={"auto_migrate": False})
        address = serving.url(sock)
        from contractor.app import create_app

        logs.configure(settings)
        serving.serve(
            create_app(settings),
            sock,
            log_level=settings.log_level,
            started=lambda: click.echo(f"contractor serving on {address}", err=True),
        )
        return
    prepare(settings, upgrade_schema=settings.migrate_on_start)
    settings = settings.model_copy(update={"auto_migrate": False})
    click.echo(
        f"contractor serving on http://{settings.host}:{settings.port} ({workers} processes)",
        err=True,
    )
    # Each worker process builds its app from these settings (uvicorn imports the factory),
    # and records its metrics into files of a directory of this run's own (the scraped
    # worker adds them up), removed when the server stops.
    with serving.metrics_directory() as directory:
        from contractor.app import SETTINGS_ENV

        os.environ[SETTINGS_ENV] = serving.settings_json(settings)
        os.environ[serving.METRICS_ENV] = directory
        logs.configure(settings)
        uvicorn.run(
            "contractor.app:create_app_from_environment",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=None,
            access_log=False,  # access writes it, with the request id
        )


def _strerror(error: OSError) -> str:
    """The system's words for ``error`` (without what Python adds to them)."""
    return os.strerror(error.errno) if error.errno else str(error)


@main.command("schema")
@click.pass_context
def schema_command(ctx: click.Context) -> None:
    """Print the GraphQL schema (SDL), as committed in schema.graphql."""
    from contractor.schema import build_schema

    foundation_types()
    click.echo(str(build_schema(_settings(ctx))).rstrip("\n"))


@main.group()
def db() -> None:
    """The database schema."""


@db.command()
@click.option(
    "--with-resources",
    is_flag=True,
    help="Then load the BluePrints shipped with Contractor (as `blueprint load --builtin`).",
)
@click.pass_context
def upgrade(ctx: click.Context, with_resources: bool) -> None:
    """Create the database or bring it to the latest schema."""
    prepare(_settings(ctx), upgrade_schema=True)
    click.echo("database is at the latest schema")
    if with_resources:
        from contractor.services import resources

        _echo_report(_run(_settings(ctx), resources.load_builtin))


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _echo_report(report: Any, *, per_file: bool = False) -> None:
    """What a resource load did (a ``resources.LoadReport``): warnings, what changed, a
    summary line per file (``per_file``) and the totals."""
    for file in report.files:
        for warning in [*file.warnings, *file.skipped]:
            click.echo(f"warning: {warning}", err=True)
        for done, labels in (("created", file.created), ("updated", file.updated)):
            for label in labels:
                click.echo(f"{done} {label}")
        if not file.loaded:
            click.echo(f"{file.path}: failed; nothing was loaded from it:", err=True)
            for error in file.errors:
                click.echo(f"  {error}", err=True)
        elif per_file:
            click.echo(
                f"{file.path}: loaded: {len(file.created)} created, {len(file.updated)} updated, "
                f"{file.unchanged} unchanged, {_count(len(file.skipped), 'link')} skipped, "
                f"{_count(len(file.warnings), 'warning')}"
            )
    failed = f"; {len(report.failed)} of {len(report.files)} files failed" if report.failed else ""
    click.echo(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{report.unchanged} unchanged{failed}"
    )


@main.group("dns")
def dns_group() -> None:
    """DNS zones generated from the inventory."""


@dns_group.command("export")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Directory for the zone files and the named.conf fragment (created if missing).",
)
@click.option(
    "--check/--no-check",
    default=True,
    help="Check each new zone file with named-checkzone when it is installed (default: on).",
)
@click.option(
    "--conf-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where named finds the zone files, if not at --out (paths in named.conf).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def dns_export(
    ctx: click.Context, out: str, check: bool, conf_dir: str | None, as_json: bool
) -> None:
    """Write every zone file and a named.conf fragment into OUT; only changed zones are
    rewritten, each atomically. Exits 1 naming every invalid zone (its old file is kept)."""
    import json
    from pathlib import Path

    from contractor.services import dns as dns_service

    directory_for_output(Path(out), "the --out directory")
    zones = _run(_settings(ctx), dns_service.publish_zones)
    # zones published by updates alone are the server's files (its journal): not ours
    zones = [zone for zone in zones if _settings(ctx).dns_mode(zone.name) != "updates"]
    settings = _settings(ctx)
    result = dns_service.export_zones(
        zones,
        Path(out),
        check=check,
        conf_directory=Path(conf_dir) if conf_dir else None,
        allow_transfer=settings.dns_allow_transfer,
        also_notify=settings.dns_also_notify,
    )
    serials = {zone.name: zone.serial for zone in zones}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "written": {name: serials[name] for name in result.written},
                    "unchanged": list(result.unchanged),
                    "removed": list(result.removed),
                    "invalid": result.invalid,
                    "conf": str(Path(out) / dns_service.CONF_NAME),
                },
                indent=2,
            )
        )
    else:
        for name in result.written:
            click.echo(f"wrote {name} (serial {serials[name]})")
        for name in result.removed:
            click.echo(f"removed {name}")
        click.echo(
            f"{len(zones)} zones: {len(result.written)} written, {len(result.unchanged)} "
            f"unchanged, {len(result.invalid)} invalid; include "
            f"{Path(out).absolute() / dns_service.CONF_NAME} in named.conf"
        )
    if result.invalid:
        problems = "; ".join(f"{name}: {why}" for name, why in result.invalid.items())
        raise click.ClickException(f"invalid zones (previous files kept): {problems}")


@dns_group.command("resync")
@click.option(
    "--zone", default=None, help="Only this zone (default: every zone pushed by updates)."
)
@click.option("--dry-run", is_flag=True, help="Only report the differences; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_context
def dns_resync(ctx: click.Context, zone: str | None, dry_run: bool, as_json: bool) -> None:
    """Read each zone published by updates from the DNS server (AXFR, TSIG-signed), print
    how it differs from the inventory (+ missing on the server, - not in the inventory) and
    repair it by updates. Exits 1 when a zone could not be read or repaired."""
    import json

    from contractor.events.dns_updates import resync

    found = run_with_sessions(
        _settings(ctx),
        lambda sessions: resync(sessions, _settings(ctx), zone=zone, dry_run=dry_run),
    )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "zone": d.zone,
                        "missing": list(d.missing),
                        "unexpected": list(d.unexpected),
                        "repaired": d.repaired,
                        "error": d.error,
                    }
                    for d in found
                ],
                indent=2,
            )
        )
    else:
        for d in found:
            for line in d.missing:
                click.echo(f"{d.zone}: + {line}")
            for line in d.unexpected:
                click.echo(f"{d.zone}: - {line}")
            if d.error:
                status = f"error: {d.error}"
            elif d.in_sync:
                status = "in sync"
            else:
                status = "differs (dry run: not repaired)" if dry_run else "repaired"
            click.echo(f"{d.zone}: {status}")
    failed = [d for d in found if d.error]
    if failed:
        raise click.ClickException("; ".join(f"{d.zone}: {d.error}" for d in failed))


@main.group()
def blueprint() -> None:
    """BluePrint resource files (the original's TOML format)."""


@blueprint.command("load")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--builtin", is_flag=True, help="Also load the resources shipped with Contractor.")
@click.option(
    "--all-or-nothing",
    is_flag=True,
    help="Load every file or none: any problem in any file (a link to nothing included) "
    "loads nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the per-file report as JSON.")
@click.pass_context
def blueprint_load(
    ctx: click.Context, files: tuple[Path, ...], builtin: bool, all_or_nothing: bool, as_json: bool
) -> None:
    """Load resource FILES as the original did: each file loads or fails on its own (a
    failing file changes nothing), a link to something neither in the database nor in the
    files is skipped with a warning, and an entry in two files is taken from the later one.
    Links may name entries of later files. Loading the same files again changes nothing.
    Exit status 1 when a file failed."""
    from contractor.services import resources

    paths = list(files)
    if builtin:
        paths = resources.builtin_paths() + paths
    if not paths:
        raise click.UsageError("name resource files to load, or --builtin")
    for path in files:
        file_for_input(path, "resource file")
    if all_or_nothing:
        try:
            checked = resources.read_resources(paths)
        except ContractorError as error:
            raise click.ClickException(f"nothing was loaded:\n{error}") from None

        async def strict(session: Any) -> resources.LoadReport:
            return await resources.apply_resources(session, checked)

        report = _run(_settings(ctx), strict)
    else:

        async def work(session: Any) -> resources.LoadReport:
            return await resources.load_resources(session, paths)

        report = _run(_settings(ctx), work)
    if as_json:
        click.echo(json.dumps({"files": [dataclasses.asdict(f) for f in report.files]}, indent=2))
    else:
        _echo_report(report, per_file=True)
    if report.failed:
        if len(report.failed) < len(report.files):
            keep_created_database(ctx)  # what the other files loaded was committed
        ctx.exit(1)


@blueprint.command("dump")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default stdout)."
)
@click.pass_context
def blueprint_dump(ctx: click.Context, out: Path | None) -> None:
    """Write every script, PXE and blueprint in the resource format."""
    from contractor.services import resources

    if out is not None:
        file_for_output(out, "the --out file")
    text = _run(_settings(ctx), resources.dump_resources)
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as error:
            why = error.strerror
            raise EnvironmentFailure(f"cannot write the --out file {out}: {why}") from None
        click.echo(f"wrote {out}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port (default: the usual port when free, else one the system picks; 0: any).",
)
@_bounded(
    "--foundations", 1, 100, 4, "How many simulated machines (each carries a Linux structure)."
)
@_bounded(
    "--delay", 0, 60, 1, "Seconds each simulated power or boot call takes (for new machines)."
)
@_bounded(
    "--fail-percent",
    0,
    90,
    0,
    "How often a simulated call fails (for new machines); failed calls are retried with back-off.",
)
@click.option(
    "--exit-when-built",
    is_flag=True,
    help="Exit once every job has finished: 0 when all is built, 1 naming the failed jobs.",
)
@click.option(
    "--with",
    "with_types",
    default="",
    metavar="TYPES",
    help="Also build machines of these foundation types, each against its emulator "
    "(comma-separated: aws, redfish; each needs its extra, e.g. pip install "
    "'contractor[aws]').",
)
@click.pass_context
def demo(
    ctx: click.Context,
    host: str,
    port: int | None,
    foundations: int,
    delay: int,
    fail_percent: int,
    exit_when_built: bool,
    with_types: str,
) -> None:
    """Build a demo inventory of simulated machines and serve it: shipped BluePrints, a site
    tree, address blocks, an in-process subcontractor, live job progress, example queries."""
    from contractor.demo import WITH, DemoError, DemoOptions, run_demo

    extras = tuple(dict.fromkeys(n.strip().lower() for n in with_types.split(",") if n.strip()))
    for name in extras:
        if name not in WITH:
            raise click.BadParameter(
                f"{name!r} is not a foundation type the demo can add (it can: {', '.join(WITH)})",
                param_hint="'--with'",
            )

    # The demo migrates whatever database it is given; a problem with it is one line here.
    prepare(_settings(ctx), upgrade_schema=True)
    options = DemoOptions(
        host=host,
        port=port,
        foundations=foundations,
        delay_seconds=delay,
        fail_percent=fail_percent,
        exit_when_built=exit_when_built,
        with_types=extras,
    )
    try:
        status = run_demo(_settings(ctx), options)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    ctx.exit(status)


@main.group("events")
def events_group() -> None:
    """The event log (outbox) behind subscriptions and webhooks."""


@events_group.command("prune")
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Remove what is older than this (default: CONTRACTOR_EVENTS_RETENTION_DAYS, 30).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def events_prune(ctx: click.Context, retention_days: float | None, as_json: bool) -> None:
    """Remove events and finished webhook deliveries older than the retention now (never an
    event a remaining delivery or an active target still needs). `contractor serve` and
    `contractor foreman` also do this every CONTRACTOR_EVENTS_PRUNE_INTERVAL_SECONDS."""
    import json

    from contractor.services import pruning

    settings = _settings(ctx)
    days = retention_days if retention_days is not None else settings.events_retention_days
    if days <= 0:
        raise click.UsageError(
            "the retention is 0 (keep for ever): pass --retention-days or set "
            "CONTRACTOR_EVENTS_RETENTION_DAYS"
        )
    events = deliveries = 0
    while True:
        done: pruning.Pruning = _run(
            settings, lambda session: pruning.prune(session, retention_days=days)
        )
        if done.skipped:
            raise click.ClickException("another process is pruning events now; try again later")
        events += done.events
        deliveries += done.deliveries
        if not done.more:
            break
    if as_json:
        outcome = {"events": events, "deliveries": deliveries, "horizon": done.horizon}
        click.echo(json.dumps(outcome))
    else:
        click.echo(
            f"removed {events} events and {deliveries} finished deliveries older than "
            f"{days:g} days; events up to cursor {done.horizon} are gone"
        )


main.add_command(foreman_command)
main.add_command(subcontractor_token)


main.add_command(user)
main.add_command(token)
main.add_command(discovery_image)
