"""Without a token only ``login`` and ``__typename`` run, decided on the operation GraphQL
executes: fragments (named, inline, nested), aliases, directives and the choice among several
operations do not get anything else past the rule, over HTTP and over the WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from graphql import parse

from contractor.schema.anonymous import anonymous_may_run, root_fields
from tests.schema.conftest import Client

INTROSPECTION = "__schema { types { name } }"
LOGIN = 'login(username: "nobody", password: "not-a-password") { __typename }'

REFUSED = {
    "named fragment": f"query {{ ...login }} fragment login on Query {{ {INTROSPECTION} }}",
    "inline fragment": f"{{ ... on Query {{ {INTROSPECTION} }} }}",
    "inline fragment without type": f"{{ ... {{ {INTROSPECTION} }} }}",
    "alias named login": f"{{ login: {INTROSPECTION} }}",
    "alias named __typename": "{ __typename: sites { totalCount } }",
    "nested fragments": (
        "query { ...a } fragment a on Query { ... on Query { ...b } } "
        "fragment b on Query { sites { totalCount } }"
    ),
    "type lookup": '{ __type(name: "Query") { fields { name } } }',
    "skipped field still counts": "{ __typename __schema @skip(if: true) { types { name } } }",
    "login beside another mutation": (
        f'mutation {{ {LOGIN} createSite(name: "x") {{ __typename }} }}'
    ),
    "login in a fragment beside another field": (
        f"mutation {{ ...m }} fragment m on Mutation {{ {LOGIN} "
        'deleteSite(name: "x") { __typename } }'
    ),
    "unknown fragment": "{ __typename ...nowhere }",
    "unknown field (no schema hints)": "{ sitez { totalCount } }",
    "cyclic fragments": (
        "query { ...a } fragment a on Query { ...b } "
        "fragment b on Query { ...a sites { totalCount } }"
    ),
}


@pytest.mark.parametrize("name", REFUSED)
async def test_anonymous_is_refused_whatever_the_shape(client: Client, name: str) -> None:
    body = await client.query(REFUSED[name], role=None)
    assert body["_status"] == 401, body
    assert body == {
        "_status": 401,
        "errors": [{"message": body["errors"][0]["message"]}],
    }
    assert body["errors"][0]["message"].startswith("authentication required")


async def test_anonymous_refused_over_get_too(client: Client) -> None:
    response = await client.http.get(
        "/graphql", params={"query": REFUSED["named fragment"]}, headers={"accept": "*/*"}
    )
    assert response.status_code == 401
    assert "types" not in response.text


async def test_operation_name_picks_what_is_decided(client: Client) -> None:
    document = f"query Small {{ __typename }} query Big {{ {INTROSPECTION} }}"
    small = await client.http.post("/graphql", json={"query": document, "operationName": "Small"})
    assert small.status_code == 200, small.text
    assert small.json() == {"data": {"__typename": "Query"}}
    big = await client.http.post("/graphql", json={"query": document, "operationName": "Big"})
    assert big.status_code == 401
    # without operationName the first operation runs (strawberry's choice): so it is decided
    unnamed = await client.http.post("/graphql", json={"query": document})
    assert unnamed.json() == {"data": {"__typename": "Query"}}
    reversed_order = f"query Big {{ {INTROSPECTION} }} query Small {{ __typename }}"
    first_is_big = await client.http.post("/graphql", json={"query": reversed_order})
    assert first_is_big.status_code == 401
    assert "types" not in first_is_big.text
    unknown = await client.http.post("/graphql", json={"query": document, "operationName": "Nope"})
    assert unknown.status_code in (400, 401)
    assert "types" not in unknown.text


async def test_login_may_come_through_fragments_and_aliases(client: Client) -> None:
    document = (
        f'mutation Other {{ createSite(name: "x") {{ __typename }} }} '
        f"mutation In {{ ...m ... on Mutation {{ again: {LOGIN} }} __typename }} "
        f"fragment m on Mutation {{ first: {LOGIN} }}"
    )
    response = await client.http.post("/graphql", json={"query": document, "operationName": "In"})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "first": {"__typename": "ForbiddenError"},
        "again": {"__typename": "ForbiddenError"},
        "__typename": "Mutation",
    }
    sites = await client.data("{ sites { totalCount } }")
    assert sites["sites"]["totalCount"] == 0  # the other operation did not run


async def test_anonymous_login_errors_are_still_explained(client: Client) -> None:
    body = await client.query('mutation { login(username: "x") { __typename } }', role=None)
    assert body["_status"] == 200
    assert "login(password:)' of type 'String!' is required" in body["errors"][0]["message"]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 12}]


async def test_authenticated_callers_use_fragments_as_before(client: Client) -> None:
    data = await client.data(
        f"query {{ ...f }} fragment f on Query {{ me {{ username }} {INTROSPECTION} }}",
        role="reader",
    )
    assert data["me"] == {"username": "reader"}
    assert {"name": "Query"} in data["__schema"]["types"]


def test_root_fields_expand_every_fragment() -> None:
    document = parse(
        "query A { x: a ...f ... on Query { b ... { c @include(if: false) } } } "
        "query B { z } fragment f on Query { d ...g } fragment g on Query { e ...f }"
    )
    assert root_fields(document, "A") == {"a", "b", "c", "d", "e"}
    assert root_fields(document, "B") == {"z"}
    assert root_fields(document, None) is None  # two operations, none named
    assert root_fields(document, "C") is None
    assert not anonymous_may_run(document, "A")
    assert anonymous_may_run(parse("{ ...f } fragment f on Query { __typename }"), None)


async def _socket_run(base: str, payload: dict[str, Any], document: str) -> list[dict[str, Any]]:
    """Messages a graphql-transport-ws connection gets for one ``subscribe`` of
    ``document`` after ``connection_init`` with ``payload``, until complete or closed."""
    received: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(20),
        websockets.connect(
            base.replace("http", "ws") + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as socket,
    ):
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}})
        )
        try:
            while True:
                message = json.loads(await socket.recv())
                received.append(message)
                if message["type"] in ("complete", "error"):
                    return received
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
    received.append({"type": "closed", "code": code})
    return received


async def test_over_http_and_websocket(live: tuple[str, Any]) -> None:
    base, tokens = live
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        refused = await http.post("/graphql", json={"query": REFUSED["named fragment"]})
        assert refused.status_code == 401
        assert "types" not in refused.text
    anonymous = await _socket_run(base, {}, REFUSED["named fragment"])
    assert anonymous == [{"type": "closed", "code": 4403}]
    allowed = await _socket_run(
        base,
        {"Authorization": f"Bearer {tokens['reader']}"},
        "query { ...f } fragment f on Query { me { username } }",
    )
    assert [m["type"] for m in allowed] == ["connection_ack", "next", "complete"]
    assert allowed[1]["payload"] == {"data": {"me": {"username": "reader"}}}
