"""Administering users and tokens in GraphQL (admins only), and what a change does to the
tokens at once: in this app and in another app on the same database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.schema.conftest import Client, fresh_database, serving

RESULT = "__typename ... on Error { code message field }"


async def mutate(client: Client, call: str, fields: str = "", role: str = "admin") -> Any:
    body = await client.query(f"mutation {{ r: {call} {{ {RESULT} {fields} }} }}", role=role)
    assert "errors" not in body, body
    return body["data"]["r"]


async def who(client: Client, role: str) -> Any:
    """``me`` as ``role``'s token: the user, or the HTTP status it was refused with."""
    body = await client.query("{ me { username role } }", role=role)
    return body["data"]["me"] if body["_status"] == 200 else body["_status"]


async def new_user(client: Client, name: str, role: str) -> None:
    """A user ``name`` with a token kept as ``client.tokens[name]``."""
    await mutate(client, f'createUser(username: "{name}", role: "{role}")')
    made = await mutate(client, f'createToken(username: "{name}")', "... on NewToken { token }")
    client.tokens[name] = made["token"]


async def test_re_role_and_disable_hold_at_once(client: Client) -> None:
    await new_user(client, "rita", "reader")
    assert await who(client, "rita") == {"username": "rita", "role": "reader"}
    changed = await mutate(
        client, 'updateUser(username: "rita", role: "operator")', "... on User { role isActive }"
    )
    assert changed == {"__typename": "User", "role": "operator", "isActive": True}
    assert await who(client, "rita") == {"username": "rita", "role": "operator"}
    await mutate(client, 'updateUser(username: "rita", isActive: false)')
    assert await who(client, "rita") == 401
    await mutate(client, 'updateUser(username: "rita", isActive: true)')
    assert await who(client, "rita") == {"username": "rita", "role": "operator"}


async def test_update_user_refusals(client: Client) -> None:
    cases = {
        'updateUser(username: "nobody", role: "reader")': (
            "NOT_FOUND",
            "user 'nobody' does not exist",
        ),
        'updateUser(username: "reader", role: "root")': (
            "INVALID_INPUT",
            "role 'root' is not one of reader, operator, admin",
        ),
        'updateUser(username: "reader", isActive: null)': (
            "INVALID_INPUT",
            "is_active must be true or false",
        ),
        'updateUser(username: "admin", isActive: false)': (
            "INVALID_STATE",
            "you cannot disable yourself ('admin'): another admin can",
        ),
        'updateUser(username: "admin", role: "operator")': (
            "INVALID_STATE",
            "cannot re-role 'admin': it is the last active admin (make another admin first)",
        ),
        'deleteUser(username: "admin")': (
            "INVALID_STATE",
            "you cannot delete yourself ('admin'): another admin can",
        ),
        'deleteUser(username: "nobody")': ("NOT_FOUND", "user 'nobody' does not exist"),
    }
    for call, (code, message) in cases.items():
        answer = await mutate(client, call)
        assert (answer["code"], answer["message"]) == (code, message), call
    for call in ('updateUser(username: "reader", role: "admin")', 'deleteUser(username: "reader")'):
        answer = await mutate(client, call, role="operator")
        assert answer["__typename"] == "ForbiddenError"
        assert answer["message"] == "this needs the admin role (you are operator)"
    # Nothing changed.
    users = await client.data("{ users { nodes { username role isActive } } }")
    assert users["users"]["nodes"] == [
        {"username": "admin", "role": "admin", "isActive": True},
        {"username": "operator", "role": "operator", "isActive": True},
        {"username": "reader", "role": "reader", "isActive": True},
    ]


async def test_the_last_admin_stays_when_another_admin_acts(client: Client) -> None:
    await new_user(client, "second", "admin")
    # "second" may take "admin" away, as there is still one admin left: "second"
    await mutate(client, 'updateUser(username: "admin", role: "operator")', role="second")
    assert await who(client, "admin") == {"username": "admin", "role": "operator"}
    await mutate(client, 'updateUser(username: "admin", role: "admin")', role="second")
    answer = await mutate(client, 'deleteUser(username: "second")')
    assert answer == {"__typename": "Deleted"}
    assert await who(client, "second") == 401
    await new_user(client, "third", "admin")
    await mutate(client, 'updateUser(username: "third", isActive: false)')
    # "third" is disabled: "admin" is the only active admin, and stays one.
    answer = await mutate(client, 'updateUser(username: "admin", role: "reader")', role="admin")
    assert answer["code"] == "INVALID_STATE"


async def test_delete_user_takes_their_tokens(client: Client) -> None:
    await new_user(client, "gone", "operator")
    deleted = await mutate(client, 'deleteUser(username: "gone")', "... on Deleted { kind }")
    assert deleted == {"__typename": "Deleted", "kind": "User"}
    assert await who(client, "gone") == 401
    tokens = await client.data("{ tokens(includeRevoked: true) { nodes { user { username } } } }")
    assert "gone" not in {node["user"]["username"] for node in tokens["tokens"]["nodes"]}
    events = await client.data(
        '{ events(filter: {objectTypes: ["user"]}) { events { kind objectName actor } } }'
    )
    kinds = [(e["kind"], e["objectName"]) for e in events["events"]["events"]]
    assert kinds[-1] == ("deleted", "gone")


TOKENS = """
query($user: String, $all: Boolean) {
  tokens(username: $user, includeRevoked: $all) {
    totalCount
    nodes { key description revokedAt lastUsedAt user { username } }
  }
}
"""


async def test_tokens_listed_and_revoked(client: Client) -> None:
    await new_user(client, "tom", "reader")
    assert await who(client, "tom") == {"username": "tom", "role": "reader"}
    listed = (await client.data(TOKENS, {"user": "tom"}))["tokens"]
    assert listed["totalCount"] == 1
    (node,) = listed["nodes"]
    assert node["user"] == {"username": "tom"}
    assert node["lastUsedAt"] is not None
    assert client.tokens["tom"].startswith(f"ctr_{node['key']}.")
    secret = client.tokens["tom"].split(".", 1)[1]
    everything = await client.query(TOKENS, {"all": True})
    assert secret not in str(everything)
    revoked = await mutate(
        client, f'revokeToken(key: "{node["key"]}")', "... on ApiToken { key revokedAt }"
    )
    assert revoked["key"] == node["key"]
    assert revoked["revokedAt"] is not None
    assert await who(client, "tom") == 401
    assert (await client.data(TOKENS, {"user": "tom"}))["tokens"]["totalCount"] == 0
    assert (await client.data(TOKENS, {"user": "tom", "all": True}))["tokens"]["totalCount"] == 1
    again = await mutate(client, f'revokeToken(key: "{node["key"]}")')
    assert again["code"] == "INVALID_STATE"
    assert "was revoked already" in again["message"]
    missing = await mutate(client, 'revokeToken(key: "0000000000000000")')
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", "token")
    body = await client.query(TOKENS, {"user": "nobody"})
    assert body["errors"][0]["message"] == "user 'nobody' does not exist"
    body = await client.query(TOKENS, role="operator")
    assert body["errors"][0]["message"] == "this needs the admin role (you are operator)"


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_change_holds_at_once_in_another_app(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Two apps on one database, as two `serve` processes are: each has checked the token
    (and keeps it in its cache); a change made through one is refused by the other on the
    very next request."""
    url, tokens = fresh_database(request, backend, tmp_path)
    async with serving(url, tokens) as first, serving(url, tokens) as second:
        await new_user(first, "ivy", "operator")
        await new_user(first, "jay", "reader")
        second.tokens.update(first.tokens)
        for app in (first, second):
            assert await who(app, "ivy") == {"username": "ivy", "role": "operator"}
            assert await who(app, "jay") == {"username": "jay", "role": "reader"}
        await mutate(first, 'updateUser(username: "ivy", isActive: false)')
        assert await who(second, "ivy") == 401
        await mutate(first, 'updateUser(username: "jay", role: "admin")')
        assert await who(second, "jay") == {"username": "jay", "role": "admin"}
        await mutate(first, 'deleteUser(username: "jay")')
        assert await who(second, "jay") == 401
        await new_user(first, "kim", "reader")
        second.tokens["kim"] = first.tokens["kim"]
        assert await who(second, "kim") == {"username": "kim", "role": "reader"}
        key = first.tokens["kim"].split(".")[0].removeprefix("ctr_")
        await mutate(first, f'revokeToken(key: "{key}")')
        assert await who(second, "kim") == 401
