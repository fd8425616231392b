"""``contractor demo``: one command that shows Contractor building something.

On the database of the settings (the embedded SQLite file by default) it migrates, loads the
shipped BluePrints, creates a demo inventory (a site tree publishing the DNS zone
``demo.test``, address blocks, simulated Foundations with Linux Structures on them), serves
the API, runs an in-process subcontractor with the ``simulated`` module for each demo site,
starts the create jobs and shows their progress, then runs the example GraphQL queries and
prints them with their answers, the console's and the explorer's URLs and an API token. It
keeps serving until interrupted (or, with ``exit_when_built``, exits once every job has
finished: 0 when all is built). ``contractor dns export`` then writes the zone files of
``demo.test``, its parent ``test`` and the sites' reverse zones.

Running it again on the same database reuses what exists (by name) and adds only what is
missing, so it never fails on its own earlier run. A simulated Complex carries placed VMs
(``demo_complex``). With ``with_types = ("redfish",)`` it also runs a Redfish BMC emulator
and builds a Redfish foundation against it (``demo_redfish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.demo_complex import EXAMPLES, prepare_complex
from contractor.demo_redfish import agent_modules, installer, prepare_redfish, start_emulator
from contractor.errors import ContractorError, NotFound
from contractor.models import AddressBlock, Foundation, Job, JobState, Site, Structure, User, Zone
from contractor.plugins import foundation_types
from contractor.redfish_emulator import EmulatorError, RedfishBmc
from contractor.rest.state import app_state
from contractor.services import (
    addresses,
    auth,
    building,
    directory,
    interfaces,
    jobs,
    network,
    resources,
    site,
)
from contractor.services import blueprint as bps
from contractor.services import tasks as task_service
from contractor.settings import Settings
from subcontractor.agent import Agent
from subcontractor.client import Client
from subcontractor.config import AgentConfig, Config, ContractorConfig
from subcontractor.journal import Journal
from subcontractor.masking import Masker
from subcontractor.module import load_modules

__all__ = ["WITH", "DemoError", "DemoOptions", "run_demo"]

ROOT = "demo"
SITES = {"demo-east": "10.20.1.0/24", "demo-west": "10.20.2.0/24"}
# The demo sites' DNS zone (``.test`` is reserved for testing, RFC 6761): one row per label,
# so the parent zone ``test`` is published too, delegating ``demo.test``. Its name server is
# outside both zones (no demo host serves DNS), so neither needs glue.
DOMAIN = "demo.test"
NAMESERVERS = ["ns1.example.net"]
USER = "demo"
WITH = ("redfish",)  # foundation types the demo can add, each against its emulator
FINISHED = (JobState.DONE, JobState.ERROR, JobState.ABORTED)
# the demo's engine settings: quick to notice new work, short leases (a task left by an
# interrupted earlier run comes back soon)
FAST = {
    "foreman_idle_seconds": 0.2,
    "foreman_waiting_recheck_seconds": 0.5,
    "task_lease_seconds": 30.0,
}


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int | None = None  # None: the settings' port when free, else one the kernel picks
    foundations: int = 4
    delay_seconds: int = 1  # each simulated power or boot call
    fail_percent: int = 0  # how often a simulated call fails
    install_seconds: float = 3.0  # the simulated installer
    exit_when_built: bool = False
    with_types: tuple[str, ...] = ()  # some of WITH


@dataclass
class Tracked:
    label: str
    job_id: int
    state: str = ""  # the job's, as stored ("done"); "built" for a target built earlier
    message: str = ""

    @property
    def shown(self) -> str:
        """The state as the API spells it (``DONE``, ``BUILT``)."""
        return self.state.upper()


@dataclass
class Prepared:
    api_token: str
    agent_token: str
    tracked: list[Tracked] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    first_locator: str = ""
    first_structure: tuple[str, str] = ("", "")


# -- the inventory ---------------------------------------------------------------------------


async def _site(session: AsyncSession, name: str, zone: Zone, **fields: Any) -> tuple[Site, bool]:
    """The site, created if missing; one an earlier demo left without a zone gets it."""
    try:
        found = await site.get_site(session, name)
    except NotFound:
        return await site.create_site(session, name=name, zone=zone, **fields), True
    if found.zone_id is None:
        await site.update_site(session, found, zone=zone)
    return found, False


async def _zone(session: AsyncSession, fqdn: str) -> tuple[Zone, bool]:
    """The zone ``fqdn`` and each missing parent, created with the demo's name servers."""
    try:
        return await directory.find_zone(session, fqdn), False
    except NotFound:
        pass
    label, _, parent_name = fqdn.partition(".")
    parent = (await _zone(session, parent_name))[0] if parent_name else None
    nameservers = [] if parent is not None else NAMESERVERS  # a child inherits them
    zone = await directory.create_zone(session, name=label, parent=parent, nameservers=nameservers)
    return zone, True


async def prepare(
    session: AsyncSession,
    settings: Settings,
    options: DemoOptions,
    redfish: RedfishBmc | None = None,
) -> Prepared:
    """Load the shipped BluePrints, create (or reuse) the demo inventory and tokens, and start
    a create job for every demo target that is not built and has none (with ``redfish``, a
    Redfish foundation against that BMC too)."""
    loaded = await resources.load_builtin(session)
    notes = []
    if loaded.created or loaded.updated:
        notes.append(
            f"shipped BluePrints: {len(loaded.created)} created, {len(loaded.updated)} updated"
        )
    zone, new_zone = await _zone(session, DOMAIN)
    root, new_root = await _site(
        session,
        ROOT,
        zone,
        description="Contractor demo: the root of the site tree",
        config_values={"domain_name": DOMAIN, "dns_servers": ["10.20.0.53"]},
    )
    if not new_root:
        notes.append(f"site {ROOT!r} exists: reusing the demo inventory, adding what is missing")
    if new_zone and not new_root:
        notes.append(f"the demo sites now publish the DNS zone {DOMAIN!r}")
    foundation_bp = await bps.get_foundation_blueprint(session, "simulated-foundation")
    structure_bp = await bps.get_structure_blueprint(session, "linux")
    leaves = []
    for name, subnet in SITES.items():
        leaf, _ = await _site(session, name, zone, description=f"demo site {name}", parent=root)
        blocks = await session.execute(
            select(AddressBlock).where(AddressBlock.site_id == leaf.id, AddressBlock.name == name)
        )
        block = blocks.scalar_one_or_none()
        if block is None:
            block = await network.create_address_block(
                session, site=leaf, name=name, subnet=subnet, gateway_offset=1
            )
        leaves.append((leaf, block))
    created = 0
    first_locator, first_structure = "", ("", "")
    targets: list[Foundation | Structure] = []
    machine = {"delay_seconds": options.delay_seconds, "fail_likelihood": options.fail_percent}
    for index in range(options.foundations):
        leaf, block = leaves[index % len(leaves)]
        number = index // len(leaves) + 1
        short = leaf.name.removeprefix("demo-")
        locator = f"{short}-sim{number:02d}"
        hostname = f"{short}-web{number:02d}"
        try:
            foundation = await building.get_foundation(session, locator)
        except NotFound:
            foundation = await building.create_foundation(
                session,
                locator=locator,
                site=leaf,
                blueprint=foundation_bp,
                type="simulated",
                fields=machine,
            )
            await interfaces.add_interface(
                session,
                foundation=foundation,
                physical_location="eth0",
                mac=f"02:00:00:00:{index // 256:02x}:{index % 256:02x}",
                is_provisioning=True,
            )
            created += 1
        if foundation.state == "planned" and await jobs.job_for_target(session, foundation) is None:
            await building.set_located(session, foundation)
        structure = await building.foundation_structure(session, foundation)
        if structure is None:
            structure = await building.create_structure(
                session,
                hostname=hostname,
                site=leaf,
                blueprint=structure_bp,
                foundation=foundation,
                config_values={"role": "web"},
            )
            await addresses.create_address(
                session, structure=structure, block=block, interface_name="eth0", is_primary=True
            )
        targets += [foundation, structure]
        if index == 0:
            first_locator, first_structure = locator, (leaf.name, structure.hostname)
    if not new_root:
        notes.append(f"{created} new foundations (the demo has {len(targets) // 2} in all)")
    targets += await prepare_complex(session, leaves[0][0], foundation_bp, structure_bp, machine)
    if redfish is not None:
        targets.append(await prepare_redfish(session, redfish, leaves[0][0]))
    tracked = []
    for target in targets:
        label = (
            f"foundation {target.locator}"
            if isinstance(target, Foundation)
            else f"structure {target.hostname}"
        )
        job = await jobs.job_for_target(session, target)
        if job is None and target.state != "built":
            job = await jobs.create_job(session, target=target, script_name="create", creator=USER)
        if job is not None:
            tracked.append(Tracked(label, job.id))
        else:
            tracked.append(Tracked(label, 0, "built", "built earlier"))
    api_token = await _api_token(session, settings)
    agent = await task_service.create_subcontractor_token(
        session,
        name="demo-subcontractor",
        sites=list(SITES),
        modules=["simulated", *(["redfish"] if redfish is not None else [])],
    )
    return Prepared(
        api_token=api_token,
        agent_token=agent.text,
        tracked=tracked,
        notes=notes,
        first_locator=first_locator,
        first_structure=first_structure,
    )


async def _api_token(session: AsyncSession, settings: Settings) -> str:
    hasher = settings.password_hasher()
    found = await session.execute(select(User).where(User.username == USER))
    user = found.scalar_one_or_none()
    if user is None:
        user = await auth.create_user(session, username=USER, role="admin", hasher=hasher)
    new = await auth.create_token(session, user=user, description="contractor demo", hasher=hasher)
    return new.text


# -- serving ---------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int | None, default: int) -> socket.socket:
    """A listening socket: on ``port``, or on ``default`` when free, else on a kernel port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else [default, 0]
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as error:
            sock.close()
            if port is None and error.errno == errno.EADDRINUSE:
                continue
            if error.errno == errno.EADDRINUSE:
                raise DemoError(
                    f"port {candidate} on {host} is in use; pick another with --port "
                    "(--port 0 lets the system choose)"
                ) from None
            raise DemoError(f"cannot listen on {host} port {candidate}: {error.strerror}") from None
        sock.listen(128)
        sock.setblocking(False)
        return sock
    raise AssertionError("port 0 is always free")  # pragma: no cover


def _url(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


# -- progress --------------------------------------------------------------------------------


class Progress:
    """Job lines: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, out: TextIO, tracked: list[Tracked]) -> None:
        self.out = out
        self.tracked = tracked
        self.tty = out.isatty()
        self.drawn = 0
        self.started = time.monotonic()

    def update(self, rows: dict[int, tuple[str, str]]) -> None:
        changed = []
        for item in self.tracked:
            if item.job_id in rows and rows[item.job_id] != (item.state, item.message):
                item.state, item.message = rows[item.job_id]
                changed.append(item)
        if self.tty:
            if self.drawn:
                self.out.write(f"\x1b[{self.drawn}F")
            columns = max(shutil.get_terminal_size().columns - 1, 40)  # a line never wraps
            for item in self.tracked:
                detail = "" if item.message == item.state else item.message
                line = f"  {item.label:<28} {item.shown:<8} {detail}"
                self.out.write("\x1b[2K" + line[:columns] + "\n")
            counts = self.counts()
            summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            self.out.write(f"\x1b[2K  [{time.monotonic() - self.started:5.1f}s] {summary}\n")
            self.drawn = len(self.tracked) + 1
        else:
            for item in changed:
                elapsed = time.monotonic() - self.started
                detail = "" if item.message in ("", item.state) else f" ({item.message})"
                self.out.write(f"[{elapsed:5.1f}s] {item.label}: {item.shown}{detail}\n")
        self.out.flush()

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.tracked:
            counts[item.shown] = counts.get(item.shown, 0) + 1
        return counts

    @property
    def finished(self) -> bool:
        """Every job has finished, or a job failed and the rest only wait (on it)."""
        open_ = [item for item in self.tracked if item.state not in (*FINISHED, "built")]
        return not open_ or (bool(self.failed) and all(i.state == JobState.WAITING for i in open_))

    @property
    def failed(self) -> list[Tracked]:
        return [item for item in self.tracked if item.state in (JobState.ERROR, JobState.ABORTED)]


async def _job_rows(
    sessions: async_sessionmaker[AsyncSession], ids: list[int]
) -> dict[int, tuple[str, str]]:
    async with transaction(sessions) as session:
        found = await session.execute(select(Job.id, Job.state, Job.message).where(Job.id.in_(ids)))
        return {job_id: (state, message or "") for job_id, state, message in found}


# -- the example queries ---------------------------------------------------------------------


def example_queries(prepared: Prepared) -> list[tuple[str, str]]:
    site_name, hostname = prepared.first_structure
    return [
        (
            "How many foundations per site, type and state?",
            "{ foundationCounts(groupBy: [SITE, TYPE, STATE]) { site type state count } }",
        ),
        (
            "How many Linux servers per site, and are they built?",
            '{ structureCounts(groupBy: [SITE, STATE], filter: {blueprint: {name: "linux", '
            "includeDescendants: true}}) { site state count } }",
        ),
        (
            "What does taking this machine down affect?",
            f'{{ impact(of: {{foundation: "{prepared.first_locator}"}}) {{ kind name state }} }}',
        ),
        (
            "Every structure in the demo site tree with its addresses",
            f'{{ structures(first: 100, filter: {{site: {{name: "{ROOT}", '
            "includeDescendants: true}}) { totalCount edges { node { hostname state "
            "foundation { locator type } addresses { interfaceName ipAddress isPrimary } } } } }",
        ),
        (
            "The composed configuration of a host",
            f'{{ structure(site: "{site_name}", hostname: "{hostname}") {{ config }} }}',
        ),
        (
            "The DNS zone of the demo sites, as BIND gets it (contractor dns export writes it)",
            f'{{ publishedZones(name: "{DOMAIN}") {{ name serial problems {{ code message }} }} }}',
        ),
        *EXAMPLES,
    ]


async def _ask(http: httpx.AsyncClient, token: str, query: str) -> str:
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        raise DemoError(f"the example query failed: {query}\n{json.dumps(body)}")
    text = json.dumps(body["data"], separators=(",", ":"))
    return text if len(text) <= 400 else text[:400] + " ..."


# -- the whole run ---------------------------------------------------------------------------


async def _demo(
    settings: Settings,
    options: DemoOptions,
    out: TextIO,
    stop: asyncio.Event,
    redfish: RedfishBmc | None = None,
) -> int:
    say: Callable[[str], None] = lambda line: print(line, file=out, flush=True)  # noqa: E731
    foundation_types()
    sock = bind(options.host, options.port, settings.port)
    port = sock.getsockname()[1]
    url = _url(options.host, port)
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            session.info["actor"] = "demo"
            prepared = await prepare(session, settings, options, redfish)
    except ContractorError as error:
        sock.close()
        raise DemoError(f"cannot set up the demo inventory: {error}") from None
    finally:
        await engine.dispose()
    for note in prepared.notes:
        say(note)

    app = create_app(settings.model_copy(update={"auto_migrate": False}))
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    agents: list[tuple[asyncio.Task[None], Journal, Client]] = []
    agents_stop = asyncio.Event()
    installing: asyncio.Task[None] | None = None
    transport = httpx.ASGITransport(app=app)
    journals = tempfile.TemporaryDirectory(prefix="contractor-demo-")
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise DemoError("the server stopped while starting")
            await asyncio.sleep(0.05)
        for name in SITES:
            wanted, module_options = agent_modules(
                redfish if name == next(iter(SITES)) else None,
                {"install_seconds": options.install_seconds},
            )
            config = Config(
                contractor=ContractorConfig(
                    url="http://contractor", token=prepared.agent_token, site=name
                ),
                agent=AgentConfig(wait=5, journal_dir=Path(journals.name) / name, shutdown_grace=2),
                modules=wanted,
                module_options=module_options,
            )
            modules = load_modules(
                {module: c.concurrency for module, c in wanted.items()}, config.module_options
            )
            journal = Journal(config.agent.journal_dir)
            journal.open()
            client = Client(config.contractor, transport=transport)
            agent = Agent(config, modules, client, journal, Masker(config.secrets()))
            agents.append((asyncio.create_task(agent.run(agents_stop)), journal, client))
        say(f"Contractor is serving {url} with a subcontractor for {', '.join(SITES)}")
        if redfish is not None:
            say(f"Redfish BMC (sushy-emulator) for the RedFish foundation: https://{redfish.label}")
            installing = asyncio.create_task(installer(redfish, options.install_seconds))
        earlier = sum(1 for item in prepared.tracked if item.job_id == 0)
        building_now = len(prepared.tracked) - earlier
        also = f" ({earlier} built earlier)" if earlier else ""
        say(f"building {building_now} targets{also} (Ctrl-C to stop):")
        progress = Progress(out, prepared.tracked)
        sessions = app_state(app).sessions
        ids = [item.job_id for item in prepared.tracked if item.job_id]
        while not stop.is_set():
            progress.update(await _job_rows(sessions, ids))
            if progress.finished:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        if stop.is_set():
            say("interrupted; stopping")
            return 130
        failed = progress.failed
        for item in failed:
            say(f"job {item.job_id} ({item.label}) is {item.shown}: {item.message}")
        for item in progress.tracked:
            if item.state == JobState.WAITING:
                say(f"job {item.job_id} ({item.label}) is still {item.message or 'waiting'}")
        built = sum(1 for item in progress.tracked if item.state in (JobState.DONE, "built"))
        say(f"{built} of {len(progress.tracked)} targets built")
        async with httpx.AsyncClient(transport=transport, base_url=url) as http:
            say("\nExample GraphQL queries (POST them to /graphql), with their answers now:")
            for question, query in example_queries(prepared):
                answer = await _ask(http, prepared.api_token, query)
                say(f"\n# {question}\n{query}\n=> {answer}")
        say(f"\nConsole: {url}/ui/#token={prepared.api_token}  (the operator's console)")
        say(f"Explorer: {url}/graphql  (paste the token below into its Token field)")
        say(f"API token for user {USER!r}: {prepared.api_token}")
        say(
            f"e.g. curl -s -H 'Authorization: Bearer {prepared.api_token}' "
            "-H 'Content-Type: application/json' -d '{\"query\": \"{ foundationCounts(groupBy: "
            f"[STATE]) {{ state count }} }}\"}}' {url}/graphql"
        )
        say(f"DNS: contractor dns export --out DIR writes the zone {DOMAIN} and its reverse zones")
        if failed:
            if options.exit_when_built:
                raise DemoError(
                    f"{len(failed)} job(s) did not finish: "
                    + "; ".join(f"job {i.job_id} ({i.label}): {i.message}" for i in failed)
                )
            say("some jobs failed: look at them in the explorer (query jobs, resetJob)")
        if options.exit_when_built:
            return 0
        say("\nserving until interrupted (Ctrl-C)")
        await stop.wait()
        say("stopping")
        return 0
    finally:
        if installing is not None:
            installing.cancel()
        agents_stop.set()
        for task, _, _ in agents:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
        for _, journal, client in agents:
            await client.aclose()
            journal.close()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 15)
        journals.cleanup()


def run_demo(settings: Settings, options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo (see the module docstring); the exit status. DemoError says why it
    cannot go on."""
    settings = settings.model_copy(update=FAST)
    try:
        migrate.upgrade(settings)
    except Exception as error:  # any failure to reach or migrate the database
        raise DemoError(f"cannot prepare the database {settings.database_url}: {error}") from None

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        with contextlib.ExitStack() as emulators:
            redfish = None
            if "redfish" in options.with_types:
                try:
                    redfish = start_emulator(emulators)
                except EmulatorError as error:
                    raise DemoError(str(error)) from None
            return await _demo(settings, options, out, stop, redfish)

    return asyncio.run(main())
