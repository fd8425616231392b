"""``contractor.command.ContractorGroup``: what a command raises, as one line and an exit
status (the traceback first under --debug)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from contractor.command import DEBUG, ContractorGroup
from contractor.errors import DatabaseNotReady, NotFound


def _group(error: BaseException) -> click.Group:
    @click.group(cls=ContractorGroup)
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def group(ctx: click.Context, debug: bool) -> None:
        ctx.meta[DEBUG] = debug

    @group.command()
    def fail() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (DatabaseNotReady("cannot reach database x"), 2, "cannot reach database x"),
        (NotFound("user 'x' does not exist"), 1, "user 'x' does not exist"),
        (PermissionError(13, "Permission denied", "/etc/x"), 2, "/etc/x: Permission denied"),
        (
            ZeroDivisionError("division by zero\nand more"),
            1,
            "unexpected ZeroDivisionError: division by zero "
            "(`contractor --debug ...` shows the traceback)",
        ),
    ],
)
def test_one_line_and_the_status(error: Exception, status: int, line: str) -> None:
    result = CliRunner().invoke(_group(error), ["fail"])
    assert result.exit_code == status
    assert result.output.splitlines() == [f"Error: {line}"]
    debug = CliRunner().invoke(_group(error), ["--debug", "fail"])
    assert debug.exit_code == status
    assert debug.output.startswith("Traceback (most recent call last):")
    assert debug.output.splitlines()[-1] == f"Error: {line}"


def test_usage_errors_and_exits_are_left_to_click() -> None:
    usage = CliRunner().invoke(_group(click.UsageError("no such thing")), ["fail"])
    assert usage.exit_code == 2
    assert "Usage: " in usage.output
    assert CliRunner().invoke(_group(click.exceptions.Exit(3)), ["fail"]).exit_code == 3
