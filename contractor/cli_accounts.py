"""``contractor user`` and ``contractor token``: users, their roles, and their API tokens."""

from __future__ import annotations

import sys
from typing import Any

import click

from contractor.command import run as _run
from contractor.command import settings_of as _settings
from contractor.models import ROLES
from contractor.services import auth

__all__ = ["token", "user"]


@click.group()
def user() -> None:
    """Users and their roles."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str) -> None:
    """Add a user; the password comes from a prompt, or from standard input when piped."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    async def work(session: Any) -> None:
        await auth.create_user(
            session,
            username=name,
            role=role,
            password=password,
            hasher=_settings(ctx).password_hasher(),
        )

    _run(_settings(ctx), work)
    click.echo(f"user {name!r} added with role {role}")


@click.group()
def token() -> None:
    """API tokens for services and scripts."""


@token.command("create")
@click.argument("username")
@click.option("--description", default="", help="What the token is for.")
@click.pass_context
def token_create(ctx: click.Context, username: str, description: str) -> None:
    """Create an API token for USERNAME; the token is printed once, on the last line."""

    async def work(session: Any) -> str:
        owner = await auth.get_user(session, username)
        new = await auth.create_token(
            session,
            user=owner,
            description=description,
            hasher=_settings(ctx).password_hasher(),
        )
        return new.text

    text = _run(_settings(ctx), work)
    click.echo(f"token for {username!r} (shown once; store it now):")
    click.echo(text)


# -- administering users and tokens (list, re-role, disable, delete; list, revoke) ----------


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _when(stamp: Any) -> str:
    return "-" if stamp is None else f"{stamp:%Y-%m-%d %H:%M:%S}"


def _user_change(ctx: click.Context, name: str, said: str, **change: Any) -> None:
    async def work(session: Any) -> None:
        await auth.update_user(session, await auth.get_user(session, name), **change)

    _run(_settings(ctx), work)
    click.echo(f"user {name!r} {said}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the users as JSON.")
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List the users: name, role, whether active, when created."""
    import json

    users = _run(_settings(ctx), auth.list_users)
    if as_json:
        fields = ("username", "role", "is_active")
        listed = [
            {**{f: getattr(u, f) for f in fields}, "created": u.created.isoformat()} for u in users
        ]
        click.echo(json.dumps(listed, indent=2))
        return
    rows = [[u.username, u.role, "yes" if u.is_active else "no", _when(u.created)] for u in users]
    _table(rows, ["USERNAME", "ROLE", "ACTIVE", "CREATED"])


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
def user_set_role(ctx: click.Context, name: str, role: str) -> None:
    """Give user NAME the ROLE; their tokens carry it at once."""
    _user_change(ctx, name, f"now has role {role}", role=role)


@user.command("disable")
@click.argument("name")
@click.pass_context
def user_disable(ctx: click.Context, name: str) -> None:
    """Disable user NAME: no login, and their tokens are refused at once (kept for enable)."""
    _user_change(ctx, name, "disabled; their tokens are refused", is_active=False)


@user.command("enable")
@click.argument("name")
@click.pass_context
def user_enable(ctx: click.Context, name: str) -> None:
    """Enable user NAME again (their unrevoked tokens work again)."""
    _user_change(ctx, name, "enabled", is_active=True)


@user.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def user_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete user NAME and their tokens (never the last active admin)."""
    if not yes:
        click.confirm(f"delete user {name!r} and their tokens?", abort=True)

    async def work(session: Any) -> None:
        await auth.delete_user(session, await auth.get_user(session, name))

    _run(_settings(ctx), work)
    click.echo(f"user {name!r} deleted, with their tokens")


@token.command("list")
@click.option("--all", "everything", is_flag=True, help="Also revoked and expired tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
@click.pass_context
def token_list(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """List API and subcontractor tokens (never their secrets), oldest first."""
    import json

    tokens = _run(_settings(ctx), lambda session: auth.list_tokens(session, everything=everything))
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in tokens], indent=2))
        return
    rows = [
        [t.key, t.kind, t.name or "-", t.owner or "-", _when(t.created), _when(t.last_used_at)]
        + ([] if not everything else ["yes" if t.active else "no"])
        for t in tokens
    ]
    header = ["KEY", "KIND", "NAME", "OWNER", "CREATED", "LAST USED"]
    _table(rows, header + (["ACTIVE"] if everything else []))


@token.command("revoke")
@click.argument("key")
@click.option(
    "--kind", type=click.Choice(auth.TOKEN_KINDS), help="When KEY names a token of each kind."
)
@click.pass_context
def token_revoke(ctx: click.Context, key: str, kind: str | None) -> None:
    """Revoke the token KEY (as `token list` shows it, or ctr_<key> / sct_<key>)."""
    settings = _settings(ctx)
    revoked = _run(settings, lambda session: auth.revoke_any_token(session, key, kind=kind))
    if revoked == auth.API:
        click.echo(f"API token {key!r} revoked; it is refused at once")
    else:
        click.echo(
            f"subcontractor token {key!r} revoked; servers refuse it within "
            f"{settings.task_token_cache_seconds:g} s (CONTRACTOR_TASK_TOKEN_CACHE_SECONDS)"
        )
