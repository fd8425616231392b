"""The shipped Docker BluePrints end to end with real processes: `contractor serve` on
PostgreSQL, a `subcontractor run` daemon with the `docker` module, and a real `podman system
service` as the Docker host's engine (tests/subcontractor/podman.py). A container Foundation
is created on a Docker Complex (placed on its member, whose capacity a refresh job read
through the module's host_capacity), its ports mapped, made and started
by the foreman's job, its address recorded in IPAM and its published port answering; then
stopped, destroyed (nothing left on the engine), its address and ports released. The
member's password never shows in tasks or logs."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from contractor import migrate
from contractor.db import create_engine
from contractor.models import ComplexMember
from contractor.services import auth, building, complexes, resources, site
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import unique
from tests.serving import free_port
from tests.subcontractor.podman import IMAGE, Engine, podman_service
from tests.subcontractor.processes import contractor_on, subcontractor, write_config
from tests.subcontractor.test_aws import ERR, FOUNDATION, Api, start
from tests.subcontractor.test_end_to_end import Database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
PASSWORD = "member-pw-93f1c2"


class Toml:
    """A value written into the agent's config as it is (an inline table)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


DOCKER = {
    "concurrency": 2,
    "stop_timeout": 1,
    "port_range": Toml("[32000, 32999]"),
    "ulimits": Toml("{ nofile = [1024, 4096], nproc = [1024, 2048] }"),
}


@pytest.fixture
def engine() -> Iterator[Engine]:
    with podman_service() as found:
        yield found


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    url = Settings(database_url=make_pg_database("contractor_docker")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    db_engine = create_engine(settings)
    try:
        yield Database(url=url, engine=db_engine, settings=settings)
    finally:
        await db_engine.dispose()


ADDRESSES = """query($id: Int!) { structure(id: $id) {
  addresses { ipAddress interfaceName isPrimary addressBlock { name } } } }"""


async def plan_host(api: Api, db: Database, engine: Engine, site_name: str) -> None:
    """Zone, site, the container network's address block, and a built Docker host structure
    made a member of a Docker Complex (its endpoint the podman service; its capacity not yet
    read)."""
    await api(
        f"""mutation {{ createZone(name: "example", nameservers: ["ns1.dns-provider.test."],
        soaEmail: "hostmaster@example.com") {{ {ERR} ... on Zone {{ name }} }} }}"""
    )
    await api(
        f"""mutation($site: String!) {{ createSite(name: $site, zone: "example")
        {{ {ERR} ... on Site {{ name }} }} }}""",
        site=site_name,
    )
    await api(
        f"""mutation($site: String!) {{ createAddressBlock(site: $site, name: "containers",
        subnet: "10.88.0.0/16") {{ {ERR} ... on AddressBlock {{ name }} }} }}""",
        site=site_name,
    )
    await api(
        f"""mutation($site: String!) {{
        createFoundation(locator: "dockhost1-f", site: $site, blueprint: "manual-foundation",
        type: "Manual") {{ {ERR} ... on Foundation {{ locator }} }} }}""",
        site=site_name,
    )
    await api(
        f"""mutation($site: String!) {{ createStructure(hostname: "dockhost1", site: $site,
        blueprint: "docker-host", foundation: "dockhost1-f") {{ {ERR}
        ... on Structure {{ id }} }} }}""",
        site=site_name,
    )

    async def member(session: Any) -> None:
        found = await site.get_site(session, site_name)
        host = await building.get_structure(session, found, "dockhost1")
        # the host itself is built by hand (a manual machine): mark it so
        await building.set_built(session, await building.get_foundation(session, "dockhost1-f"))
        await building.set_structure_built(session, host)
        complex_ = await complexes.create_complex(session, name="dock", site=found, type="docker")
        await complexes.add_complex_member(
            session, complex_, host, endpoint=engine.endpoint, username="", password=PASSWORD
        )

    await db.run(member)


async def refresh_capacity(api: Api, db: Database) -> dict[str, Any]:
    """The member's capacity read by a job, through the docker module's host_capacity."""

    async def start_jobs(session: Any) -> int:
        complex_ = await complexes.get_complex(session, "dock")
        [job] = await complexes.refresh_capacity(session, complex_, creator="test")
        return job.id

    job_id = await db.run(start_jobs)
    job = await api.job(job_id, "DONE", "ERROR", "ABORTED")
    assert job["state"] == "DONE", job
    tasks = await api(
        "query($id: Int!) { job(id: $id) { tasks { function parameters } } }", id=job_id
    )
    assert tasks["job"]["tasks"][0]["function"] == "host_capacity"
    assert PASSWORD not in json.dumps(tasks)  # it travelled in the task, masked when shown

    async def read(session: Any) -> dict[str, Any]:
        found = (await session.execute(select(ComplexMember))).scalars().all()
        [member] = [m for m in found if m.endpoint.startswith("unix://")]
        return {"cpus": member.cpu_count, "memory_mb": member.memory_mb, "disk_gb": member.disk_gb}

    return await db.run(read)


async def plan_container(api: Api, site_name: str) -> int:
    """The container foundation on `docker-container`, placed on the Complex, and a
    structure on `docker-service`; the id of that structure."""
    fields = {
        "complex": "dock",
        "image": IMAGE,
        "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
        "environment": {"MODE": "test"},
        "ports": [{"port": 8080}],
        "cpus": 1,
        "memory_mb": 128,
    }
    await api(
        f"""mutation($site: String!, $fields: JSON!) {{
        createFoundation(locator: "web1-c", site: $site, blueprint: "docker-container",
        type: "Docker", typeFields: $fields) {{ {ERR} ... on Foundation {{ locator }} }} }}""",
        site=site_name,
        fields=fields,
    )
    await api(
        f"""mutation {{
        addInterface(locator: "web1-c", physicalLocation: "eth0", name: "eth0") {{ {ERR}
        ... on NetworkInterface {{ name }} }}
        locateFoundation(locator: "web1-c") {{ {ERR} ... on Foundation {{ locator }} }} }}"""
    )
    created = await api(
        f"""mutation($site: String!) {{ createStructure(hostname: "web1", site: $site,
        blueprint: "docker-service", foundation: "web1-c") {{ {ERR}
        ... on Structure {{ id }} }} }}""",
        site=site_name,
    )
    return int(created["createStructure"]["id"])


async def test_shipped_docker_blueprints_through_the_foreman(
    database: Database, engine: Engine, tmp_path: Path
) -> None:
    site_name = unique("dock")

    async def seed(session: Any) -> str:
        await resources.load_builtin(session)
        user = await auth.create_user(session, username=unique("admin"), role="admin")
        return (await auth.create_token(session, user=user)).text

    async def agent_token(session: Any) -> str:
        agent = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site_name], modules=["docker"]
        )
        return agent.text

    admin_token = await database.run(seed)
    with contractor_on(free_port(), database.url, tmp_path) as url:
        headers = {"Authorization": f"Bearer {admin_token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            api = Api(client)
            await plan_host(api, database, engine, site_name)
            token = await database.run(agent_token)
            config = write_config(
                tmp_path,
                url=url,
                token=token,
                site=site_name,
                modules={"docker": DOCKER},
                journal=tmp_path / "journal",
            )
            with subcontractor(config, tmp_path) as agent:
                capacity = await refresh_capacity(api, database)
                assert capacity["cpus"] == os.cpu_count()
                assert capacity["memory_mb"] > 0
                disk = os.statvfs(engine.directory)
                assert capacity["disk_gb"] == disk.f_frsize * disk.f_blocks // 2**30
                structure = await plan_container(api, site_name)
                job_id = await start(api, "create", "foundation", "web1-c")
                job = await api.job(job_id, "done", "error", "aborted")
                assert job["state"] == "DONE", job
                assert engine.containers() == ["web1-c"]
                shown = (await api(FOUNDATION, locator="web1-c"))["foundation"]
                assert shown["state"] == "BUILT"
                fields = shown["typeFields"]
                [(key, host_port)] = fields["port_map"].items()
                assert key == "8080/tcp"
                assert 32000 <= host_port <= 32999
                inspected = json.loads(engine.podman("inspect", "web1-c").stdout)[0]
                assert fields["container_id"] == inspected["Id"]
                assert inspected["State"]["Running"]
                ip = inspected["NetworkSettings"]["IPAddress"]
                addresses = (await api(ADDRESSES, id=structure))["structure"]["addresses"]
                assert addresses == [
                    {
                        "ipAddress": ip,
                        "interfaceName": "eth0",
                        "isPrimary": True,
                        "addressBlock": {"name": "containers"},
                    }
                ]
                fetched = engine.in_netns(
                    "/bin/busybox", "wget", "-qO-", f"http://127.0.0.1:{host_port}/index.html"
                )
                assert fetched.stdout == "hello from the container\n", fetched.stderr

                # the structure (its service) starts it; the foundation's stop and start jobs
                job = await api.job(await start(api, "create", "structure", structure), "DONE")
                job = await api.job(await start(api, "stop", "foundation", "web1-c"), "DONE")
                assert not json.loads(engine.podman("inspect", "web1-c").stdout)[0]["State"][
                    "Running"
                ]
                job = await api.job(await start(api, "start", "foundation", "web1-c"), "DONE")
                assert json.loads(engine.podman("inspect", "web1-c").stdout)[0]["State"]["Running"]

                # destroy: the structure, then the foundation; nothing left, all released
                await api.job(await start(api, "destroy", "structure", structure), "DONE")
                job_id = await start(api, "destroy", "foundation", "web1-c")
                job = await api.job(job_id, "DONE", "ERROR", "ABORTED")
                assert job["state"] == "DONE", job
                assert engine.containers() == []
                shown = (await api(FOUNDATION, locator="web1-c"))["foundation"]
                assert shown["typeFields"]["container_id"] is None
                assert shown["typeFields"]["port_map"] == {}
                assert (await api(ADDRESSES, id=structure))["structure"]["addresses"] == []
                assert agent.stop() == 0
            output = agent.output()
            tasks = await api(
                "query($id: Int!) { job(id: $id) { tasks { function parameters } } }", id=job_id
            )
    shown_tasks = json.dumps(tasks)
    assert "destroy" in shown_tasks
    assert PASSWORD not in shown_tasks
    assert PASSWORD not in output
    for log in tmp_path.glob("contractor-*.log"):  # noqa: ASYNC240 (the test is over)
        assert PASSWORD not in log.read_text(errors="replace")
