"""`contractor demo` for the console's browser tests: a demo inventory served with its
subcontractor answering, an operator `ada` and a reader `rita`, and a client of its API."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from click.testing import CliRunner

from contractor.cli import main
from tests.serving import CHECKOUT, clean_env

PASSWORD = "console-pass-1"
STARTUP = 120.0


@dataclass(frozen=True)
class Demo:
    base: str
    token: str  # the demo user's (an admin)
    database_url: str

    def ask(self, query: str, **variables: object) -> dict[str, object]:
        answer = httpx.post(
            f"{self.base}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        ).json()
        assert "errors" not in answer, answer
        data: dict[str, object] = answer["data"]
        return data

    def cli(self, *arguments: str, given: str | None = None) -> str:
        """``contractor ARGUMENTS`` on the demo's database; its output (it must succeed)."""
        env = clean_env(CONTRACTOR_DATABASE_URL=self.database_url)
        done = CliRunner().invoke(main, list(arguments), env=env, input=given)
        assert done.exit_code == 0, done.output
        return done.output


@contextmanager
def running_demo(folder: Path) -> Iterator[Demo]:
    """`contractor demo` with 6 machines (each call of theirs takes a second), built, with an
    operator `ada` and a reader `rita`; stopped at the end."""
    url = f"sqlite:///{folder / 'demo.sqlite3'}"
    command = [sys.executable, "-m", "contractor", "--database-url", url, "demo", "--port", "0"]
    with subprocess.Popen(
        [*command, "--foundations", "6", "--delay", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=CHECKOUT,
        env=clean_env(),
    ) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + STARTUP
            while not lines or lines[-1] != "serving until interrupted (Ctrl-C)\n":
                assert time.monotonic() < deadline, "".join(lines)
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
            console = next(line for line in lines if line.startswith("Console: "))
            found = re.match(r"Console: (http://[^/]+)/ui/#token=(\S+)", console)
            assert found, console
            demo = Demo(found[1], found[2], url)
            for name, role in (("ada", "operator"), ("rita", "reader")):
                demo.cli("user", "add", name, "--role", role, given=f"{PASSWORD}\n")
            yield demo
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def structure_id(demo: Demo, hostname: str) -> int:
    """The id of the demo structure ``east-web01`` (its site is ``demo-east``)."""
    found = demo.ask(
        "query ($s: String!, $h: String!) { structure(site: $s, hostname: $h) { id } }",
        s=f"demo-{hostname.split('-')[0]}",
        h=hostname,
    )
    return int(found["structure"]["id"])  # type: ignore[index]
