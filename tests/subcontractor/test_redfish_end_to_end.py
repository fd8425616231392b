"""The shipped ``redfish-foundation`` blueprint's create script through real processes:
`contractor serve` on PostgreSQL steps the job, a `subcontractor run` daemon with the
``redfish`` module takes its tasks, and ``sushy-emulator --fake`` over HTTPS is the BMC. Then
a wrong password (a final error naming the BMC) and a BMC that is not there yet (retried)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Job
from contractor.services import auth, building, interfaces, jobs, resources
from contractor.services import blueprint as bp_service
from contractor.services import tasks as task_service
from tests.factories import make_site, unique
from tests.serving import free_port
from tests.subcontractor import served
from tests.subcontractor.processes import contractor_on, subcontractor, write_config
from tests.subcontractor.redfish_bmc import (
    RedfishBmc,
    image_server,
    require_emulator,
    sushy_emulator,
)

T = TypeVar("T")
WAIT = 90.0  # the emulator takes 1-11 s for each power change
AGENT = {"concurrency": 4, "confirm_interval": 0.2, "soft_off_wait": 1}


class Database(served.Database):
    """The IPMI end-to-end tests' database, waiting longer and reading more."""

    async def wait_until(self, job_id: int, check: Callable[[Job], bool], what: str) -> Job:
        deadline = time.monotonic() + WAIT
        while True:
            job = await self.job(job_id)
            if check(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job.state} ({job.message!r}), not {what}")
            await asyncio.sleep(0.2)

    async def finished(self, job_id: int) -> Job:
        return await self.wait_until(
            job_id, lambda job: job.state in ("done", "error", "aborted"), "finished"
        )

    async def dump(self, *tables: str) -> str:
        """Every row of ``tables`` as text (to look for a secret in it)."""

        async def work(session: AsyncSession) -> str:
            rows = [
                str(list(await session.execute(text(f"SELECT * FROM {table}")))) for table in tables
            ]
            return "\n".join(rows)

        return await self.run(work)


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    require_emulator()
    async with served.migrated_database("contractor_redfish", Database) as db:
        yield db


def bmc_fields(bmc: RedfishBmc, port: int | None = None, **changes: Any) -> dict[str, Any]:
    fields = {
        "bmc_address": "127.0.0.1",
        "bmc_port": port or bmc.port,
        "username": bmc.username,
        "password": bmc.password,
        "ca_bundle": bmc.tls.ca,
    }
    return {**fields, **changes}


async def shipped_create(
    db: Database, fields: dict[str, Any], *, image: str = "", script: str | None = None
) -> served.Setup:
    """A foundation of the shipped blueprint (type written as the original's files write it)
    with interfaces eth0 and eth1, and its create job (running ``script`` when given)."""

    async def work(session: AsyncSession) -> served.Setup:
        await resources.load_builtin(session)
        site = await make_site(session, config_values={"redfish_boot_image": image})
        blueprint = await bp_service.get_foundation_blueprint(session, "redfish-foundation")
        if script is not None:
            source = await bp_service.create_script(session, name=unique("s"), source=script)
            # this database's copy of the blueprint creates with the script instead
            await bp_service.link_script(session, blueprint=blueprint, role="create", script=source)
        foundation = await building.create_foundation(
            session,
            locator=unique("rf"),
            site=site,
            blueprint=blueprint,
            type="RedFish",
            fields=fields,
        )
        await interfaces.add_interface(
            session, foundation=foundation, physical_location="eth0", is_provisioning=True
        )
        await interfaces.add_interface(session, foundation=foundation, physical_location="eth1")
        await building.set_located(session, foundation)
        job = await jobs.create_job(
            session, target=foundation, script_name="create", creator="alice"
        )
        token = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["redfish"]
        )
        return served.Setup(site.name, foundation.id, job.id, token.text)

    return await db.run(work)


def agent_config(tmp_path: Path, url: str, setup: served.Setup) -> Path:
    return write_config(
        tmp_path,
        url=url,
        token=setup.token,
        site=setup.site,
        modules={"redfish": AGENT},
        journal=tmp_path / "journal",
    )


CREATE = """
mutation ($site: String!, $fields: JSON!) {
  createFoundation(locator: "rf-gql", site: $site, blueprint: "redfish-foundation",
                   type: "RedFish", typeFields: $fields) {
    __typename ... on Foundation { type typeFields } ... on Error { message field }
  }
  eth0: addInterface(locator: "rf-gql", physicalLocation: "eth0", isProvisioning: true) {
    __typename ... on Error { message }
  }
  eth1: addInterface(locator: "rf-gql", physicalLocation: "eth1") {
    __typename ... on Error { message }
  }
  locateFoundation(locator: "rf-gql") { __typename ... on Error { message } }
  doCreate(foundation: "rf-gql") { __typename ... on Job { id } ... on Error { message } }
}
"""
FOUNDATION = """
{ foundation(locator: "rf-gql") {
    state typeFields interfaces { physicalLocation mac } } }
"""


def contractor_logs(directory: Path) -> list[str]:
    return [log.read_text(errors="replace") for log in directory.glob("contractor-*.log")]


async def graphql(url: str, token: str, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client:
        answer = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def operator(db: Database, image: str) -> tuple[str, str, str]:
    """The shipped blueprints, a site booting ``image``, an admin's API token and a
    subcontractor token for the site's ``redfish`` module."""

    async def work(session: AsyncSession) -> tuple[str, str, str]:
        await resources.load_builtin(session)
        site = await make_site(session, config_values={"redfish_boot_image": image})
        hasher = db.settings.password_hasher()
        user = await auth.create_user(session, username=unique("op"), role="admin", hasher=hasher)
        api = await auth.create_token(session, user=user, description="test", hasher=hasher)
        agent = await task_service.create_subcontractor_token(
            session, name=unique("agent"), sites=[site.name], modules=["redfish"]
        )
        return site.name, api.text, agent.text

    return await db.run(work)


async def test_shipped_redfish_blueprint_create_through_graphql_and_virtual_media(
    database: Database, tmp_path: Path
) -> None:
    with (
        sushy_emulator(tmp_path / "bmc", power="On") as bmc,
        image_server(tmp_path / "images") as iso,
    ):
        bmc.deaf()  # the running OS ignores the power button: power_off must force it
        site, api, token = await operator(database, iso)
        with contractor_on(free_port(), database.url, tmp_path) as url:
            made = await graphql(url, api, CREATE, site=site, fields=bmc_fields(bmc))
            assert made["createFoundation"]["__typename"] == "Foundation", made
            assert made["createFoundation"]["type"] == "redfish"
            shown = made["createFoundation"]["typeFields"]
            assert "password" not in shown
            assert shown["bmc_port"] == bmc.port
            assert shown["ca_bundle"] == bmc.tls.ca
            assert made["doCreate"]["__typename"] == "Job", made
            job_id = made["doCreate"]["id"]
            setup = served.Setup(site, 0, job_id, token)
            with subcontractor(agent_config(tmp_path, url, setup), tmp_path) as agent:
                job = await database.wait_until(
                    job_id,
                    lambda job: (
                        "wait for power off" in (job.message or "")
                        or job.state in ("done", "error", "aborted")
                    ),
                    "waiting for the power-off",
                )
                assert job.state in ("queued", "waiting"), job.message
                # booted once from the ISO through virtual media, on
                assert bmc.power() == "On"
                assert bmc.boot()["BootSourceOverrideTarget"] == "Cd"
                assert (bmc.media()["Inserted"], bmc.media()["Image"]) == (True, iso)
                # the installer is done and turns the machine off
                bmc.post(f"{bmc.system}/Actions/ComputerSystem.Reset", {"ResetType": "ForceOff"})
                job = await database.finished(job_id)
                assert job.state == "done", job.message
                assert agent.stop() == 0
            found = (await graphql(url, api, FOUNDATION))["foundation"]
        output = agent.output()
        assert bmc.power() == "Off"
        assert bmc.media()["Inserted"] is False  # ejected at the end

    assert found["state"] == "BUILT"
    assert "password" not in found["typeFields"]
    macs = {i["physicalLocation"]: i["mac"] for i in found["interfaces"]}
    assert macs == {"eth0": bmc.nics[0], "eth1": bmc.nics[1]}  # from EthernetInterfaces
    tasks = await database.tasks(job_id)
    sent = [(t.function, t.parameters.get("state") or t.parameters.get("device")) for t in tasks]
    # graceful twice (ignored), then forced; the state read back each time
    assert sent[:3] == [("set_power", "soft_off"), ("set_power", "soft_off"), ("set_power", "off")]
    assert bmc.resets()[:3] == ["GracefulShutdown", "GracefulShutdown", "ForceOff"]
    assert [f for f, _ in sent[3:6]] == ["get_interface_map", "insert_media", "set_boot_device"]
    assert sent[6] == ("set_power", "on")
    assert sent[-1] == ("eject_media", None)
    assert all(t.state == "done" for t in tasks)
    # the password: never in the logs, the job, its log, its events or answers
    logs = [output, *contractor_logs(tmp_path)]
    assert len(logs) >= 2
    assert "result accepted" in output
    assert all(bmc.password not in log for log in logs)
    assert bmc.password not in await database.dump("job", "job_log", "event")
    assert token.rpartition(".")[2] not in output


async def test_wrong_password_is_a_final_error_naming_the_bmc(
    database: Database, tmp_path: Path
) -> None:
    with sushy_emulator(tmp_path / "bmc") as bmc:
        setup = await shipped_create(
            database, bmc_fields(bmc, password="not-the-redfish-pw"), script="foundation.power_on()"
        )
        with (
            served.served(
                database.url,
                tmp_path,
                token=setup.token,
                site=setup.site,
                modules={"redfish": AGENT},
            ) as live,
            subcontractor(live.config, tmp_path) as agent,
        ):
            job = await database.finished(setup.job_id)
            assert agent.stop() == 0
        assert job.state == "error"
        assert f"BMC {bmc.label} refused the credentials of user 'admin'" in job.message
        assert "not-the-redfish-pw" not in job.message
        assert "not-the-redfish-pw" not in agent.output()
        assert "not-the-redfish-pw" not in await database.dump("job", "job_log", "event")
        assert bmc.power() == "Off"
        (task,) = await database.tasks(setup.job_id)
        assert (task.state, task.attempt) == ("failed", 1)  # not retried


async def test_an_unreachable_bmc_is_retried_until_it_answers(
    database: Database, tmp_path: Path
) -> None:
    port = free_port()  # the BMC is not up yet
    with contractor_on(free_port(), database.url, tmp_path) as url:
        # the fields need the emulator's CA, made when it starts: make one now, start later
        with sushy_emulator(tmp_path / "probe") as probe:
            fields = bmc_fields(probe, port=port)
        setup = await shipped_create(database, fields, script="foundation.power_on()")
        with subcontractor(agent_config(tmp_path, url, setup), tmp_path) as agent:

            async def retried() -> bool:
                tasks = await database.tasks(setup.job_id)
                return bool(tasks) and tasks[0].attempt >= 2

            deadline = time.monotonic() + WAIT
            while not await retried():
                assert time.monotonic() < deadline, "the task was never tried again"
                await asyncio.sleep(0.2)
            assert (await database.job(setup.job_id)).state == "queued"
            with sushy_emulator(
                tmp_path / "bmc", port=port, password=fields["password"], tls=probe.tls
            ) as bmc:
                job = await database.finished(setup.job_id)
                assert job.state == "done", job.message
                assert bmc.power() == "On"
                assert agent.stop() == 0
    assert "did not answer" in agent.output()
