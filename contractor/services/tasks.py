"""Tasks for subcontractors: tokens, leases, results, errors and heartbeats; and the signal
of a booted machine (``signal_job``).

A task is handed out by ``claim_tasks`` under a lease (a random string and an expiry); only
the holder of the current lease may answer it (``hold_result``, ``report_error``) or extend
it (``heartbeat``). When a lease expires the task is offered again with a higher ``attempt``
and a new lease, so an answer from the earlier holder is refused. An answer must also carry
the job's current cookie, so an answer to a call the job has rolled back or moved past is
refused too. Every refusal raises ``Stale`` (HTTP 409) and changes nothing. Task parameters
may hold secrets: nothing here logs them, and an answer (a result, an error message) is
masked of them as it is taken (``services.secrets``), before anything keeps or shows it.

A result is taken in three steps, composed by ``contractor.foreman.results`` (which steps
the job after them): ``hold_result`` locks the task and its job and checks the answer,
``hand_over`` gives the result to the job's runner and marks the task done, and
``keep_result`` saves the runner when the job does not step at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Forbidden, InvalidInput, NotFound, Stale, Unauthorized, excerpt
from contractor.models import (
    Foundation,
    Job,
    JobState,
    Structure,
    SubcontractorToken,
    Task,
    TaskState,
    utcnow,
)
from contractor.services import hotpath, jobs
from contractor.services.hotpath import Held
from contractor.services.secrets import Secrets
from contractor.services.validation import check_name
from tscript import Runner

__all__ = [
    "Held",
    "Identity",
    "NewSubcontractorToken",
    "Subcontractor",
    "TokenCache",
    "authenticate_subcontractor",
    "claim_tasks",
    "create_subcontractor_token",
    "hand_over",
    "heartbeat",
    "hold_result",
    "keep_result",
    "report_error",
    "revoke_subcontractor_token",
    "signal_job",
]

_TOKEN_RE = re.compile(r"sct_([a-z0-9]{16})\.([A-Za-z0-9_\-]{20,})")
RETRY_BACKOFF_MAX = 60.0
TOKEN_CACHE_SIZE = 10_000


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Subcontractor:
    """Who called, as a checked token says: a plain value, safe to keep between sessions."""

    name: str
    key: str
    sites: tuple[str, ...]
    modules: tuple[str, ...]

    @classmethod
    def of(cls, token: SubcontractorToken) -> Subcontractor:
        return cls(token.name, token.key, tuple(token.sites), tuple(token.modules))


Identity = SubcontractorToken | Subcontractor


@dataclass(frozen=True)
class NewSubcontractorToken:
    token: SubcontractorToken
    text: str  # shown once


async def create_subcontractor_token(
    session: AsyncSession, *, name: str, sites: Sequence[str], modules: Sequence[str]
) -> NewSubcontractorToken:
    """A token for the subcontractor identity ``name``, allowed to take tasks of ``sites``
    (by name) for ``modules``."""
    check_name(name, field="name", max_length=64, what="subcontractor name")
    if not sites:
        raise InvalidInput("a subcontractor token needs at least one site", field="sites")
    if not modules:
        raise InvalidInput("a subcontractor token needs at least one module", field="modules")
    for site in sites:
        await _require_site(session, site, field="sites")
    for module in modules:
        check_name(module, field="modules", max_length=40, what="module name")
    key = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = SubcontractorToken(
        name=name,
        key=key,
        secret_sha256=_sha256(secret),
        sites=sorted(set(sites)),
        modules=sorted(set(modules)),
    )
    session.add(token)
    await session.flush()
    return NewSubcontractorToken(token=token, text=f"sct_{key}.{secret}")


async def revoke_subcontractor_token(session: AsyncSession, key: str) -> None:
    token = (
        await session.execute(select(SubcontractorToken).where(SubcontractorToken.key == key))
    ).scalar_one_or_none()
    if token is None:
        raise NotFound(f"subcontractor token {key!r} does not exist", field="key")
    token.revoked_at = utcnow()
    await session.flush()


class TokenCache:
    """Subcontractor tokens already checked, for ``seconds``: a poller calls several times a
    second, and each call would otherwise read its token again. A token revoked elsewhere is
    refused once its entry expires (``seconds`` at most); ``seconds=0`` caches nothing."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._tokens: dict[str, tuple[float, Subcontractor]] = {}

    def get(self, text: str) -> Subcontractor | None:
        key = _sha256(text)
        entry = self._tokens.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._tokens[key]
            return None
        return entry[1]

    def put(self, text: str, token: Subcontractor) -> None:
        if self.seconds <= 0:
            return
        now = self.clock()
        if len(self._tokens) >= TOKEN_CACHE_SIZE:  # many identities: drop what has expired
            self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
        self._tokens[_sha256(text)] = (now + self.seconds, token)


async def authenticate_subcontractor(
    session: AsyncSession, text: str, *, cache: TokenCache | None = None
) -> Subcontractor:
    match = _TOKEN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise Unauthorized("malformed subcontractor token (it reads sct_<key>.<secret>)")
    cached = cache.get(text.strip()) if cache is not None else None
    if cached is not None:
        return cached
    token = (
        await session.execute(
            select(SubcontractorToken).where(SubcontractorToken.key == match.group(1))
        )
    ).scalar_one_or_none()
    if (
        token is None
        or token.revoked_at is not None
        or not hmac.compare_digest(token.secret_sha256, _sha256(match.group(2)))
    ):
        raise Unauthorized("invalid subcontractor token")
    identity = Subcontractor.of(token)
    if cache is not None:
        cache.put(text.strip(), identity)
    return identity


def _check_claim(token: Identity, site: str, modules: Sequence[str]) -> None:
    if site not in token.sites:
        raise Forbidden(f"token {token.name!r} may not take tasks of site {site!r}", field="site")
    for module in modules:
        if module not in token.modules:
            raise Forbidden(
                f"token {token.name!r} may not take tasks for module {module!r}", field="modules"
            )


def _lease(token: Identity, lease_seconds: float) -> hotpath.Lease:
    """A new lease: a fresh random prefix (the task id follows it, so it is unique and not
    guessable), its holder and the times."""
    now = utcnow()
    return hotpath.Lease(
        prefix=secrets.token_hex(12),
        holder=token.name,
        now=now,
        expires=now + dt.timedelta(seconds=lease_seconds),
    )


async def claim_tasks(
    on: hotpath.On,
    *,
    token: Identity,
    site: str,
    modules: Sequence[str],
    limit: int,
    lease_seconds: float,
) -> list[hotpath.LeasedTask]:
    """Lease up to ``limit`` available tasks of ``site`` for ``modules``: never answered,
    not leased or with an expired lease, oldest first. Each gets a new lease and attempt.
    ``on`` a session, in its transaction; on PostgreSQL also a connection of its own in
    autocommit (``hotpath.leasing``): one statement, committed at once."""
    _check_claim(token, site, modules)
    lease = _lease(token, lease_seconds)
    tasks = await hotpath.claim(on, site=site, modules=modules, limit=limit, lease=lease)
    if not tasks:
        await _require_site(on, site, field="site")
    return tasks


async def _require_site(on: hotpath.On, site: str, *, field: str) -> None:
    if not await hotpath.site_exists(on, site):
        raise NotFound(f"site {site!r} does not exist", field=field)


async def _current(session: AsyncSession, token: Identity, task_id: int, lease: str) -> Held:
    """The task and its job, both locked (job first, as the engine does: ``FOR UPDATE OF
    job, task`` locks in that order), if ``lease`` is the task's current lease."""
    held = await hotpath.lock_job_and_task(session, task_id)
    if held is None:
        raise NotFound(f"task {task_id} does not exist", field="task_id")
    task = held.task
    if held.site not in token.sites or task.module not in token.modules:
        raise Forbidden(f"token {token.name!r} may not answer task {task_id}", field="task_id")
    if task.state != TaskState.OPEN:
        raise Stale(f"task {task_id} is {task.state}; nothing was changed", field="task_id")
    if task.lease is None or not _same(task.lease, lease):
        raise Stale(
            f"the lease of task {task_id} is not current (the task was handed out again, "
            f"attempt {task.attempt}); nothing was changed",
            field="lease",
        )
    return held


def _same(secret: str, given: str) -> bool:
    """``given`` is ``secret``, compared in constant time (as bytes: ``compare_digest``
    refuses non-ASCII strings, and a client may send any, lone surrogates too)."""
    return hmac.compare_digest(secret.encode(), given.encode("utf-8", "surrogatepass"))


def _check_cookie(task: Task, cookie: str) -> None:
    if not _same(task.cookie, cookie):
        raise Stale(f"cookie is not task {task.id}'s; nothing was changed", field="cookie")


async def hold_result(
    session: AsyncSession, *, token: Identity, task_id: int, cookie: str, lease: str
) -> Held:
    """The task and its job, locked, if its result may be taken now: the current lease and
    the job's current cookie, and a job that is queued or paused. Anything else raises
    (``Stale`` and the like) and changes nothing."""
    held = await _current(session, token, task_id, lease)
    _check_cookie(held.task, cookie)
    job = held.job
    if job.state not in (JobState.QUEUED, JobState.PAUSED):
        raise Stale(
            f"job {job.id} is {job.state} and takes no results; nothing was changed",
            field="task_id",
        )
    return held


def hand_over(
    held: Held,
    runner: Runner,
    *,
    cookie: str,
    data: dict[str, Any],
    foundation: Foundation | None,
) -> str | None:
    """Give a held task's result to its job's runner (the waiting function checks it) and mark
    the task done; the runner's message. The result is taken with the task's secrets masked
    (``services.secrets``; ``foundation``: the job's, see ``jobs.foundation_of``), so nothing
    made of it holds them. A result the function refuses changes nothing."""
    job, task = held.job, held.task
    masked = Secrets.of_task(task.parameters, foundation).mask(data)
    answer, message = runner.from_subcontractor(cookie, masked)
    if answer == "Error":
        raise InvalidInput(
            f"the result of task {task.id} ({task.module}.{task.function}) was refused by the "
            "function: check its fields",
            field="data",
        )
    if answer != "Accepted":
        raise Stale(f"job {job.id} does not expect this result: {answer}", field="cookie")
    task.state = TaskState.DONE
    task.finished_at = utcnow()
    return message


async def keep_result(
    session: AsyncSession, job: Job, runner: Runner, message: str | None, *, actor: str
) -> None:
    """A result handed over (``hand_over``) that the job does not step on now: the runner
    keeps it, and a queued job is due (the engine steps it soon)."""
    job.runner_state = runner.dumps()
    before = jobs.progress_of(job)
    if message:
        job.message = message
    jobs.report_progress(session, job, before, actor=actor)
    if job.state == JobState.QUEUED:
        job.step_at = utcnow()
        await jobs.announce(session, jobs.JOBS_CHANNEL)
    await session.flush()


async def report_error(
    session: AsyncSession,
    *,
    token: Identity,
    task_id: int,
    cookie: str,
    lease: str,
    message: str,
    retryable: bool,
) -> Task:
    """A task failed. Retryable: it is offered again after a back-off growing with its
    attempts. Otherwise the job goes to ``error`` (an operator resets or rolls it back), its
    message the subcontractor's with the task's secrets masked (``services.secrets``)."""
    held = await _current(session, token, task_id, lease)
    job, task = held.job, held.task
    _check_cookie(task, cookie)
    secrets_of_task = Secrets.of_task(task.parameters, await jobs.foundation_of(session, job))
    message = secrets_of_task.mask_text(message)
    now = utcnow()
    if retryable:
        task.lease = None
        task.lease_holder = None
        task.lease_expires_at = None
        task.available_at = now + dt.timedelta(seconds=min(2.0 ** (task.attempt - 1), 60.0))
        await jobs.announce(session, jobs.TASKS_CHANNEL)
    else:
        task.state = TaskState.FAILED
        task.finished_at = now
        if job.state in (JobState.QUEUED, JobState.PAUSED):
            jobs.set_state(
                session,
                job,
                JobState.ERROR,
                actor=f"subcontractor {token.name}",
                action="error",
                message=f"{task.module}.{task.function} failed: {message}",
            )
    await session.flush()
    return task


async def heartbeat(
    session: AsyncSession,
    *,
    token: Identity,
    task_id: int,
    lease: str,
    lease_seconds: float,
) -> Task:
    """Extend the lease of a task still being worked on."""
    task = (await _current(session, token, task_id, lease)).task
    task.lease_expires_at = utcnow() + dt.timedelta(seconds=lease_seconds)
    await session.flush()
    return task


async def signal_job(session: AsyncSession, config_uuid: str, *, cookie: str | None = None) -> Job:
    """A booted machine says it is done: the unfinished job of the structure with this config
    UUID (or of its foundation) sees ``signaling.complete``, and a queued one steps soon.

    A job that expects a boot target (``signaling.reset( pxe_name=... )``) takes the signal
    only with its cookie, ``<job id>(<pxe name>)``: a machine still running an earlier boot
    (another PXE target, or the boot of an earlier job) is refused with ``Stale`` and nothing
    changes. A job that expects none takes any signal; a cookie sent to it must still name
    the job."""
    structure = (
        await session.execute(select(Structure).where(Structure.config_uuid == config_uuid))
    ).scalar_one_or_none()
    job = None
    if structure is not None:
        job = await jobs.job_for_target(session, structure)
        if job is None:
            query = select(Job).where(
                Job.foundation_id == structure.foundation_id, Job.finished_at.is_(None)
            )
            job = (await session.execute(query)).scalar_one_or_none()
    if job is None:
        raise NotFound("no running job waits for this config UUID", field="config_uuid")
    job = await jobs.lock_job(session, job.id)
    _check_signal_cookie(jobs.awaited_signal(job), cookie)
    job = await jobs.lock_job(session, job.id)
    job.signalled = True
    jobs.write_log(
        session, job, actor="signal", action="signalled", from_state=job.state, to_state=job.state
    )
    if job.state == JobState.QUEUED:
        job.step_at = utcnow()
        await jobs.announce(session, jobs.JOBS_CHANNEL)
    await session.flush()
    return job


_COOKIE = re.compile(r"(\d+)\((.*)\)\Z", re.DOTALL)


def _check_signal_cookie(awaited: jobs.AwaitedSignal, cookie: str | None) -> None:
    """Refuse a signal that is not from the boot the job waits for (see ``signal_job``)."""
    if cookie is None:
        if awaited.pxe_name is not None:
            raise InvalidInput(
                f"job {awaited.job_id} waits for the signal of a boot of PXE "
                f"{awaited.pxe_name!r}: send its cookie, <job id>(<pxe name>)",
                field="cookie",
            )
        return
    match = _COOKIE.match(cookie)
    if match is None:
        raise InvalidInput(
            f"cookie {excerpt(cookie, 60)!r} is not <job id>(<pxe name>)", field="cookie"
        )
    job_id, pxe_name = int(match.group(1)), match.group(2)
    if job_id != awaited.job_id:
        raise Stale(
            f"the cookie is for job {job_id}, a job that no longer waits here (the running "
            f"job is {awaited.job_id}): a signal from an earlier boot; nothing changed",
            field="cookie",
        )
    if awaited.pxe_name is not None and pxe_name != awaited.pxe_name:
        raise Stale(
            f"the cookie is from a boot of PXE {excerpt(pxe_name, 50)!r}; job {job_id} waits "
            f"for one of {awaited.pxe_name!r} (a stale boot); nothing changed",
            field="cookie",
        )
