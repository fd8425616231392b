"""The ``subcontractor`` command: ``run`` the agent, ``check`` a configuration, list ``modules``.

Every option of ``run`` and ``check`` overrides the same key of the TOML file given with
``--config`` (or ``$SUBCONTRACTOR_CONFIG``); see ``subcontractor.config`` and
``docs/subcontractor.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from subcontractor import config as config_module
from subcontractor.agent import Agent
from subcontractor.client import Client, Rejected, Unavailable
from subcontractor.config import Config, ConfigError
from subcontractor.journal import Journal
from subcontractor.masking import Masker, MaskingFormatter
from subcontractor.metrics import AgentMetrics
from subcontractor.module import available_modules, load_modules

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def _options(function: F) -> F:
    decorators = [
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(path_type=Path, dir_okay=False),
            help="The TOML configuration file (default: $SUBCONTRACTOR_CONFIG).",
        ),
        click.option("--url", help="Contractor's base URL (contractor.url)."),
        click.option(
            "--token-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="A file holding the subcontractor token (contractor.token_file).",
        ),
        click.option("--site", help="The site to serve (contractor.site)."),
        click.option(
            "--module",
            "modules",
            multiple=True,
            metavar="NAME[=N]",
            help="Serve module NAME, at most N tasks at once (repeat; [modules.NAME]).",
        ),
        click.option("--wait", type=float, help="Long-poll seconds (agent.wait)."),
        click.option(
            "--ca-bundle",
            type=click.Path(path_type=Path, dir_okay=False),
            help="CA certificates to verify Contractor with (contractor.ca_bundle).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Do not verify Contractor's TLS certificate (contractor.verify_tls = false).",
        ),
        click.option(
            "--journal-dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Where unacknowledged answers are kept (agent.journal_dir).",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            help="agent.log_level",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            help="Serve Prometheus metrics on this port (agent.metrics_port; 0: any).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _load(flags: dict[str, Any]) -> Config:
    overrides = {
        "contractor.url": flags["url"],
        "contractor.token_file": flags["token_file"],
        "contractor.site": flags["site"],
        "contractor.ca_bundle": flags["ca_bundle"],
        "contractor.verify_tls": False if flags["insecure"] else None,
        "agent.wait": flags["wait"],
        "agent.journal_dir": flags["journal_dir"],
        "agent.log_level": flags["log_level"],
        "agent.metrics_port": flags["metrics_port"],
    }
    try:
        return config_module.load(
            flags["config_path"], overrides=overrides, module_flags=tuple(flags["modules"])
        )
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _logging(level: str, masker: Masker) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingFormatter(masker, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpcore").setLevel(logging.WARNING)  # every socket event otherwise
    if level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group()
def main() -> None:
    """Pull tasks for one site from Contractor and run them near the hardware."""


@main.command()
@_options
def run(**flags: Any) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    config = _load(flags)
    masker = Masker(config.secrets())
    _logging(config.agent.log_level, masker)
    try:
        modules = load_modules(
            {name: m.concurrency for name, m in config.modules.items()}, config.module_options
        )
        journal = Journal(config.agent.journal_dir)
        journal.open()
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    meters = AgentMetrics(config)
    try:
        address = meters.listen()
    except OSError as error:
        journal.close()
        where = f"{config.agent.metrics_host} port {config.agent.metrics_port}"
        raise click.ClickException(
            f"agent.metrics_port (flag --metrics-port): cannot listen on {where}: "
            f"{error.strerror or error}"
        ) from None
    if address is not None:
        logging.getLogger("subcontractor").info("metrics on %s", address)
    try:
        asyncio.run(_run(config, modules, journal, masker, meters))
    except ConfigError as error:  # found only when starting (the boot endpoint's address)
        raise click.ClickException(f"configuration: {error}") from None
    finally:
        journal.close()


async def _run(
    config: Config, modules: Any, journal: Journal, masker: Masker, meters: AgentMetrics
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    client = Client(config.contractor)
    agent = Agent(config, modules, client, journal, masker, on_event=meters.on_event)
    try:
        with meters.serving(agent):
            await agent.run(stop)
    finally:
        await client.aclose()


@main.command()
@_options
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def check(as_json: bool, **flags: Any) -> None:
    """Check the configuration and modules, and reach Contractor with the token."""
    report: dict[str, Any] = {"ok": False}

    def fail(message: str) -> None:
        report["error"] = message
        if as_json:
            click.echo(json.dumps(report))
            raise SystemExit(1)
        raise click.ClickException(message)

    try:
        config = _load(flags)
    except click.ClickException as error:
        fail(error.message)
        return
    masker = Masker(config.secrets())
    report.update(
        url=config.contractor.url,
        site=config.contractor.site,
        modules={name: m.concurrency for name, m in config.modules.items()},
    )
    try:
        load_modules(
            {name: m.concurrency for name, m in config.modules.items()}, config.module_options
        )
    except ConfigError as error:
        fail(f"configuration: {error}")

    async def reach() -> str:
        client = Client(config.contractor)
        try:
            return await client.check()
        finally:
            await client.aclose()

    try:
        report["contractor"] = asyncio.run(reach())
    except Unavailable as error:
        fail(masker.mask(f"cannot reach Contractor at {config.contractor.url}: {error}"))
    except Rejected as error:
        fail(masker.mask(f"Contractor at {config.contractor.url} refused: {error}"))
    report["ok"] = True
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"configuration: ok ({config.source or 'flags only'})")
    click.echo(f"modules: {', '.join(f'{n} (x{c})' for n, c in report['modules'].items())}")
    click.echo(f"contractor: {config.contractor.url} answered ({report['contractor']}); token ok")
    click.echo(
        f"site {config.contractor.site!r}: the token's sites and modules are checked at the "
        "first poll"
    )


@main.command("modules")
def modules_command() -> None:
    """List the installed modules."""
    for name, target in sorted(available_modules().items()):
        click.echo(f"{name}\t{target}")
