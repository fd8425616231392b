# ruff: noqa: E501  (GraphQL documents read best on one line)
"""What the console asks beyond the inventory's pages: a structure's dependency records (one
batch for a whole page) and the newest events with the cursor to follow them from."""

from __future__ import annotations

from typing import Any

from contractor.db import transaction
from contractor.services import building
from tests.schema.conftest import Client, build_inventory, queries

DEPENDENCIES = """
query ($first: Int) { structures(first: $first) { nodes {
  id hostname
  dependencies { id link state structure { id } scriptStructure { id } foundation { locator } }
} } }
"""


async def _depend(client: Client, waiting: str, on: int, *, scripts_on: int | None = None) -> int:
    async with transaction(client.writer_sessions) as session:
        record = await building.create_dependency(
            session,
            structure=await building.get_structure_by_id(session, on),
            foundation=await building.get_foundation(session, waiting),
            script_structure=None
            if scripts_on is None
            else await building.get_structure_by_id(session, scripts_on),
            link="hard",
        )
        return record.id


def _by_host(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {node["hostname"]: node["dependencies"] for node in data["structures"]["nodes"]}


async def test_a_structures_dependency_records_in_one_batch_for_the_page(client: Client) -> None:
    made = (await build_inventory(client, 4, prefix="a"))["structures"]
    first = await _depend(client, "a-node0001", made[0])
    second = await _depend(client, "a-node0002", made[0], scripts_on=made[3])
    shown = _by_host(await client.data(DEPENDENCIES, {"first": 100}, role="reader"))
    assert [d["id"] for d in shown["a0000"]] == [first, second]  # on it, by id
    assert shown["a0000"][0] == {
        "id": first,
        "link": "hard",
        "state": "PLANNED",
        "structure": {"id": made[0]},
        "scriptStructure": None,
        "foundation": {"locator": "a-node0001"},
    }
    assert [d["id"] for d in shown["a0003"]] == [second]  # its scripts run on a0003
    assert shown["a0001"] == []
    assert shown["a0002"] == []
    # the records cost one statement for the page, however many structures it has
    client.statements.clear()
    await client.data(DEPENDENCIES, {"first": 100}, role="reader")
    small = [s for s in queries(client.statements) if "FROM dependency" in s]
    assert len(small) == 1, client.statements
    await build_inventory(client, 20, prefix="b")
    client.statements.clear()
    large = await client.data(DEPENDENCIES, {"first": 100}, role="reader")
    assert len(large["structures"]["nodes"]) == 24
    assert len([s for s in queries(client.statements) if "FROM dependency" in s]) == 1


NEWEST = "query ($last: Int, $after: String, $filter: EventFilter) { events(last: $last, after: $after, filter: $filter) { cursor hasMore events { cursor kind objectType objectName } } }"
TOUCH = 'mutation ($d: String!) { updateSite(name: "dc1", description: $d) { __typename } }'


async def test_the_newest_events_and_the_cursor_to_follow_them(client: Client) -> None:
    await build_inventory(client, 1)
    for text in ("one", "two", "three"):
        await client.data(TOUCH, {"d": text})
    everything = (await client.data(NEWEST, {"last": 1000}, role="reader"))["events"]
    newest = (await client.data(NEWEST, {"last": 2}, role="reader"))["events"]
    assert newest["events"] == everything["events"][-2:]  # the two newest, oldest first
    assert newest["events"][-1]["objectName"] == "dc1"
    assert newest["cursor"] == newest["events"][-1]["cursor"]
    assert newest["hasMore"] is False
    # following from its cursor: nothing twice, and what comes next
    after = {"after": newest["cursor"]}
    assert (await client.data(NEWEST, after, role="reader"))["events"]["events"] == []
    await client.data(TOUCH, {"d": "four"})
    (next_one,) = (await client.data(NEWEST, after, role="reader"))["events"]["events"]
    assert (next_one["objectType"], next_one["kind"]) == ("site", "updated")
    # with a filter: the newest matching ones; the cursor is the newest event's all the same
    sites = {"objectTypes": ["site"]}
    only = (await client.data(NEWEST, {"last": 3, "filter": sites}, role="reader"))["events"]
    assert [e["objectType"] for e in only["events"]] == ["site"] * 3
    assert only["cursor"] == next_one["cursor"]
    structures = {"objectTypes": ["structure"]}
    other = await client.data(NEWEST, {"last": 3, "filter": structures}, role="reader")
    assert [e["objectType"] for e in other["events"]["events"]] == ["structure"]
    assert other["events"]["cursor"] == next_one["cursor"]


async def test_bad_last_names_the_field_and_reads_nothing(client: Client) -> None:
    for variables, words in (
        ({"last": 0}, "last must be between 1 and 1000"),
        ({"last": 1001}, "last must be between 1 and 1000"),
        ({"last": 5, "after": "0"}, "give after or last, not both"),
    ):
        client.statements.clear()
        body = await client.query(NEWEST, variables, role="reader")
        (error,) = body["errors"]
        assert words in error["message"], error
        assert not [s for s in client.statements if "FROM event" in s], client.statements


JOBS = "query ($f: String, $s: Int, $first: Int) { jobs(foundation: $f, structure: $s, finished: true, first: $first) { id target } }"


async def test_a_targets_jobs_are_asked_for_by_the_target_and_bounded(client: Client) -> None:
    from contractor.services import blueprint, jobs

    await build_inventory(client, 3, prefix="j")
    async with transaction(client.writer_sessions) as session:
        script = await blueprint.create_script(session, name="noop", source="pass\n")
        metal = await blueprint.get_foundation_blueprint(session, "metal")
        await blueprint.link_script(session, blueprint=metal, role="create", script=script)
        made = {}
        for locator in ("j-node0000", "j-node0001"):
            target = await building.get_foundation(session, locator)
            job = await jobs.create_job(session, target=target, script_name="create", creator="t")
            made[locator] = job.id
    mine = await client.data(JOBS, {"f": "j-node0001"}, role="reader")
    assert mine == {"jobs": [{"id": made["j-node0001"], "target": "foundation j-node0001"}]}
    none = await client.data(JOBS, {"f": "j-node0002"}, role="reader")
    assert none == {"jobs": []}
    (newest,) = (await client.data(JOBS, {"first": 1}, role="reader"))["jobs"]
    assert newest["id"] == max(made.values())
    for variables, words in (
        ({"first": 0}, "first must be between 1 and 500"),
        ({"first": 501}, "first must be between 1 and 500"),
        ({"f": "nowhere"}, "nowhere"),
        ({"s": 999999}, "999999"),
    ):
        body = await client.query(JOBS, variables, role="reader")
        (error,) = body["errors"]
        assert words in error["message"], error
