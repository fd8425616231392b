"""GraphQL errors as the client and the log see them: GraphQL's own (a variable of the wrong
type, a field that does not exist) and domain errors reach the client as they are and log
one line; unexpected ones are masked with a request id that the log line, with its
traceback, and the ``X-Request-ID`` header carry too."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text

from contractor.db import transaction
from tests.schema.conftest import Client

ID_CHARS = set("0123456789abcdef")


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("contractor", "strawberry"))]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="strawberry")
    caplog.set_level(logging.DEBUG, logger="contractor")
    return caplog


async def _post(client: Client, document: str, variables: Any = None, **kw: Any) -> httpx.Response:
    return await client.http.post(
        "/graphql",
        json={"query": document, "variables": variables or {}},
        headers={"Authorization": f"Bearer {client.tokens[kw.pop('role', 'admin')]}", **kw},
    )


def _one_info_line(logs: pytest.LogCaptureFixture, request_id: str, *parts: str) -> None:
    (record,) = _records(logs)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    line = record.getMessage()
    assert "\n" not in line
    assert f"request {request_id}:" in line
    for part in parts:
        assert part in line, line


async def test_a_variable_of_the_wrong_type_is_explained(
    client: Client, logs: pytest.LogCaptureFixture
) -> None:
    response = await _post(client, "query Named($n: String!) { site(name: $n) { name } }", {"n": 5})
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "Variable '$n' has invalid value: "
                "String cannot represent a non string value: 5",
                "locations": [{"line": 1, "column": 13}],
            }
        ],
    }
    _one_info_line(
        logs, response.headers["x-request-id"], "operation Named", "Variable '$n' has invalid"
    )


@pytest.mark.parametrize(
    ("document", "role", "message", "code"),
    [
        ("{ sitez { name } }", "admin", "Cannot query field 'sitez'", "GRAPHQL_ERROR"),
        (
            "{ users { totalCount } }",
            "reader",
            "needs the admin role (you are reader)",
            "FORBIDDEN",
        ),
        (
            '{ events(filter: {site: "nowhere"}) { cursor } }',
            "reader",
            "site 'nowhere' does not exist",
            "NOT_FOUND",
        ),
        ("{ events(first: 0) { cursor } }", "reader", "first must be between 1", "INVALID_INPUT"),
    ],
)
async def test_client_and_domain_errors_log_one_line(
    client: Client,
    logs: pytest.LogCaptureFixture,
    document: str,
    role: str,
    message: str,
    code: str,
) -> None:
    response = await _post(client, document, role=role)
    (error,) = response.json()["errors"]
    assert message in error["message"]
    assert "extensions" not in error
    _one_info_line(logs, response.headers["x-request-id"], f"{code}:", message)


async def test_unexpected_errors_are_masked_with_a_request_id(
    client: Client, logs: pytest.LogCaptureFixture
) -> None:
    async with transaction(client.writer_sessions) as session:
        await session.execute(text("ALTER TABLE site RENAME TO site_gone"))
    response = await _post(client, "query Sites { sites { totalCount } }")
    (error,) = response.json()["errors"]
    request_id = response.headers["x-request-id"]
    assert set(request_id) <= ID_CHARS
    assert len(request_id) == 32
    assert error == {
        "message": "Unexpected error.",
        "locations": [{"line": 1, "column": 15}],
        "path": ["sites"],
        "extensions": {"requestId": request_id},
    }
    assert "site" not in json.dumps(error["extensions"])
    (record,) = _records(logs)
    assert record.levelno == logging.ERROR
    assert f"request {request_id}: operation Sites at sites: unexpected error" in (
        record.getMessage()
    )
    assert record.exc_info is not None
    assert "Traceback" in logs.text
    assert "site" in logs.text  # the real cause is in the log, not in the answer


async def test_the_request_id_header(client: Client) -> None:
    given = await _post(client, "{ __typename }", **{"X-Request-ID": "deploy-42.a:b_c"})
    assert given.headers["x-request-id"] == "deploy-42.a:b_c"
    for insane in ("x" * 65, "no spaces", "\u00fcn\u00ef".encode("latin-1"), "", "a\x7fb"):
        made = await _post(client, "{ __typename }", **{"X-Request-ID": insane})
        assert made.headers["x-request-id"] not in (insane, "")
        assert len(made.headers["x-request-id"]) == 32
    health = await client.http.get("/healthz")
    assert len(health.headers["x-request-id"]) == 32
    anonymous = await client.http.post("/graphql", json={"query": "{ sites { totalCount } }"})
    assert anonymous.status_code == 401
    assert len(anonymous.headers["x-request-id"]) == 32
    rest = await client.http.post(
        "/api/v1/subcontractor/poll",
        json={"site": "s", "modules": ["m"]},
        headers={
            "Authorization": "Bearer sct_0000000000000000.not-a-real-secret-at-all",
            "X-Request-ID": "r-1",
        },
    )
    assert rest.status_code == 401
    assert rest.headers["x-request-id"] == "r-1"
    assert rest.json()["error"]["request_id"] == "r-1"
    assert rest.json()["error"]["code"] == "UNAUTHORIZED"


async def test_a_subscription_to_an_unknown_job_logs_one_line(
    live: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="strawberry")
    caplog.set_level(logging.DEBUG, logger="contractor")
    base, tokens = live
    async with websockets.connect(
        base.replace("http", "ws") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"X-Request-ID": "socket-7"},
    ) as socket:
        assert socket.response.headers["x-request-id"] == "socket-7"
        auth = {"Authorization": f"Bearer {tokens['reader']}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": auth}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { job(id: 424242) { state } }"},
                }
            )
        )
        answer = json.loads(await socket.recv())
    assert answer["payload"]["errors"] == [{"message": "job 424242 does not exist"}]
    _one_info_line(caplog, "socket-7", "NOT_FOUND: job 424242 does not exist")
