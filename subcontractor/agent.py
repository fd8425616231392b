"""The agent: poll for tasks, run them under each module's limit, answer, never lose an answer.

* One long-poll loop per module asks for as many tasks as the module has free slots, so a busy
  module never starves another and no task waits in the agent for a slot.
* Each task runs as its own asyncio task with a deadline (the module's ``task_timeout``); while
  it runs, heartbeats keep its lease (every third of the lease, measured by Contractor's clock).
  A heartbeat answered 409 means the task was handed to someone else: the work is abandoned.
* An answer is written to the journal before it is sent and removed once Contractor accepts or
  rejects it; when Contractor cannot be reached it is sent again with back-off, also after a
  restart.
* Polls back off exponentially (with jitter) while Contractor is unreachable.
* ``stop`` (SIGTERM): polling stops, running tasks get ``shutdown_grace`` seconds, the rest are
  given back (a retryable error, so Contractor offers them again), answers are flushed once
  more, and what is still unsent stays in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from subcontractor.client import Client, Rejected, Stale, Task, Unauthorized, Unavailable
from subcontractor.config import Config
from subcontractor.journal import Entry, Journal
from subcontractor.masking import Masker, redacted
from subcontractor.module import Module, TaskFailed

__all__ = ["Agent", "Backoff"]

log = logging.getLogger("subcontractor")

GIVE_BACK_TIMEOUT = 5.0
FINAL_FLUSH_TIMEOUT = 10.0


class Backoff:
    """Exponential back-off with full jitter: 0.5 s doubling up to ``ceiling``."""

    def __init__(self, first: float = 0.5, ceiling: float = 30.0) -> None:
        self.first = first
        self.ceiling = ceiling
        self.failures = 0

    def next(self) -> float:
        delay = min(self.ceiling, self.first * 2**self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class _Running:
    task: Task
    work: asyncio.Task[dict[str, Any]] | None = None
    giving_back: bool = False
    lease_lost: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.changed = asyncio.Condition()

    async def wait_free(self) -> int:
        async with self.changed:
            await self.changed.wait_for(lambda: self.used < self.size)
            return self.size - self.used

    async def release(self) -> None:
        async with self.changed:
            self.used -= 1
            self.changed.notify_all()


class Agent:
    def __init__(
        self,
        config: Config,
        modules: dict[str, Module],
        client: Client,
        journal: Journal,
        masker: Masker,
        *,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.modules = modules
        self.client = client
        self.journal = journal
        self.masker = masker
        self.site = config.contractor.site
        self.slots = {name: _Slots(module.concurrency) for name, module in modules.items()}
        self.running: dict[int, _Running] = {}
        self.unsent: dict[str, Entry] = {}
        self.unsent_added = asyncio.Event()
        self.stopping = asyncio.Event()
        self.on_event = on_event
        self.counts = {"tasks": 0, "results": 0, "errors": 0, "dropped": 0}
        self._workers: set[asyncio.Task[None]] = set()

    def _event(self, name: str, **details: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, details)

    # -- the whole life ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        service = None
        if self.config.boot.enabled:
            # (imported here: the boot services import the agent's back-off); a problem
            # starting them (the endpoint's address) raises ConfigError before anything runs
            from subcontractor.boot.service import BootService

            service = BootService(self.config, self.client)
        leftovers = self.journal.pending()
        for entry in leftovers:
            self.unsent[entry.name] = entry
        if leftovers:
            log.info("%d answer(s) from before the restart to send again", len(leftovers))
        sender = asyncio.create_task(self._send_unsent(), name="sender")
        if leftovers:
            self.unsent_added.set()
        pollers = [
            asyncio.create_task(self._poll(name), name=f"poll-{name}") for name in self.modules
        ]
        boot: asyncio.Task[None] | None = None
        if service is not None:
            boot = asyncio.create_task(service.run(stop), name="boot")
            boot.add_done_callback(lambda task: self._boot_ended(task, stop))
        log.info(
            "subcontractor for site %r polling %s at %s",
            self.site,
            ", ".join(f"{n} (x{m.concurrency})" for n, m in self.modules.items()),
            self.config.contractor.url,
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping: no more polls; %d task(s) running", len(self.running))
            self.stopping.set()
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            if boot is not None:
                await asyncio.gather(boot, return_exceptions=True)
            await self._finish_running()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._final_flush()
            for module in self.modules.values():
                with contextlib.suppress(Exception):
                    await module.aclose()
            log.info(
                "stopped (%d answer(s) left in the journal for the next start)", len(self.unsent)
            )

    def _boot_ended(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        if not task.cancelled() and task.exception() is not None and not stop.is_set():
            log.error("the boot services failed; stopping", exc_info=task.exception())
            stop.set()

    async def _finish_running(self) -> None:
        grace = self.config.agent.shutdown_grace
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers), timeout=grace)
            if pending:
                for running in list(self.running.values()):
                    running.giving_back = True
                    if running.work is not None:
                        running.work.cancel()
                await asyncio.wait(pending, timeout=GIVE_BACK_TIMEOUT + 1)

    # -- polling -----------------------------------------------------------------------

    async def _poll(self, name: str) -> None:
        slots = self.slots[name]
        backoff = Backoff()
        failing = False
        while not self.stopping.is_set():
            free = await slots.wait_free()
            try:
                tasks = await self.client.poll(
                    self.site, [name], min(free, 100), self.config.agent.wait
                )
            except (Unavailable, Rejected, ValueError, KeyError, TypeError) as error:
                # ValueError and the like: an answer that is not the task API's
                delay = backoff.next()
                if isinstance(error, Rejected) and not isinstance(error, Unauthorized):
                    delay = max(delay, 10.0)
                if not failing:
                    log.warning("polling for %s failed (%s); retrying with back-off", name, error)
                    failing = True
                else:
                    log.debug("polling for %s failed again (%s); next in %.1fs", name, error, delay)
                await asyncio.sleep(delay)
                continue
            if failing:
                log.info("polling for %s works again", name)
                failing = False
            backoff.reset()
            for task in tasks:
                if task.module != name:  # never expected; answer it rather than drop it
                    log.error("task %d is for module %r, not %r", task.task_id, task.module, name)
                slots.used += 1
                self._start(task)

    def _start(self, task: Task) -> None:
        self.masker.learn(task.parameters)
        self.counts["tasks"] += 1
        running = _Running(task)
        self.running[task.task_id] = running
        worker = asyncio.create_task(self._execute(running), name=f"task-{task.task_id}")
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    # -- running a task ----------------------------------------------------------------

    async def _execute(self, running: _Running) -> None:
        task = running.task
        module = self.modules.get(task.module)
        label = f"{task.module}.{task.function}"
        log.info(
            "task %d (job %d, attempt %d): %s %s",
            task.task_id,
            task.job_id,
            task.attempt,
            label,
            redacted(task.parameters),
        )
        self._event("started", task_id=task.task_id, function=label)
        heart = asyncio.create_task(self._heartbeat(running))
        entry: Entry | None = None
        try:
            try:
                if module is None:
                    raise TaskFailed(f"this subcontractor does not serve module {task.module!r}")
                functions = module.functions()
                function = functions.get(task.function)
                if function is None:
                    have = ", ".join(sorted(functions))
                    raise TaskFailed(
                        f"module {task.module!r} has no function {task.function!r} (has: {have})"
                    )
                timeout = self.config.modules[task.module].task_timeout
                running.work = asyncio.create_task(function(dict(task.parameters)))
                done, _ = await asyncio.wait({running.work}, timeout=timeout)
                if not done:
                    running.work.cancel()
                    raise TaskFailed(f"{label} did not finish within {timeout:g}s", retryable=True)
                data = running.work.result()
                if not isinstance(data, dict):
                    raise TaskFailed(f"{label} returned {type(data).__name__}, not an object")
                try:
                    json.dumps(data)
                except (TypeError, ValueError) as error:
                    raise TaskFailed(
                        f"{label} returned a value JSON cannot carry: {error}"
                    ) from None
                entry = self._entry(task, "result", data=data)
            except TaskFailed as failure:
                entry = self._entry(
                    task,
                    "error",
                    message=self.masker.mask(failure.message),
                    retryable=failure.retryable,
                )
            except asyncio.CancelledError:
                if running.giving_back:
                    await self._give_back(task)
                    return
                if running.lease_lost:
                    log.warning("task %d: lease lost; its work was abandoned", task.task_id)
                    return
                raise
            except Exception as error:  # a module's bug must not kill the agent
                log.exception("task %d: %s failed unexpectedly", task.task_id, label)
                entry = self._entry(
                    task,
                    "error",
                    message=self.masker.mask(f"{label} failed: {type(error).__name__}: {error}"),
                    retryable=False,
                )
        finally:
            heart.cancel()
            self.running.pop(task.task_id, None)
            slots = self.slots.get(task.module)
            if slots is not None:
                await slots.release()
        if running.lease_lost:
            log.warning("task %d: lease lost while it ran; answer dropped", task.task_id)
            return
        assert entry is not None
        self.journal.add(entry)
        self._event("answered", task_id=task.task_id, kind=entry.kind)
        await self._deliver(entry)

    def _entry(self, task: Task, kind: str, **values: Any) -> Entry:
        return Entry(
            kind=kind,
            task_id=task.task_id,
            job_id=task.job_id,
            module=task.module,
            function=task.function,
            cookie=task.cookie,
            lease=task.lease,
            **values,
        )

    async def _heartbeat(self, running: _Running) -> None:
        task = running.task
        interval = self.config.agent.heartbeat_seconds or max(
            1.0, (task.lease_seconds or 300.0) / 3
        )
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.heartbeat(task.task_id, task.lease)
                log.debug("task %d: lease extended", task.task_id)
            except Stale as error:
                log.warning("task %d: %s", task.task_id, error)
                running.lease_lost = True
                if running.work is not None:
                    running.work.cancel()
                return
            except (Unavailable, Rejected) as error:
                log.warning("task %d: heartbeat failed (%s); trying again", task.task_id, error)

    async def _give_back(self, task: Task) -> None:
        try:
            await asyncio.wait_for(
                self.client.error(
                    task.task_id,
                    task.cookie,
                    task.lease,
                    "given back: the subcontractor is stopping",
                    retryable=True,
                ),
                GIVE_BACK_TIMEOUT,
            )
            log.info("task %d given back", task.task_id)
        except (Unavailable, Rejected, TimeoutError) as error:
            log.warning(
                "task %d could not be given back (%s); its lease will expire", task.task_id, error
            )

    # -- answers -----------------------------------------------------------------------

    async def _send(self, entry: Entry) -> bool:
        """True when Contractor has taken or refused the answer (it may leave the journal)."""
        try:
            if entry.kind == "result":
                await self.client.result(entry.task_id, entry.cookie, entry.lease, entry.data)
                self.counts["results"] += 1
                log.info("task %d: result accepted", entry.task_id)
            else:
                await self.client.error(
                    entry.task_id,
                    entry.cookie,
                    entry.lease,
                    entry.message,
                    retryable=entry.retryable,
                )
                self.counts["errors"] += 1
                log.info(
                    "task %d: error reported (%s): %s",
                    entry.task_id,
                    "retryable" if entry.retryable else "final",
                    entry.message,
                )
        except (Unavailable, Unauthorized) as error:
            log.warning("%s: answer not delivered yet (%s)", entry.describe(), error)
            return False
        except Rejected as error:
            self.counts["dropped"] += 1
            log.warning("%s: answer refused, dropped: %s", entry.describe(), error)
        self.journal.remove(entry)
        self._event("delivered", task_id=entry.task_id, kind=entry.kind)
        return True

    async def _deliver(self, entry: Entry) -> None:
        if not await self._send(entry):
            self.unsent[entry.name] = entry
            self.unsent_added.set()

    async def _send_unsent(self) -> None:
        backoff = Backoff()
        while True:
            await self.unsent_added.wait()
            self.unsent_added.clear()
            while self.unsent:
                for name, entry in list(self.unsent.items()):
                    if not await self._send(entry):
                        break
                    self.unsent.pop(name, None)
                else:
                    backoff.reset()
                    continue
                await asyncio.sleep(backoff.next())

    async def _final_flush(self) -> None:
        async def flush() -> None:
            for name, entry in list(self.unsent.items()):
                if not await self._send(entry):
                    return
                self.unsent.pop(name, None)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flush(), FINAL_FLUSH_TIMEOUT)
