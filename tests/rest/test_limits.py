"""Request bodies are limited before anything parses them: 413 in the route's error shape,
fast, never echoed nor logged, with /healthz answering meanwhile; and what is echoed of a
client's input in an error is a short excerpt."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from contractor.app import create_app
from contractor.settings import Settings
from tests.serving import clean_env, contractor_serve

BIG = 20_000_000
PIECE = 64 * 1024
# POST 20 MB to <base>/graphql for <seconds> (in chunks if <chunked> is 1), print the statuses.
UPLOADER = """
import sys, time, httpx
base, chunked, seconds = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3])
whole = b'{"query": "' + b"A" * 20_000_000 + b'"}'
deadline = time.monotonic() + seconds
with httpx.Client(timeout=60) as http:
    JSON = {"content-type": "application/json"}
    while time.monotonic() < deadline:
        body = (whole[i : i + 65536] for i in range(0, len(whole), 65536)) if chunked else whole
        answer = http.post(base + "/graphql", content=body, headers=JSON)
        print(answer.status_code, flush=True)
"""


def _document(size: int) -> bytes:
    """An anonymous GraphQL request of ``size`` bytes: one long name."""
    head, tail = b'{"query": "', b'"}'
    return head + b"A" * (size - len(head) - len(tail)) + tail


def _chunks(size: int) -> Iterator[bytes]:
    """The same, sent in chunks (no Content-Length)."""
    whole = _document(size)
    for start in range(0, size, PIECE):
        yield whole[start : start + PIECE]


def _assert_refused(response: httpx.Response, *, graphql: bool) -> None:
    assert response.status_code == 413, response.text[:300]
    assert len(response.content) < 1000
    assert response.headers["connection"] == "close"
    if graphql:
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "TOO_LARGE"
        assert "CONTRACTOR_GRAPHQL_MAX_BODY_BYTES" in error["message"]
    else:
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("TOO_LARGE", "body")


def test_oversized_bodies_are_refused_at_once_and_healthz_answers(tmp_path: Path) -> None:
    env = clean_env(CONTRACTOR_DATABASE_URL=f"sqlite:///{tmp_path / 'contractor.sqlite3'}")
    log = tmp_path / "serve.log"
    json_type = {"Content-Type": "application/json"}
    with contractor_serve(env, tmp_path, output=log) as base, httpx.Client(timeout=60) as http:
        started = time.monotonic()
        response = http.post(f"{base}/graphql", content=_document(BIG), headers=json_type)
        took = time.monotonic() - started
        _assert_refused(response, graphql=True)
        assert took < 5, took  # it took 7.8 s to parse and echo
        chunked = http.post(f"{base}/graphql", content=_chunks(BIG), headers=json_type)
        _assert_refused(chunked, graphql=True)
        # without a content type it is refused before anything reads it
        assert http.post(f"{base}/graphql", content=_chunks(BIG)).status_code == 400
        # every other route too: the task API (1 MiB) and the rest (64 KiB)
        for path, size in (
            ("/api/v1/subcontractor/poll", 2_000_000),
            ("/api/v1/signal/x", 100_000),
            ("/config/x", 100_000),
        ):
            _assert_refused(http.post(f"{base}{path}", content=_document(size)), graphql=False)
        under = http.post(f"{base}/graphql", content=_document(500_000), headers=json_type)
        assert under.status_code == 200  # read and judged: a syntax error, quoted short
        assert len(under.content) < 2000, under.text[:300]

        # oversized uploads, a few at once (from processes of their own, so that their
        # sending does not slow this one's asking), while /healthz is asked over and over
        uploaders = [
            subprocess.Popen(
                [sys.executable, "-c", UPLOADER, base, str(n % 2), "5"],
                env=clean_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(4)
        ]
        latencies: list[float] = []
        try:
            time.sleep(0.5)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                asked = time.monotonic()
                assert http.get(f"{base}/healthz").status_code == 200
                latencies.append(time.monotonic() - asked)
                time.sleep(0.02)
        finally:
            answers = [uploader.communicate()[0] for uploader in uploaders]
        refused = [int(status) for answer in answers for status in answer.split()]
        assert refused
        assert set(refused) == {413}
        latencies.sort()
        logging.getLogger(__name__).warning(
            "/healthz during %d refused 20 MB uploads: median %.1f ms, max %.1f ms",
            len(refused),
            latencies[len(latencies) // 2] * 1000,
            latencies[-1] * 1000,
        )
        assert latencies[-1] < 1.0  # generous for a shared machine; measured in the report
    printed = log.read_text()
    assert "A" * 300 not in printed
    assert len(printed) < 100_000


def _app(tmp_path: Path, **settings: object) -> TestClient:
    url = f"sqlite:///{tmp_path / 'contractor.sqlite3'}"
    return TestClient(create_app(Settings(database_url=url, **settings)))  # type: ignore[arg-type]


def test_graphql_errors_quote_a_short_excerpt_of_the_document(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _app(tmp_path)
    name = "B" * 900_000
    for document in (
        "{ __typename } " + name,  # a syntax error quotes the token it stopped at
        'mutation { login(username: "u", password: "p") { ' + name + " } }",  # the field
    ):
        response = client.post("/graphql", json={"query": document})
        assert len(response.content) < 2000, response.text[:500]
        (error, *_) = response.json()["errors"]
        assert "B" * 199 + "… (" in error["message"], error  # the run: 'BBB…
        assert "B" * 201 not in error["message"]
        assert "more characters)" in error["message"]
    assert all(len(record.getMessage()) < 5000 for record in caplog.records)


def test_a_websocket_message_over_the_limit_closes_the_socket(tmp_path: Path) -> None:
    client = _app(tmp_path, graphql_max_body_bytes=4096)
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_text(json.dumps({"type": "connection_init", "payload": {"x": "y" * 5000}}))
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
    assert closed.value.code == 1009
