"""The agent's own rules, against a scripted Contractor (httpx MockTransport): module limits,
answers for every outcome, the journal when Contractor fails, heartbeats that lose the lease,
and giving tasks back on stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from subcontractor.agent import Agent
from subcontractor.client import Client
from subcontractor.config import Config, load
from subcontractor.journal import Entry, Journal
from subcontractor.masking import Masker
from subcontractor.module import Function, Module, NoOptions, TaskFailed

TOKEN = "sct_0123456789abcdef.s3cr3t-s3cr3t-s3cr3t-s3cr3t"
WAIT = 10.0


class Work(Module):
    """A module whose functions do what their parameters say."""

    def __init__(self, concurrency: int) -> None:
        super().__init__("work", NoOptions(), concurrency=concurrency)
        self.running = 0
        self.most = 0

    def functions(self) -> Mapping[str, Function]:
        return {"sleep": self.sleep, "fail": self.fail, "boom": self.boom, "odd": self.odd}

    async def sleep(self, parameters: dict[str, Any]) -> dict[str, Any]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(parameters["seconds"])
        finally:
            self.running -= 1
        return {"slept": parameters["seconds"]}

    async def fail(self, parameters: dict[str, Any]) -> dict[str, Any]:
        raise TaskFailed(f"no luck with {parameters['password']}", retryable=True)

    async def boom(self, parameters: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a bug")

    async def odd(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return {"when": object()}


@dataclass
class FakeContractor:
    """Hands out queued tasks and records every call."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    result_status: list[int] = field(default_factory=list)  # popped per result call
    heartbeat_status: int = 200
    max_tasks_seen: list[int] = field(default_factory=list)

    def add(self, function: str, **parameters: Any) -> int:
        task_id = len(self.tasks) + 1
        self.tasks.append(
            {
                "task_id": task_id,
                "job_id": 100 + task_id,
                "module": "work",
                "function": function,
                "cookie": f"cookie{task_id}",
                "lease": f"lease{task_id}",
                "attempt": 1,
                "lease_expires_at": "2100-01-01T00:00:00+00:00",
                "parameters": parameters,
            }
        )
        return task_id

    def answers(self, kind: str) -> list[dict[str, Any]]:
        return [body for path, body in self.calls if path == kind]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        path = request.url.path.rsplit("/", 1)[1]
        body = json.loads(request.content)
        self.calls.append((path, body))
        if path == "poll":
            self.max_tasks_seen.append(body["max_tasks"])
            handed = self.tasks[: body["max_tasks"]]
            del self.tasks[: len(handed)]
            if not handed:
                await asyncio.sleep(0.02)
            return httpx.Response(200, json={"tasks": handed})
        if path == "result" and self.result_status:
            status = self.result_status.pop(0)
            if status != 200:
                return httpx.Response(status, json={"error": {"code": "X", "message": "no"}})
        if path == "heartbeat" and self.heartbeat_status != 200:
            return httpx.Response(
                self.heartbeat_status, json={"error": {"code": "STALE", "message": "not yours"}}
            )
        return httpx.Response(200, json={"status": "accepted"})


def make_config(tmp_path: Path, **agent: Any) -> Config:
    path = tmp_path / "sub.toml"
    lines = [
        "[contractor]",
        'url = "http://contractor"',
        'site = "dc1"',
        "[agent]",
        f'journal_dir = "{tmp_path / "journal"}"',
        *(f"{key} = {value}" for key, value in agent.items()),
        "[modules.work]",
        "concurrency = 2",
        "task_timeout = 5",
    ]
    path.write_text("\n".join(lines) + "\n")
    return load(path, environ={"SUBCONTRACTOR_TOKEN": TOKEN})


@dataclass
class Running:
    agent: Agent
    stop: asyncio.Event
    done: asyncio.Task[None]
    journal: Journal
    client: Client

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.done, WAIT)
        await self.client.aclose()
        self.journal.close()


async def start(
    tmp_path: Path, fake: FakeContractor, module: Module | None = None, **agent: Any
) -> Running:
    config = make_config(tmp_path, **agent)
    client = Client(config.contractor, transport=httpx.MockTransport(fake.handle))
    journal = Journal(config.agent.journal_dir)
    journal.open()
    runner = Agent(config, {"work": module or Work(2)}, client, journal, Masker(config.secrets()))
    stop = asyncio.Event()
    return Running(runner, stop, asyncio.create_task(runner.run(stop)), journal, client)


async def until(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_every_outcome_is_answered_within_the_module_limit(tmp_path: Path) -> None:
    fake = FakeContractor()
    work = Work(2)
    for _ in range(5):
        fake.add("sleep", seconds=0.05)
    fake.add("fail", password="hunter22")
    fake.add("boom")
    fake.add("teleport")
    fake.add("odd")
    running = await start(tmp_path, fake, work)
    await until(lambda: len(fake.answers("result")) + len(fake.answers("error")) == 9, "answers")
    await running.finish()
    assert work.most <= 2
    assert max(fake.max_tasks_seen) <= 2
    assert len(fake.answers("result")) == 5
    errors = {body["task_id"]: body for body in fake.answers("error")}
    assert errors[6]["retryable"] is True
    assert errors[6]["message"] == "no luck with ***"  # the password was learned and masked
    assert errors[7]["retryable"] is False
    assert errors[7]["message"] == "work.boom failed: RuntimeError: a bug"
    assert errors[8]["message"] == (
        "module 'work' has no function 'teleport' (has: boom, fail, odd, sleep)"
    )
    assert errors[9]["message"].startswith("work.odd returned a value JSON cannot carry")
    assert not list((tmp_path / "journal").glob("*.json"))


async def test_answers_wait_in_the_journal_while_contractor_fails(tmp_path: Path) -> None:
    fake = FakeContractor(result_status=[503, 503])
    fake.add("sleep", seconds=0)
    running = await start(tmp_path, fake)
    await until(lambda: len(fake.answers("result")) >= 1, "a first try")
    assert len(list((tmp_path / "journal").glob("*.json"))) == 1
    await until(lambda: len(fake.answers("result")) == 3, "the retries")
    await until(lambda: not list((tmp_path / "journal").glob("*.json")), "an empty journal")
    await running.finish()


async def test_refused_answers_leave_the_journal(tmp_path: Path) -> None:
    fake = FakeContractor(result_status=[409])
    fake.add("sleep", seconds=0)
    running = await start(tmp_path, fake)
    await until(lambda: len(fake.answers("result")) == 1, "the answer")
    await until(lambda: not list((tmp_path / "journal").glob("*.json")), "an empty journal")
    await running.finish()
    assert running.agent.counts["dropped"] == 1


async def test_leftovers_are_sent_after_a_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.add(Entry("result", 7, 107, "work", "sleep", "cookie7", "lease7", data={"slept": 1}))
    journal.close()
    fake = FakeContractor()
    running = await start(tmp_path, fake)
    await until(lambda: len(fake.answers("result")) == 1, "the leftover")
    await running.finish()
    assert fake.answers("result")[0] == {
        "task_id": 7,
        "cookie": "cookie7",
        "lease": "lease7",
        "data": {"slept": 1},
    }
    assert not list((tmp_path / "journal").glob("*.json"))


async def test_a_second_agent_may_not_share_the_journal(tmp_path: Path) -> None:
    from subcontractor.config import ConfigError

    first = Journal(tmp_path / "journal")
    first.open()
    try:
        with pytest.raises(ConfigError, match="in use by another subcontractor"):
            Journal(tmp_path / "journal").open()
    finally:
        first.close()


async def test_a_lost_lease_abandons_the_work(tmp_path: Path) -> None:
    fake = FakeContractor(heartbeat_status=409)
    fake.add("sleep", seconds=3)
    running = await start(tmp_path, fake, heartbeat_seconds=0.05)
    await until(lambda: bool(fake.answers("heartbeat")), "a heartbeat")
    await until(lambda: not running.agent.running, "the work abandoned")
    await running.finish()
    assert fake.answers("result") == []
    assert fake.answers("error") == []


async def test_stop_gives_back_what_does_not_finish_in_the_grace(tmp_path: Path) -> None:
    fake = FakeContractor()
    fake.add("sleep", seconds=0.1)
    fake.add("sleep", seconds=30)
    running = await start(tmp_path, fake, shutdown_grace=0.5)
    await until(lambda: len(running.agent.running) == 2, "two running tasks")
    polls = len(fake.answers("poll"))
    await running.finish()
    assert [body["task_id"] for body in fake.answers("result")] == [1]
    (given_back,) = fake.answers("error")
    assert given_back["task_id"] == 2
    assert given_back["retryable"] is True
    assert "given back" in given_back["message"]
    assert len(fake.answers("poll")) <= polls + 1  # at most the poll already on its way
