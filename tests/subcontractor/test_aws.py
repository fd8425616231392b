"""The shipped AWS BluePrints end to end with real processes: `contractor serve` on
PostgreSQL, a `subcontractor run` daemon with the `aws` module, and `moto_server` as EC2
behind a real HTTP proxy that throttles and loses answers. Everything is driven through
GraphQL: create (the instance runs, its MAC and address are in GraphQL and in the exported
zone), stop and start, destroy (terminated, the address released); and a subcontractor
killed between RunInstances and its answer leaves exactly one instance, recorded."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from contractor.services import auth, resources
from contractor.services import tasks as task_service
from tests.factories import unique
from tests.serving import free_port
from tests.subcontractor.ec2 import (
    KEY_ID,
    REGION,
    SECRET,
    Ec2Proxy,
    Network,
    ec2_proxy,
    instances,
    make_network,
    moto_server,
    require_moto,
)
from tests.subcontractor.processes import contractor_on, subcontractor, write_config
from tests.subcontractor.served import Database, migrated_database

pytestmark = pytest.mark.postgres
WAIT = 60.0
IMAGE = "ami-12c6146b"
FAST_AWS = {"concurrency": 4, "backoff": 0.05, "confirm_interval": 0.2}


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    require_moto()
    async with migrated_database("contractor_aws", Database) as db:
        yield db


@dataclass
class Api:
    """GraphQL of a running `contractor serve` as an admin."""

    client: httpx.AsyncClient

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = await self.client.post("/graphql", json={"query": query, "variables": variables})
        body = answer.json()
        assert answer.status_code == 200, body
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        for value in data.values():
            assert not (isinstance(value, dict) and "code" in value), value
        return data

    async def job(self, job_id: int, *states: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while True:
            job = (await self("query($id: Int!) { job(id: $id) { state message } }", id=job_id))[
                "job"
            ]
            if job["state"].lower() in {state.lower() for state in states}:
                return job
            assert time.monotonic() < deadline, f"job {job_id}: {job}"
            await asyncio.sleep(0.2)


@dataclass
class Seeded:
    site: str
    admin_token: str
    agent_token: str = ""


async def seed(db: Database) -> Seeded:
    """The shipped resources loaded and an admin's API token."""

    async def work(session: Any) -> Seeded:
        await resources.load_builtin(session)
        user = await auth.create_user(session, username=unique("admin"), role="admin")
        token = (await auth.create_token(session, user=user)).text
        return Seeded(unique("aws"), token)

    return await db.run(work)


async def agent_token(db: Database, seeded: Seeded) -> None:
    async def work(session: Any) -> str:
        agent = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[seeded.site], modules=["aws"]
        )
        return agent.text

    seeded.agent_token = await db.run(work)


ERR = "... on Error { code message }"


async def plan(api: Api, seeded: Seeded, network: Network, proxy: Ec2Proxy, locator: str) -> int:
    """Zone, site (the instance shape in its config values), the subnet's address block, the
    foundation on the shipped `aws-ec2` blueprint and a structure on `aws-instance`; the id of
    the structure."""
    await api(
        f"""mutation {{ createZone(name: "example", nameservers: ["ns1.dns-provider.test."],
        soaEmail: "hostmaster@example.com") {{ {ERR} ... on Zone {{ name }} }} }}"""
    )
    config = {
        "awsec2_image_id": IMAGE,
        "awsec2_subnet_id": network.subnet_id,
        "awsec2_security_group_ids": [network.group_id],
        "awsec2_tags": {"team": "web"},
    }
    await api(
        f"""mutation($site: String!, $config: JSON!) {{ createSite(name: $site, zone: "example",
        configValues: $config) {{ {ERR} ... on Site {{ name }} }} }}""",
        site=seeded.site,
        config=config,
    )
    await api(
        f"""mutation($site: String!, $cidr: String!) {{ createAddressBlock(site: $site,
        name: "subnet-a", subnet: $cidr) {{ {ERR} ... on AddressBlock {{ name }} }} }}""",
        site=seeded.site,
        cidr=network.cidr,
    )
    fields = {
        "region": REGION,
        "endpoint_url": proxy.url,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    await api(
        f"""mutation($locator: String!, $site: String!, $fields: JSON!) {{
        createFoundation(locator: $locator, site: $site, blueprint: "aws-ec2", type: "AWS",
        typeFields: $fields) {{ {ERR} ... on Foundation {{ locator }} }} }}""",
        locator=locator,
        site=seeded.site,
        fields=fields,
    )
    await api(
        f"""mutation($locator: String!) {{
        addInterface(locator: $locator, physicalLocation: "eth0", name: "eth0") {{ {ERR}
        ... on NetworkInterface {{ name }} }}
        locateFoundation(locator: $locator) {{ {ERR} ... on Foundation {{ locator }} }} }}""",
        locator=locator,
    )
    created = await api(
        f"""mutation($locator: String!, $site: String!) {{ createStructure(hostname: "web1",
        site: $site, blueprint: "aws-instance", foundation: $locator) {{ {ERR}
        ... on Structure {{ id }} }} }}""",
        locator=locator,
        site=seeded.site,
    )
    return int(created["createStructure"]["id"])


async def start(api: Api, what: str, target: str, value: Any) -> int:
    kind = "String!" if target == "foundation" else "Int!"
    name = {"create": "doCreate", "destroy": "doDestroy"}.get(what)
    call = f"{name}({target}: $target)" if name else f'doJob(name: "{what}", {target}: $target)'
    answer = await api(
        f"mutation($target: {kind}) {{ job: {call} {{ {ERR} ... on Job {{ id }} }} }}",
        target=value,
    )
    return int(answer["job"]["id"])


FOUNDATION = """query($locator: String!) { foundation(locator: $locator) {
  state typeFields interfaces { name mac } } }"""
ADDRESSES = """query($id: Int!) { structure(id: $id) {
  addresses { ipAddress interfaceName isPrimary addressBlock { name } } } }"""


def agent_config(tmp_path: Path, url: str, seeded: Seeded, journal: str) -> Path:
    return write_config(
        tmp_path,
        url=url,
        token=seeded.agent_token,
        site=seeded.site,
        modules={"aws": FAST_AWS},
        journal=tmp_path / journal,
    )


async def test_shipped_aws_blueprints_through_graphql(database: Database, tmp_path: Path) -> None:
    seeded = await seed(database)
    with (
        moto_server(tmp_path) as ec2,
        ec2_proxy(ec2) as proxy,
        contractor_on(free_port(), database.url, tmp_path) as url,
    ):
        network = await asyncio.to_thread(make_network, ec2)
        headers = {"Authorization": f"Bearer {seeded.admin_token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            api = Api(client)
            structure = await plan(api, seeded, network, proxy, "web1-i")
            await agent_token(database, seeded)
            # EC2 throttles the launch twice and a look-up once: retried with back-off
            proxy.throttle.update({"RunInstances": 2, "DescribeInstances": 1})
            job_id = await start(api, "create", "foundation", "web1-i")
            config = agent_config(tmp_path, url, seeded, "journal")
            with subcontractor(config, tmp_path) as agent:
                job = await api.job(job_id, "done", "error", "aborted")
                assert job["state"] == "DONE", job
                assert proxy.seen["RunInstances"] == 3
                assert proxy.answered["RunInstances"] == 1
                [instance] = await asyncio.to_thread(instances, ec2)
                assert instance["State"]["Name"] == "running"
                assert instance["ImageId"] == IMAGE
                assert instance["SubnetId"] == network.subnet_id
                tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
                assert tags["Name"] == "web1-i"
                assert tags["team"] == "web"
                [eni] = instance["NetworkInterfaces"]
                ip, mac = eni["PrivateIpAddress"], eni["MacAddress"]

                shown = (await api(FOUNDATION, locator="web1-i"))["foundation"]
                assert shown["state"] == "BUILT"
                assert shown["typeFields"]["instance_id"] == instance["InstanceId"]
                assert shown["typeFields"]["region"] == REGION
                assert "secret_access_key" not in shown["typeFields"]
                assert "access_key_id" not in shown["typeFields"]
                assert shown["interfaces"] == [{"name": "eth0", "mac": mac}]
                addresses = (await api(ADDRESSES, id=structure))["structure"]["addresses"]
                assert addresses == [
                    {
                        "ipAddress": ip,
                        "interfaceName": "eth0",
                        "isPrimary": True,
                        "addressBlock": {"name": "subnet-a"},
                    }
                ]
                zone = (await client.get("/dns/zones/example")).text
                assert any(
                    line.split()[0] == "web1" and line.split()[-1] == ip
                    for line in zone.splitlines()
                    if line.strip()
                ), zone
                assert "eth0.web1" in zone

                # the structure starts it; the foundation's stop and start jobs
                job = await api.job(await start(api, "create", "structure", structure), "DONE")
                job = await api.job(await start(api, "stop", "foundation", "web1-i"), "DONE")
                [instance] = await asyncio.to_thread(instances, ec2)
                assert instance["State"]["Name"] == "stopped"
                job = await api.job(await start(api, "start", "foundation", "web1-i"), "DONE")
                [instance] = await asyncio.to_thread(instances, ec2)
                assert instance["State"]["Name"] == "running"

                # destroy: the structure first, then the foundation; the address is released
                await api.job(await start(api, "destroy", "structure", structure), "DONE")
                job_id = await start(api, "destroy", "foundation", "web1-i")
                job = await api.job(job_id, "DONE", "ERROR", "ABORTED")
                assert job["state"] == "DONE", job
                [instance] = await asyncio.to_thread(instances, ec2)
                assert instance["State"]["Name"] == "terminated"
                shown = (await api(FOUNDATION, locator="web1-i"))["foundation"]
                assert shown["typeFields"]["instance_id"] is None
                assert (await api(ADDRESSES, id=structure))["structure"]["addresses"] == []
                zone = (await client.get("/dns/zones/example")).text
                assert ip not in zone
                assert agent.stop() == 0
            output = agent.output()
            tasks = await api(
                "query($id: Int!) { job(id: $id) { message tasks { function parameters } } }",
                id=job_id,
            )
        shown_tasks = json.dumps(tasks)
        assert "terminate" in shown_tasks or "destroy" in shown_tasks
        for secret in (SECRET, KEY_ID):
            assert secret not in shown_tasks
            assert secret not in output
        assert seeded.agent_token.rpartition(".")[2] not in output
        for log in tmp_path.glob("contractor-*.log"):  # noqa: ASYNC240 (the test is over)
            assert SECRET not in log.read_text(errors="replace")


async def test_agent_killed_between_run_instances_and_its_answer(
    database: Database, tmp_path: Path
) -> None:
    seeded = await seed(database)
    with (
        moto_server(tmp_path) as ec2,
        ec2_proxy(ec2) as proxy,
        contractor_on(
            free_port(), database.url, tmp_path, CONTRACTOR_TASK_LEASE_SECONDS="3"
        ) as url,
    ):
        network = await asyncio.to_thread(make_network, ec2)
        headers = {"Authorization": f"Bearer {seeded.admin_token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            api = Api(client)
            await plan(api, seeded, network, proxy, "web2-i")
            await agent_token(database, seeded)
            release = proxy.hold.setdefault("RunInstances", threading.Event())
            job_id = await start(api, "create", "foundation", "web2-i")
            with subcontractor(agent_config(tmp_path, url, seeded, "journal-1"), tmp_path) as first:
                # moto has launched the instance; the answer is held: kill the agent now
                assert await asyncio.to_thread(proxy.held.wait, WAIT)
                assert len(await asyncio.to_thread(instances, ec2)) == 1
                first.stop(signal.SIGKILL)
            del proxy.hold["RunInstances"]
            release.set()
            # the lease runs out; the task goes to another agent, which finds the instance
            config = agent_config(tmp_path, url, seeded, "journal-2")
            with subcontractor(config, tmp_path) as second:
                job = await api.job(job_id, "DONE", "ERROR", "ABORTED")
                assert job["state"] == "DONE", job
                assert second.stop() == 0
            [instance] = await asyncio.to_thread(instances, ec2)
            assert proxy.seen["RunInstances"] == 1
            shown = (await api(FOUNDATION, locator="web2-i"))["foundation"]
            assert shown["typeFields"]["instance_id"] == instance["InstanceId"]
            assert shown["interfaces"][0]["mac"] == instance["NetworkInterfaces"][0]["MacAddress"]
