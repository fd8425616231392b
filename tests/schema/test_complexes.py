"""Typed Complexes over GraphQL: members with endpoint and capacity (never the password),
placement through createFoundation, per-member and per-Complex room, resourcesUsed with
statements bounded by the query's shape, and the capacity refresh's jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from contractor.db import transaction
from contractor.models import Event
from contractor.services import blueprint as bps
from contractor.services import building
from contractor.services import site as sites
from tests.schema.conftest import Client, queries

MEMBERS = """
{ complex(name: "vmhosts") {
    type cpuOvercommit
    capacity { cpus memoryMb diskGb } allocated { cpus } free { cpus memoryMb }
    memberships { hostname endpoint username hasPassword capacityReadAt
                  capacity { cpus } effective { cpus } allocated { cpus memoryMb } free { cpus }
                  structure { hostname } }
} }
"""


async def _run(client: Client, document: str, role: str = "operator") -> Any:
    return (await client.data(f"mutation {{ r: {document} }}", role=role))["r"]


async def _setup(client: Client, hosts: int = 2) -> list[int]:
    """Site s1, a blueprint accepting simulated-vm and structure hosts h0.. on manual
    foundations; the structure ids."""
    async with transaction(client.writer_sessions) as session:
        site = await sites.create_site(session, name="s1")
        fbp = await bps.create_foundation_blueprint(
            session, name="vm", foundation_types=["manual", "simulated-vm"]
        )
        sbp = await bps.create_structure_blueprint(session, name="os", foundation_blueprints=[fbp])
        ids = []
        for index in range(hosts):
            foundation = await building.create_foundation(
                session, locator=f"m{index}", site=site, blueprint=fbp, type="manual"
            )
            structure = await building.create_structure(
                session, hostname=f"h{index}", site=site, blueprint=sbp, foundation=foundation
            )
            ids.append(structure.id)
    return ids


async def _vm(client: Client, locator: str, fields: str) -> Any:
    return await _run(
        client,
        f'createFoundation(locator: "{locator}", site: "s1", blueprint: "vm", '
        f'type: "simulated-vm", typeFields: {fields}) '
        "{ __typename ... on Foundation { locator } ... on Error { message field } }",
    )


async def test_members_capacity_and_placement(client: Client) -> None:
    h0, h1 = await _setup(client)
    made = await _run(
        client,
        'createComplex(name: "vmhosts", site: "s1", type: "SIMULATED", cpuOvercommit: 2) '
        "{ __typename ... on Complex { type cpuOvercommit } }",
    )
    assert made == {"__typename": "Complex", "type": "simulated", "cpuOvercommit": 2.0}
    for structure in (h0, h1):
        added = await _run(
            client,
            f'addComplexMember(complex: "vmhosts", structure: {structure}, '
            f'endpoint: "simulated://h{structure}", username: "root", password: "hunter2") '
            "{ __typename }",
        )
        assert added == {"__typename": "Complex"}
    bad = await _run(
        client,
        'updateComplexMember(complex: "vmhosts", member: "h0", endpoint: "qemu:///system") '
        "{ __typename ... on Error { message field } }",
    )
    assert bad["field"] == "endpoint"
    for member, cpus in (("h0", 4), ("h1", 8)):
        await _run(
            client,
            f'setComplexMemberCapacity(complex: "vmhosts", member: "{member}", cpus: {cpus}, '
            "memoryMb: 16384, diskGb: 100) { __typename }",
        )
    placed = await _vm(client, "vm1", '{complex: "vmhosts", cpus: 10, memory_mb: 4096}')
    assert placed == {"__typename": "Foundation", "locator": "vm1"}
    full = await _vm(client, "vm2", '{complex: "vmhosts", cpus: 20}')
    assert full == {
        "__typename": "ConflictError",
        "message": "complex vmhosts has no member with 20 CPUs free: best is h1 with 6 CPUs free",
        "field": "complex",
    }
    pinned = await _vm(client, "vm3", '{complex: "vmhosts", member: "h0", cpus: 8}')
    assert pinned == {"__typename": "Foundation", "locator": "vm3"}
    shown = await client.data(
        '{ foundation(locator: "vm3") { typeFields placement { complex member cpus memoryMb '
        "diskGb pinned } } }",
        role="reader",
    )
    assert shown["foundation"] == {
        "typeFields": {"delay_seconds": 0, "fail_likelihood": 0},
        "placement": {
            "complex": "vmhosts",
            "member": "h0",
            "cpus": 8,
            "memoryMb": 0,
            "diskGb": 0,
            "pinned": True,
        },
    }
    data = await client.data(MEMBERS, role="reader")
    complex_ = data["complex"]
    assert complex_["capacity"] == {"cpus": 12, "memoryMb": 32768, "diskGb": 200}
    assert complex_["allocated"] == {"cpus": 18}
    assert complex_["free"] == {"cpus": 6, "memoryMb": 28672}
    members = {m["hostname"]: m for m in complex_["memberships"]}
    assert members["h1"] == {
        "hostname": "h1",
        "endpoint": f"simulated://h{h1}",
        "username": "root",
        "hasPassword": True,
        "capacityReadAt": members["h1"]["capacityReadAt"],
        "capacity": {"cpus": 8},
        "effective": {"cpus": 16},
        "allocated": {"cpus": 10, "memoryMb": 4096},
        "free": {"cpus": 6},
        "structure": {"hostname": "h1"},
    }
    assert members["h0"]["allocated"] == {"cpus": 8, "memoryMb": 0}
    # the password is in no answer and no event
    assert "hunter2" not in str(data)
    async with client.sessions() as session:
        payloads = (await session.execute(select(Event.payload))).scalars().all()
    assert "hunter2" not in str(payloads)
    schema = await client.data('{ __type(name: "ComplexMember") { fields { name } } }')
    assert "password" not in {f["name"] for f in schema["__type"]["fields"]}


async def test_resources_used_in_bounded_statements(client: Client) -> None:
    h0, h1 = await _setup(client)
    await _run(
        client, 'createComplex(name: "vmhosts", site: "s1", type: "simulated") { __typename }'
    )
    for structure, name in ((h0, "h0"), (h1, "h1")):
        await _run(
            client, f'addComplexMember(complex: "vmhosts", structure: {structure}) {{ __typename }}'
        )
        await _run(
            client,
            f'setComplexMemberCapacity(complex: "vmhosts", member: "{name}", cpus: 64, '
            "memoryMb: 65536, diskGb: 1000) { __typename }",
        )
    async with transaction(client.writer_sessions) as session:
        site = await sites.get_site(session, "s1")
        sbp = await bps.get_structure_blueprint(session, "os")
    chain: list[int] = []
    previous: int | None = None
    for index in range(5):  # a chain: app4 -> app3 -> ... -> app0, each on a VM
        made = await _vm(client, f"v{index}", '{complex: "vmhosts", cpus: 2, memory_mb: 1024}')
        assert made == {"__typename": "Foundation", "locator": f"v{index}"}
        async with transaction(client.writer_sessions) as session:
            vm = await building.get_foundation(session, f"v{index}")
            app = await building.create_structure(
                session,
                hostname=f"app{index}",
                site=site,
                blueprint=sbp,
                foundation=vm,
            )
            if previous is not None:
                await building.create_dependency(
                    session,
                    structure=await building.get_structure_by_id(session, previous),
                    foundation=vm,
                )
            previous = app.id
            chain.append(app.id)
    document = (
        "query($s: Int) { resourcesUsed(structure: $s) "
        "{ complex { name } cpus memoryMb diskGb foundations } }"
    )
    counts = []
    for depth, structure in enumerate(chain):
        client.statements.clear()
        data = await client.data(document, {"s": structure}, role="reader")
        counts.append(len(queries(client.statements)))
        assert data["resourcesUsed"] == [
            {
                "complex": {"name": "vmhosts"},
                "cpus": 2 * (depth + 1),
                "memoryMb": 1024 * (depth + 1),
                "diskGb": 0,
                "foundations": depth + 1,
            }
        ]
    # the same statements at every depth (the first request also records its token's use):
    # the token, the structure, the walk and its complexes
    assert counts[1:] == [4] * 4, counts
    by_blueprint = await client.data(
        '{ resourcesUsed(blueprint: "os") { cpus foundations } }', role="reader"
    )
    assert by_blueprint["resourcesUsed"] == [{"cpus": 10, "foundations": 5}]
    both = await client.query('{ resourcesUsed(blueprint: "os", structure: 1) { cpus } }')
    assert "exactly one of structure, blueprint or dependency" in str(both)


async def test_refresh_starts_a_job_per_member(client: Client) -> None:
    [h0] = await _setup(client, hosts=1)
    await _run(client, 'createComplex(name: "g", site: "s1") { __typename }')
    await _run(
        client, 'createComplex(name: "vmhosts", site: "s1", type: "simulated") { __typename }'
    )
    await _run(client, f'addComplexMember(complex: "vmhosts", structure: {h0}) {{ __typename }}')
    unbuilt = await _run(
        client,
        'refreshComplexCapacity(complex: "vmhosts") { __typename ... on Error { message } }',
    )
    assert unbuilt == {
        "__typename": "InvalidStateError",
        "message": "complex 'vmhosts': members h0 are not built; their capacity cannot be read "
        "(set it with setComplexMemberCapacity)",
    }
    async with transaction(client.writer_sessions) as session:
        foundation = await building.get_foundation(session, "m0")
        await building.set_built(session, foundation)
        await building.set_structure_built(session, await building.get_structure_by_id(session, h0))
    started = await _run(
        client,
        'refreshComplexCapacity(complex: "vmhosts") '
        "{ __typename ... on CapacityRefresh { complex { name } jobs { scriptName target } } }",
    )
    assert started == {
        "__typename": "CapacityRefresh",
        "complex": {"name": "vmhosts"},
        "jobs": [{"scriptName": "refresh_capacity", "target": "structure h0"}],
    }
    generic = await _run(
        client, 'refreshComplexCapacity(complex: "g") { __typename ... on Error { field } }'
    )
    assert generic == {"__typename": "InvalidInputError", "field": "complex"}
