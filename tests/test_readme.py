"""The README's example queries run against the demo inventory and answer with data.

The examples are what stands between the README's markers ``<!-- demo-examples ... -->`` and
``<!-- /demo-examples -->``: every ``-d '{"query": ...}'`` of an ``sh`` block, and every
query of a ``graphql`` block (each begins with ``#`` comment lines saying what it asks).
They run, as the demo's API user, on the inventory ``contractor.demo.prepare`` makes
(before any job has run), on a fresh database of each kind."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.demo import DemoOptions, prepare
from tests.conftest import make_pg_database
from tests.conftest import test_settings as settings_for
from tests.serving import CHECKOUT

README = CHECKOUT / "README.md"
_SECTION = re.compile(r"<!-- demo-examples\b.*?-->(.*?)<!-- /demo-examples -->", re.DOTALL)
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_CURL_DATA = re.compile(r"-d '(\{.*?\})'")


@dataclass(frozen=True)
class Example:
    title: str
    query: str


def readme_examples(text: str) -> list[Example]:
    """The example queries between the README's demo-examples markers."""
    sections = _SECTION.findall(text)
    assert len(sections) == 1, "README.md needs one <!-- demo-examples --> section"
    examples: list[Example] = []
    for language, body in _FENCE.findall(sections[0]):
        if language == "sh":
            for data in _CURL_DATA.findall(body):
                examples.append(Example("curl -d", json.loads(data)["query"]))
        elif language == "graphql":
            title, lines = "", []
            for line in [*body.splitlines(), "#"]:
                if line.startswith("#"):
                    if lines:
                        examples.append(Example(title, "\n".join(lines).strip()))
                        title, lines = "", []
                    title = f"{title} {line.lstrip('# ')}".strip()
                elif line.strip():
                    assert title, f"a README example query has no '#' line above it: {line}"
                    lines.append(line)
    return examples


def test_the_examples_are_found() -> None:
    """The convention itself: a query per '#' heading, the curl one included."""
    text = (
        '<!-- demo-examples: x -->\n```sh\ncurl -d \'{"query": "{ a }"}\' url\n```\n'
        "```graphql\n# First\n# (two lines)\n{ b\n  c }\n\n# Second\n{ d }\n```\n"
        "<!-- /demo-examples -->\n```graphql\n# Outside\n{ e }\n```\n"
    )
    assert readme_examples(text) == [
        Example("curl -d", "{ a }"),
        Example("First (two lines)", "{ b\n  c }"),
        Example("Second", "{ d }"),
    ]
    assert len(readme_examples(README.read_text())) >= 6


def empty(value: Any) -> bool:
    """Nothing to show: null, an empty list, string or map, or a map of empty values (a
    connection with no edges and a zero total is empty too)."""
    if value is None or value == 0 or value == "" or value is False:
        return True
    if isinstance(value, list):
        return not value
    if isinstance(value, dict):
        return all(empty(item) for item in value.values())
    return False


@dataclass
class Demo:
    http: httpx.AsyncClient
    token: str


@pytest.fixture(params=["sqlite", "postgresql"])
async def demo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Demo]:
    if request.param == "postgresql":
        url = make_pg_database("contractor_readme")
    else:
        url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    settings = settings_for(url)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            prepared = await prepare(session, settings, DemoOptions())
    finally:
        await engine.dispose()
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as http,
    ):
        yield Demo(http, prepared.api_token)


async def test_every_readme_example_answers_on_the_demo(demo: Demo) -> None:
    problems = []
    for example in readme_examples(README.read_text()):
        response = await demo.http.post(
            "/graphql",
            json={"query": example.query},
            headers={"Authorization": f"Bearer {demo.token}"},
        )
        body = response.json()
        if response.status_code != 200 or "errors" in body:
            problems.append(f"{example.title}: {response.status_code} {body}")
            continue
        problems += [
            f"{example.title}: {field} answers nothing on the demo inventory: {value!r}"
            for field, value in body["data"].items()
            if empty(value)
        ]
    assert problems == []


def test_empty() -> None:
    assert all(map(empty, [None, [], {}, "", {"a": None, "b": []}, {"totalCount": 0}]))
    assert not any(map(empty, [[{}], {"a": 1}, "x", {"config": {"k": "v"}}]))
