"""The ``tscript`` command: check scripts and run them with the builtins only.

``tscript check FILE...`` prints ``FILE:LINE:COLUMN: message`` and the caret rendering for
every problem of every file: all the parse errors the parser recovers from, and calls to
functions, modules or parameters that do not exist (the builtins, the modules installed hosts
provide through the ``tscript.modules`` entry point, and ``--module NAME[.FUNCTION]``); a
count on stderr; ``--json`` prints ``{"ok", "files", "errors": [{"file", "line", "column",
"message"}]}``. Exit 0 when all are fine, else 1 (2: the modules cannot be loaded).

``tscript run FILE`` runs a script in slices of ``--budget`` steps. ``--json`` prints one
object ``{"outcome", "variables", "error", "events"}``; ``--resume`` continues after
``pause()`` and ``error()`` (as an operator's resume / reset would) and records them in
``events``; ``--roundtrip`` saves the runner to JSON text and restores it before every slice;
``--fast`` completes ``delay()`` at once. Exit 0 when done, 1 when paused, in error or aborted,
2 when the script does not parse.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, NoReturn

import click

from tscript.builtins import Delay
from tscript.checker import ModuleSignature
from tscript.checker import check as check_script
from tscript.errors import (
    ExecutionError,
    ParseError,
    Pause,
    RuntimeSignal,
    StepLimitExceeded,
    UnrecoverableError,
)
from tscript.parser import parse
from tscript.plugins import Signature
from tscript.runner import Runner
from tscript.values import to_output

__all__ = ["installed_modules", "main", "run_script"]

_LABEL = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")


def _read(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


@click.group()
def main() -> None:
    """TScript: check and run blueprint scripts."""


MODULES_ENTRY_POINT = "tscript.modules"


def installed_modules() -> list[ModuleSignature]:
    """The modules the installed hosts give scripts: every ``tscript.modules`` entry point
    names a callable returning ``ModuleSignature``s (Contractor's job modules, say). Modules
    of one name from several hosts are merged: what any of them has is known."""
    found: dict[str, ModuleSignature] = {}
    for entry in entry_points(group=MODULES_ENTRY_POINT):
        for module in entry.load()():
            known = found.get(module.name)
            found[module.name] = module if known is None else known.merged(module)
    return list(found.values())


def _with_extra(modules: list[ModuleSignature], extra: tuple[str, ...]) -> list[ModuleSignature]:
    """Add ``--module NAME`` (any function and value) and ``--module NAME.FUNCTION`` (that
    function, any parameters)."""
    found = {module.name: module for module in modules}
    for text in extra:
        name, _, function = text.partition(".")
        if not _LABEL.match(name) or (function and not _LABEL.match(function)):
            raise click.BadParameter(
                f"{text!r}: give NAME or NAME.FUNCTION (letters, digits, _)", param_hint="--module"
            )
        if not function:
            found[name] = ModuleSignature(name)
            continue
        known = found.get(name)
        if known is None:
            found[name] = ModuleSignature(name, {function: Signature()}, frozenset())
        elif known.functions is not None:
            functions = {function: Signature(), **known.functions}
            found[name] = ModuleSignature(name, functions, known.values)
    return list(found.values())


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--module",
    "extra",
    multiple=True,
    metavar="NAME[.FUNCTION]",
    help="One more module a script may use (any function), or one more function of a module.",
)
@click.option(
    "--standard/--no-standard",
    default=True,
    show_default=True,
    help="Check module calls against the modules installed hosts provide "
    f"(entry points {MODULES_ENTRY_POINT}); --no-standard: only the builtins and --module.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(files: tuple[str, ...], extra: tuple[str, ...], standard: bool, as_json: bool) -> None:
    """Check every FILE: each parse error the parser can recover from, and each call to a
    function, module or parameter that does not exist, with its line, column and a caret.
    Exit 0 when every file is fine, 1 when any is not, 2 when the modules cannot be loaded."""
    try:
        modules = installed_modules() if standard else []
    except Exception as error:
        click.echo(f"tscript check: cannot load the standard modules: {error}", err=True)
        sys.exit(2)
    modules = _with_extra(modules, extra)
    report: list[dict[str, Any]] = []
    failed_files = 0
    for name in files:
        try:
            source = _read(name)
        except (OSError, UnicodeDecodeError) as error:
            problems = [ParseError(f"cannot read the file: {error}", 0, 0)]
        else:
            problems = check_script(source, modules)
        failed_files += bool(problems)
        for problem in problems:
            report.append(
                {
                    "file": name,
                    "line": problem.line,
                    "column": problem.column,
                    "message": problem.message,
                }
            )
            if not as_json:
                click.echo(
                    problem.render(name) if problem.line else f"{name}:0:0: {problem.message}"
                )
    if as_json:
        click.echo(json.dumps({"ok": not report, "files": len(files), "errors": report}))
    elif report:
        count = len(report)
        click.echo(
            f"{count} error{'s' if count > 1 else ''} in {failed_files} of {len(files)} "
            f"file{'s' if len(files) > 1 else ''}",
            err=True,
        )
    sys.exit(1 if report else 0)


def _error(error: RuntimeSignal) -> dict[str, Any]:
    return {"kind": error.kind, "message": error.message, "line": error.line}


def run_script(
    source: str,
    *,
    resume: bool = False,
    budget: int = 1000,
    roundtrip: bool = False,
    fast: bool = False,
    max_steps: int = 1_000_000,
    on_event: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``source`` with the builtins only; the ``tscript run --json`` document.

    Raises ``ParseError`` when the script does not parse.
    """
    runner = Runner(parse(source), max_steps=max_steps)
    events: list[list[Any]] = []

    def record(event: list[Any]) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    outcome = "done"
    failure: dict[str, Any] | None = None
    while True:
        if roundtrip:
            runner = Runner.from_json(json.loads(json.dumps(runner.to_json())))
        try:
            result = runner.run(budget)
        except StepLimitExceeded as error:
            outcome, failure = "error", _error(error)
            break
        except Pause as error:
            if not resume:
                outcome, failure = "paused", _error(error)
                break
            record(["pause", error.message, error.line])
            continue
        except ExecutionError as error:
            if not resume:
                outcome, failure = "error", _error(error)
                break
            record(["error", error.message, error.line])
            continue
        except UnrecoverableError as error:
            outcome, failure = "aborted", _error(error)
            break
        if result.state == "done":
            break
        if result.state == "message":
            record(["message", result.message, result.line])
        elif result.state == "waiting":
            handler = runner.pending_handler
            if isinstance(handler, Delay):
                if fast:
                    handler.finish()
                    record(["delay", handler.seconds, result.line])
                else:
                    time.sleep(min(max(handler.remaining, 0.01), 1.0))
            else:
                time.sleep(0.05)
    with _unlimited_int_digits():
        variables = {name: to_output(value) for name, value in runner.variables.items()}
    return {"outcome": outcome, "variables": variables, "error": failure, "events": events}


@contextlib.contextmanager
def _unlimited_int_digits() -> Iterator[None]:
    """Big ints print in full in the output (Python limits int-to-text conversion)."""
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(saved)


def _parse_failure(error: ParseError, file: str, as_json: bool) -> NoReturn:
    if as_json:
        failure = {
            "kind": "ParseError",
            "message": error.message,
            "line": error.line,
            "column": error.column,
        }
        document = {"outcome": "parse_error", "error": failure, "variables": {}, "events": []}
        click.echo(json.dumps(document))
    else:
        click.echo(error.render(file))
    sys.exit(2)


@main.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--resume", is_flag=True, help="Continue after pause() and error().")
@click.option(
    "--budget",
    type=click.IntRange(min=1, clamp=True),
    default=1000,
    show_default=True,
    help="Step budget of one slice.",
)
@click.option("--roundtrip", is_flag=True, help="Save and restore the runner before every slice.")
@click.option("--fast", is_flag=True, help="Complete delay() at once.")
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Per-job step ceiling.",
)
def run(
    file: str,
    as_json: bool,
    resume: bool,
    budget: int,
    roundtrip: bool,
    fast: bool,
    max_steps: int,
) -> None:
    """Run FILE with the builtin functions only."""
    try:
        source = _read(file)
    except (OSError, UnicodeDecodeError) as error:
        _parse_failure(ParseError(f"cannot read the file: {error}", 1, 1), file, as_json)

    def show(event: list[Any]) -> None:
        if not as_json:
            click.echo(f"{event[0]} (line {event[2]}): {event[1]}")

    try:
        document = run_script(
            source,
            resume=resume,
            budget=budget,
            roundtrip=roundtrip,
            fast=fast,
            max_steps=max_steps,
            on_event=show,
        )
    except ParseError as error:
        _parse_failure(error, file, as_json)
    if as_json:
        with _unlimited_int_digits():
            click.echo(json.dumps(document, allow_nan=False))
    else:
        click.echo(f"outcome: {document['outcome']}")
        failure = document["error"]
        if failure is not None:
            click.echo(f"{failure['kind']} on line {failure['line']}: {failure['message']}")
        with _unlimited_int_digits():
            for name, value in document["variables"].items():
                click.echo(f"{name} = {json.dumps(value, allow_nan=False)}")
    sys.exit(0 if document["outcome"] == "done" else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
