"""The console's files: served at /ui/ by the app with a policy that keeps every page on this
origin, shipped in the package, and referring to nothing outside it."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import httpx

from contractor.app import create_app
from contractor.ui import POLICY
from tests.conftest import test_settings as settings_for
from tests.serving import serving_in_thread

STATIC = Path(str(resources.files("contractor.ui").joinpath("static")))


def test_the_shell_and_its_modules_are_served_with_the_policy(sqlite_url: str) -> None:
    with serving_in_thread(create_app(settings_for(sqlite_url))) as base:
        moved = httpx.get(f"{base}/ui")
        assert moved.status_code == 308
        assert moved.headers["location"] == "/ui/"
        shell = httpx.get(f"{base}/ui/")
        assert shell.status_code == 200
        assert shell.headers["content-type"].startswith("text/html")
        assert shell.headers["content-security-policy"] == POLICY
        assert shell.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="app.js">' in shell.text
        # every module the shell imports, and theirs, is there, as JavaScript
        seen: set[str] = set()
        todo = ["app.js"]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            module = httpx.get(f"{base}/ui/{name}")
            assert module.status_code == 200, name
            assert module.headers["content-type"].startswith("text/javascript"), name
            todo += re.findall(r'from "\./([a-z]+\.js)"', module.text)
        assert {"api.js", "dom.js", "job.js", "target.js"} <= seen
        assert httpx.get(f"{base}/ui/console.css").status_code == 200
        missing = httpx.get(f"{base}/ui/nothing.js")
        assert missing.status_code == 404
        assert missing.headers["content-security-policy"] == POLICY


def test_no_file_refers_outside_the_origin() -> None:
    files = sorted(STATIC.iterdir())
    assert {path.name for path in files} >= {"index.html", "app.js", "console.css"}
    for path in files:
        text = path.read_text()
        assert not re.search(r"(?<![a-z])(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name
        assert "innerHTML" not in text, path.name  # data goes in as text only


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(part.strip().split(" ", 1) for part in POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'"
