"""The ``subcontractor`` command (the agent daemon arrives with its own issue)."""

from __future__ import annotations

import click


@click.command()
def main() -> None:
    """Pull tasks from Contractor and run them (not yet available)."""
    click.echo("subcontractor: not yet available", err=True)
    raise SystemExit(1)
