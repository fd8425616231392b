"""Authentication and roles: anonymous gets 401 (except login); every mutation is refused
below its role with a ForbiddenError and accepted at or above it."""

from __future__ import annotations

import pytest

from tests.schema.conftest import Client

# Every mutation with arguments that parse; the objects named need not exist. The role is
# the least that may run it.
MUTATIONS: dict[str, tuple[str, str]] = {
    "createSite": ('createSite(name: "s1")', "operator"),
    "updateSite": ('updateSite(name: "s1", description: "d")', "operator"),
    "deleteSite": ('deleteSite(name: "s1")', "operator"),
    "createZone": ('createZone(name: "zz")', "operator"),
    "updateZone": ('updateZone(fqdn: "zz", ttl: 600)', "operator"),
    "deleteZone": ('deleteZone(fqdn: "zz")', "operator"),
    "createZoneEntry": (
        'createZoneEntry(zone: "zz", type: "TXT", name: "x", text: "t")',
        "operator",
    ),
    "deleteZoneEntry": ("deleteZoneEntry(id: 999)", "operator"),
    "createFoundationBlueprint": ('createFoundationBlueprint(name: "f1")', "operator"),
    "createStructureBlueprint": ('createStructureBlueprint(name: "b1")', "operator"),
    "updateBlueprint": ('updateBlueprint(name: "b1", description: "x")', "operator"),
    "deleteBlueprint": ('deleteBlueprint(name: "b1")', "operator"),
    "createScript": ('createScript(name: "c1", source: "pass")', "operator"),
    "updateScript": ('updateScript(name: "c1", source: "pass")', "operator"),
    "deleteScript": ('deleteScript(name: "c1")', "operator"),
    "linkScript": ('linkScript(blueprint: "b1", role: "create", script: "c1")', "operator"),
    "unlinkScript": ('unlinkScript(blueprint: "b1", role: "create")', "operator"),
    "createPXE": ('createPXE(name: "p1")', "operator"),
    "deletePXE": ('deletePXE(name: "p1")', "operator"),
    "createFoundation": (
        'createFoundation(locator: "n1", site: "s1", blueprint: "f1", type: "manual")',
        "operator",
    ),
    "updateFoundation": ('updateFoundation(locator: "n1", site: "s1")', "operator"),
    "deleteFoundation": ('deleteFoundation(locator: "n1")', "operator"),
    "setFoundationIdMap": ('setFoundationIdMap(locator: "n1", idMap: {})', "operator"),
    "locateFoundation": ('locateFoundation(locator: "n1")', "operator"),
    "addInterface": ('addInterface(locator: "n1", physicalLocation: "eth0")', "operator"),
    "updateInterface": ('updateInterface(locator: "n1", physicalLocation: "eth0")', "operator"),
    "assignPxe": ('assignPxe(locator: "n1", physicalLocation: "eth0", pxe: null)', "operator"),
    "deleteInterface": ('deleteInterface(locator: "n1", physicalLocation: "eth0")', "operator"),
    "createStructure": (
        'createStructure(hostname: "h1", site: "s1", blueprint: "b1", foundation: "n1")',
        "operator",
    ),
    "updateStructure": ('updateStructure(id: 999, hostname: "h2")', "operator"),
    "deleteStructure": ("deleteStructure(id: 999)", "operator"),
    "addStructureInterface": ('addStructureInterface(structure: 999, name: "bond0")', "operator"),
    "createComplex": ('createComplex(name: "x1", site: "s1")', "operator"),
    "addComplexMember": ('addComplexMember(complex: "x1", structure: 999)', "operator"),
    "removeComplexMember": ('removeComplexMember(complex: "x1", structure: 999)', "operator"),
    "updateComplex": ('updateComplex(name: "x1", cpuOvercommit: 2)', "operator"),
    "updateComplexMember": (
        'updateComplexMember(complex: "x1", member: "h1", password: "p")',
        "operator",
    ),
    "setComplexMemberCapacity": (
        'setComplexMemberCapacity(complex: "x1", member: "h1", cpus: 1, memoryMb: 1, diskGb: 1)',
        "operator",
    ),
    "refreshComplexCapacity": ('refreshComplexCapacity(complex: "x1")', "operator"),
    "deleteComplex": ('deleteComplex(name: "x1")', "operator"),
    "createDependency": ("createDependency(structure: 999)", "operator"),
    "deleteDependency": ("deleteDependency(id: 999)", "operator"),
    "createNetwork": ('createNetwork(site: "s1", name: "net")', "operator"),
    "deleteNetwork": ("deleteNetwork(id: 999)", "operator"),
    "linkAddressBlock": ("linkAddressBlock(network: 999, addressBlock: 999)", "operator"),
    "createAddressBlock": (
        'createAddressBlock(site: "s1", name: "a1", subnet: "10.0.0.0/24")',
        "operator",
    ),
    "updateAddressBlock": ("updateAddressBlock(id: 999, gatewayOffset: 1)", "operator"),
    "deleteAddressBlock": ("deleteAddressBlock(id: 999)", "operator"),
    "allocateAddress": (
        'allocateAddress(structure: 999, addressBlock: 999, interfaceName: "eth0")',
        "operator",
    ),
    "reserveAddress": ('reserveAddress(addressBlock: 999, offset: 2, reason: "x")', "operator"),
    "addDynamicAddress": ("addDynamicAddress(addressBlock: 999, offset: 3)", "operator"),
    "deleteAddress": ("deleteAddress(id: 999)", "operator"),
    "createDhcpPool": (
        "createDhcpPool(addressBlock: 999, firstOffset: 100, lastOffset: 120)",
        "operator",
    ),
    "deleteDhcpPool": ("deleteDhcpPool(id: 999)", "operator"),
    "matchDiscoveredHardware": (
        'matchDiscoveredHardware(id: 999, foundation: "n1")',
        "operator",
    ),
    "forgetDiscoveredHardware": ("forgetDiscoveredHardware(id: 999)", "operator"),
    "doCreate": ('doCreate(foundation: "n1")', "operator"),
    "doDestroy": ('doDestroy(foundation: "n1")', "operator"),
    "doJob": ('doJob(name: "hello", foundation: "n1")', "operator"),
    "pauseJob": ("pauseJob(id: 999)", "operator"),
    "resumeJob": ("resumeJob(id: 999)", "operator"),
    "resetJob": ("resetJob(id: 999)", "operator"),
    "rollbackJob": ("rollbackJob(id: 999)", "operator"),
    "cancelJob": ("cancelJob(id: 999)", "operator"),
    "createUser": ('createUser(username: "u1", role: "reader")', "admin"),
    "createToken": ('createToken(username: "nobody")', "admin"),
    "revokeToken": ('revokeToken(key: "0000000000000000")', "admin"),
    "updateUser": ('updateUser(username: "nobody", role: "reader")', "admin"),
    "deleteUser": ('deleteUser(username: "nobody")', "admin"),
    "createWebhookTarget": (
        'createWebhookTarget(name: "w1", url: "http://127.0.0.1:9/hook")',
        "admin",
    ),
    "updateWebhookTarget": ('updateWebhookTarget(name: "w1", active: false)', "admin"),
    "deleteWebhookTarget": ('deleteWebhookTarget(name: "w1")', "admin"),
    "retryWebhookDelivery": ("retryWebhookDelivery(id: 999)", "admin"),
    "cancelWebhookDelivery": ("cancelWebhookDelivery(id: 999)", "admin"),
    "resyncDnsZones": ('resyncDnsZones(zone: "example", dryRun: true)', "admin"),
}
RANK = {"reader": 0, "operator": 1, "admin": 2}


async def test_every_mutation_is_in_the_matrix(client: Client) -> None:
    data = await client.data("{ __schema { mutationType { fields { name } } } }")
    names = {f["name"] for f in data["__schema"]["mutationType"]["fields"]}
    assert names - {"login"} == set(MUTATIONS)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
async def test_roles(client: Client, name: str) -> None:
    call, least = MUTATIONS[name]
    document = f"mutation {{ r: {call} {{ __typename ... on Error {{ code message }} }} }}"
    for role in ("reader", "operator", "admin"):
        body = await client.query(document, role=role)
        assert "errors" not in body, (role, body)
        result = body["data"]["r"]
        if RANK[role] < RANK[least]:
            assert result["__typename"] == "ForbiddenError", (role, result)
            assert f"needs the {least} role (you are {role})" in result["message"]
        else:
            assert result["__typename"] != "ForbiddenError", (role, result)


async def test_anonymous_gets_401(client: Client) -> None:
    body = await client.query("{ sites { totalCount } }", role=None)
    assert body["_status"] == 401
    assert "authentication required" in body["errors"][0]["message"]
    body = await client.query('mutation { createSite(name: "x") { __typename } }', role=None)
    assert body["_status"] == 401


async def test_bad_token_gets_401(client: Client) -> None:
    response = await client.http.post(
        "/graphql",
        json={"query": "{ me { username } }"},
        headers={"Authorization": "Bearer ctr_0000000000000000.nottherightsecretatall"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    response = await client.http.post(
        "/graphql", json={"query": "{ me { username } }"}, headers={"Authorization": "Basic x"}
    )
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["errors"][0]["message"]


async def test_login_then_use_the_token(client: Client) -> None:
    await client.data(
        'mutation { createUser(username: "dana", role: "operator", password: "long-password") '
        "{ __typename } }"
    )
    body = await client.query(
        'mutation { login(username: "dana", password: "long-password") '
        "{ __typename ... on NewToken { token user { role } } } }",
        role=None,
    )
    assert body["data"]["login"]["__typename"] == "NewToken"
    client.tokens["dana"] = body["data"]["login"]["token"]
    me = await client.data("{ me { username role } }", role="dana")
    assert me["me"] == {"username": "dana", "role": "operator"}
    wrong = await client.query(
        'mutation { login(username: "dana", password: "nope-nope") '
        "{ __typename ... on Error { message } } }",
        role=None,
    )
    assert wrong["data"]["login"] == {
        "__typename": "ForbiddenError",
        "message": "unknown user or wrong password",
    }


async def test_readers_cannot_list_users(client: Client) -> None:
    body = await client.query("{ users { totalCount } }", role="reader")
    assert body["errors"][0]["message"] == "this needs the admin role (you are reader)"
    assert (await client.data("{ users { totalCount } }"))["users"]["totalCount"] == 3
