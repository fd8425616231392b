"""Boot data benchmark: a site with 10,000 reservations served by `contractor serve` on
PostgreSQL to one agent long-polling the boot data API.

1. Snapshot: the agent's first snapshot in pages of 2,000 (the first refresh computes every
   entry), then a second one (entries current: read only).
2. Change-to-agent latency: one MAC changes in a transaction of this process (another
   process than the server, so the wake-up is the commit's NOTIFY); the time from its
   commit to the agent's answer holding it, SAMPLES times.
3. Changes per second: WRITERS concurrent writers each change MACs, one per transaction,
   CHANGES in all, while the agent keeps long-polling: commits per second, and how soon
   after the last commit the agent holds every change (the polls coalesce many commits).

4. Change-to-DHCP latency (as root: a network namespace): a real ``subcontractor`` with
   its boot services (dnsmasq on the namespace's veth) holds the site; an operator's
   GraphQL ``updateInterface`` gives a machine a new MAC (a new reservation), DHCP_SAMPLES
   times: the time from the mutation's answer (its commit) to dnsmasq's hosts file holding
   it, and to a DHCP client (busybox udhcpc, in a second namespace, with that MAC) holding
   the reserved address. The client starts when the hosts file is written; a DISCOVER that
   beats dnsmasq's reading of it is retried a second later (udhcpc's shortest wait).
5. With ``--vm``: the end-to-end VM tests (tests/e2e), which print the time from power-on
   to the machine's first HTTP request, and to the job done / the report.

    python bench/boot_bench.py                      # a throwaway PostgreSQL
    python bench/boot_bench.py --database-url URL   # an empty database you own
    python bench/boot_bench.py --reservations 2000 --changes 200
    python bench/boot_bench.py --no-dhcp            # without root: parts 1-3 only
    python bench/boot_bench.py --vm                 # and the VM tests' figures

Targets: change-to-agent under 1 s (p99) with 10,000 reservations; the snapshot under 5 s;
change-to-DHCP under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.db import create_engine, create_session_factory, transaction  # noqa: E402
from contractor.models import (  # noqa: E402
    BaseAddress,
    Foundation,
    RealNetworkInterface,
    Structure,
    utcnow,
)
from contractor.plugins import foundation_types  # noqa: E402
from contractor.plugins.manual import ManualFoundation  # noqa: E402
from contractor.services import auth, interfaces, network  # noqa: E402
from contractor.services import blueprint as bp_service  # noqa: E402
from contractor.services import site as site_service  # noqa: E402
from contractor.services import tasks as task_service  # noqa: E402
from contractor.settings import Settings  # noqa: E402
from tests.e2e.stack import append_boot_section, free_port_on  # noqa: E402
from tests.rigs.netns import Netns, free_network, network_namespace  # noqa: E402
from tests.serving import clean_env, contractor_serve  # noqa: E402
from tests.subcontractor.processes import subcontractor, write_config  # noqa: E402

BOOT = "/api/v1/subcontractor/boot"
SITE = "boot"


def mac_of(number: int) -> str:
    return f"52:54:{number >> 24 & 255:02x}:{number >> 16 & 255:02x}:{number >> 8 & 255:02x}:" + (
        f"{number & 255:02x}"
    )


FIRST_OFFSET = 10  # machine i has offset FIRST_OFFSET + i - 1 (.1 and .2: the veth ends)


async def populate(
    settings: Settings, count: int, subnet: str = "10.128.0.0/16", spare: int = 0
) -> tuple[str, str, list[int], list[int]]:
    """The site, ``count`` machines with a provisioning MAC and an address of ``subnet``
    (bulk-inserted: the services' per-row checks would dominate the set-up) and ``spare``
    more with an address but no MAC yet (no reservation), a boot token and an operator's
    API token; the interface ids of each kind (machine i: interface, foundation ``n<i>``
    and structure ``h<i>`` ids i)."""
    foundation_types()
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            site = await site_service.create_site(
                session, name=SITE, config_values={"dns_servers": ["10.0.0.53"]}
            )
            block = await network.create_address_block(
                session, site=site, name="prov", subnet=subnet, gateway_offset=1
            )
            fbp = await bp_service.create_foundation_blueprint(
                session, name="fbp", foundation_types=["manual"]
            )
            sbp = await bp_service.create_structure_blueprint(
                session, name="sbp", foundation_blueprints=[fbp]
            )
            now = utcnow()
            stamps = {"created": now, "updated": now}
            ids = range(1, count + spare + 1)
            await session.execute(
                insert(Foundation.__table__),
                [
                    {"id": i, "locator": f"n{i}", "type": "manual", "site_id": site.id}
                    | {"blueprint_id": fbp.id, **stamps}
                    for i in ids
                ],
            )
            await session.execute(insert(ManualFoundation.__table__), [{"id": i} for i in ids])
            await session.execute(
                insert(RealNetworkInterface.__table__),
                [
                    {"id": i, "foundation_id": i, "name": "eth0", "physical_location": "eth0"}
                    | {"mac": mac_of(i) if i <= count else None, "is_provisioning": True}
                    | stamps
                    for i in ids
                ],
            )
            await session.execute(
                insert(Structure.__table__),
                [
                    {"id": i, "hostname": f"h{i}", "site_id": site.id, "blueprint_id": sbp.id}
                    | {"foundation_id": i, "config_uuid": str(uuid.uuid4()), "config_values": {}}
                    | stamps
                    for i in ids
                ],
            )
            await session.execute(
                insert(BaseAddress.__table__),
                [
                    {"kind": "address", "address_block_id": block.id}
                    | {"offset": FIRST_OFFSET + i - 1}
                    | {"structure_id": i, "interface_name": "eth0", "alias_index": 0}
                    | {"is_primary": True, **stamps}
                    for i in ids
                ],
            )
            token = await task_service.create_subcontractor_token(
                session, name="bench", sites=[SITE], modules=["boot"]
            )
            operator = await auth.create_token(
                session,
                user=await auth.create_user(session, username="bench-operator", role="operator"),
            )
            interface_ids = list(
                (await session.execute(select(RealNetworkInterface.id))).scalars().all()
            )
        return token.text, operator.text, interface_ids[:count], interface_ids[count:]
    finally:
        await engine.dispose()


class Agent:
    """What a boot service keeps: the entries by id, and the version they are at."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.entries: dict[str, dict[str, Any]] = {}
        self.version = 0

    async def snapshot(self) -> int:
        body: dict[str, Any] = {"site": SITE, "limit": 2000}
        pages = 0
        self.entries.clear()
        while True:
            answer = (await self.http.post(BOOT, json=body)).json()
            pages += 1
            self._apply(answer)
            if answer["cursor"] is None:
                return pages
            body = {"site": SITE, "cursor": answer["cursor"], "limit": 2000}

    async def changes(self, wait: float) -> dict[str, Any]:
        body: dict[str, Any] = {"site": SITE, "since": self.version, "wait": wait}
        while True:
            answer = (await self.http.post(BOOT, json=body)).json()
            self._apply(answer)
            if answer["cursor"] is None:
                return answer
            body = {"site": SITE, "cursor": answer["cursor"]}

    def _apply(self, answer: dict[str, Any]) -> None:
        for entry in answer["reservations"] + answer["pools"]:
            self.entries[entry["id"]] = entry
        for key in answer["removed"]:
            self.entries.pop(key, None)
        if answer["cursor"] is None or answer["snapshot"]:
            self.version = answer["version"]

    def macs(self) -> set[str]:
        return {e["mac"] for e in self.entries.values() if "mac" in e}


async def set_mac(sessions: Any, interface_id: int, mac: str) -> float:
    async with transaction(sessions) as session:
        row = await session.get_one(RealNetworkInterface, interface_id)
        await interfaces.update_interface(session, row, mac=mac)
    return time.monotonic()


async def measure(base: str, url: str, token: str, ids: list[int], args: Any) -> None:
    engine = create_engine(Settings(database_url=url))
    writers = create_session_factory(engine, writes=True)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            agent = Agent(http)
            started = time.monotonic()
            pages = await agent.snapshot()
            cold = time.monotonic() - started
            started = time.monotonic()
            await agent.snapshot()
            warm = time.monotonic() - started
            print(
                f"snapshot of {len(agent.entries)} entries in {pages} pages: "
                f"first {cold:.2f} s (computes every entry), again {warm:.2f} s"
            )

            latencies = []
            for sample in range(args.samples):
                poll = asyncio.create_task(agent.changes(wait=30))
                await asyncio.sleep(0.2)
                mac = mac_of(0x7F000000 + sample)
                committed = await set_mac(writers, ids[sample % len(ids)], mac)
                await poll
                while mac not in agent.macs():  # (a poll answered just before the commit)
                    await agent.changes(wait=30)
                latencies.append(time.monotonic() - committed)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))]
            print(
                f"change-to-agent latency over {args.samples} changes: "
                f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
            )

            wanted = {mac_of(0x7E000000 + n) for n in range(args.changes)}
            done = asyncio.Event()

            async def follow() -> int:
                polls = 0
                while not (wanted <= agent.macs() and done.is_set()):
                    await agent.changes(wait=2)
                    polls += 1
                return polls

            async def write(offset: int) -> None:
                for n in range(offset, args.changes, args.writers):
                    await set_mac(writers, ids[(n * 7919) % len(ids)], mac_of(0x7E000000 + n))

            following = asyncio.create_task(follow())
            started = time.monotonic()
            await asyncio.gather(*(write(w) for w in range(args.writers)))
            written = time.monotonic()
            done.set()
            polls = await following
            seen = time.monotonic()
            print(
                f"{args.changes} reservation changes by {args.writers} writers: "
                f"{args.changes / (written - started):.0f} commits/s; the agent held them all "
                f"{(seen - written) * 1000:.0f} ms after the last commit "
                f"({args.changes / (seen - started):.0f} changes/s end to end, {polls} polls)"
            )
    finally:
        await engine.dispose()


UPDATE_INTERFACE = """mutation ($locator: String!, $mac: String!) {
  updateInterface(locator: $locator, physicalLocation: "eth0", mac: $mac) {
    __typename ... on Error { message }
  }
}"""


@contextlib.contextmanager
def dhcp_client(ns: Netns) -> Iterator[tuple[str, str]]:
    """A second namespace joined to ``ns``'s bridge by a veth: its name and its link."""
    tag = secrets.token_hex(3)
    name, link, peer = f"ctr-client-{tag}", f"cv-{tag}", f"cp-{tag}"

    def ip(*arguments: str) -> None:
        subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=30)

    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "add", link, "type", "veth", "peer", "name", peer, "netns", ns.name)
        ip("-n", ns.name, "link", "set", peer, "master", ns.bridge, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name, link
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * len(values)))]
    return (
        f"p50 {statistics.median(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {values[-1] * 1000:.0f} ms"
    )


def until_file_holds(path: Path, text: str, seconds: float) -> float:
    """Poll (every 2 ms) until ``path`` holds ``text``; when it did (time.monotonic())."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if text in path.read_text():
                return time.monotonic()
        time.sleep(0.002)
    raise SystemExit(f"dnsmasq's hosts file {path} never held {text} in {seconds} s")


def dhcp_latency(
    base: str, operator: str, ids: list[int], spare: list[int], ns: Netns, hosts: Path
) -> None:
    """Part 4 (the module docstring): the subcontractor runs; GraphQL changes, DHCP leases:
    new reservations (a MAC on a machine that had none), then changed ones (a new MAC)."""
    started = time.monotonic()
    while len(list(hosts.glob("*.conf"))) < len(ids):
        if time.monotonic() - started > 300:
            raise SystemExit(f"dnsmasq's hosts directory {hosts} never held every reservation")
        time.sleep(0.05)
    print(
        f"subcontractor start → dnsmasq's hosts directory holds all {len(ids)} reservations: "
        f"{time.monotonic() - started:.1f} s"
    )
    headers = {"Authorization": f"Bearer {operator}"}
    with (
        dhcp_client(ns) as (client, link),
        httpx.Client(base_url=base, headers=headers, timeout=60) as http,
    ):
        for what, numbers, start in (
            ("new reservations (a MAC where there was none)", spare, 0x7D000000),
            ("changed reservations (a new MAC: dnsmasq restarts)", ids[-len(spare) :], 0x7C000000),
        ):
            to_file: list[float] = []
            to_lease: list[float] = []
            retried = 0
            for sample, number in enumerate(numbers):
                mac = mac_of(start + sample)
                address = ns.network.network_address + FIRST_OFFSET + number - 1
                for change in (["down"], ["address", mac], ["up"]):
                    subprocess.run(["ip", "-n", client, "link", "set", link, *change], check=True)
                variables = {"locator": f"n{number}", "mac": mac}
                query = {"query": UPDATE_INTERFACE, "variables": variables}
                answer = http.post("/graphql", json=query)
                committed = time.monotonic()
                result = answer.json()["data"]["updateInterface"]
                if result["__typename"] != "NetworkInterface":
                    raise SystemExit(f"updateInterface refused: {result}")
                # reservation:<structure id> is hosts/r<id>.conf (subcontractor/boot/dnsmasq.py)
                to_file.append(until_file_holds(hosts / f"r{number}.conf", mac, 30) - committed)
                dhcp = subprocess.run(
                    ["ip", "netns", "exec", client, "busybox", "udhcpc", "-i", link,
                     "-n", "-q", "-f", "-t", "10", "-T", "1", "-s", "/bin/true"],
                    capture_output=True, text=True, timeout=60, check=False,
                )  # fmt: skip
                output = dhcp.stdout + dhcp.stderr
                if f"lease of {address} obtained" not in output:
                    raise SystemExit(f"the client did not get {address}:\n{output}")
                to_lease.append(time.monotonic() - committed)
                retried += output.count("broadcasting discover") > 1
            print(
                f"change → DHCP, {len(numbers)} {what} by GraphQL updateInterface, "
                f"{len(ids)} held: hosts file written {percentiles(to_file)}; the client "
                f"holds the address {percentiles(to_lease)} ({retried} needed a 2nd DISCOVER)"
            )


@contextlib.contextmanager
def boot_agent(base: str, token: str, ns: Netns, scratch: Path) -> Iterator[Path]:
    """A subcontractor with only its boot services, dnsmasq on the namespace's veth end;
    yields dnsmasq's hosts directory."""
    port = free_port_on(str(ns.host_address))
    config = write_config(
        scratch, url=base, token=token, site=SITE, modules={}, journal=scratch / "journal"
    )
    state = scratch / "boot"
    append_boot_section(
        config,
        {
            "enabled": True,
            "interfaces": [ns.host_if],
            "server_address": str(ns.host_address),
            "http_listen": f"{ns.host_address}:{port}",
            "state_dir": str(state),
        },
    )
    with subcontractor(config, scratch) as agent:
        try:
            yield state / "dnsmasq" / "hosts"
        except BaseException:
            print(agent.output()[-5000:])
            raise


def vm_figures(pg_url: str) -> None:
    """Part 5: the VM tests, printing their figures."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "tests/e2e/test_vm_boot.py"],
        cwd=ROOT, env={**os.environ, "CONTRACTOR_TEST_PG_URL": pg_url},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.startswith("[e2e ")]
    print("\n".join(lines) or run.stdout[-3000:])
    summary = run.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"VM tests: {summary[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--reservations", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--dhcp-samples", type=int, default=10)
    parser.add_argument("--no-dhcp", action="store_true", help="skip part 4 (needs root)")
    parser.add_argument("--vm", action="store_true", help="part 5: the VM tests' figures")
    args = parser.parse_args()
    if not args.no_dhcp and os.geteuid() != 0:
        parser.error("change-to-DHCP needs root (a network namespace): run as root or --no-dhcp")
    base_dir = None
    url = args.database_url
    if url is None:
        url, base_dir = harness.start_cluster()
    pg_url = url
    try:
        url = Settings(database_url=url).database_url
        migrate.upgrade(Settings(database_url=url))
        with contextlib.ExitStack() as stack:
            ns = (
                None
                if args.no_dhcp
                else stack.enter_context(network_namespace(str(free_network(18))))
            )
            subnet = "10.128.0.0/16" if ns is None else str(ns.network)
            spare = 0 if ns is None else args.dhcp_samples
            token, operator, ids, spares = asyncio.run(
                populate(Settings(database_url=url), args.reservations, subnet, spare)
            )
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="boot-bench-")))
            base = stack.enter_context(
                contractor_serve(clean_env(CONTRACTOR_DATABASE_URL=url), scratch)
            )
            asyncio.run(measure(base, url, token, ids, args))
            if ns is not None:
                hosts = stack.enter_context(boot_agent(base, token, ns, scratch))
                dhcp_latency(base, operator, ids, spares, ns, hosts)
        if args.vm:
            vm_figures(pg_url)
    finally:
        if base_dir:
            harness.stop_cluster(base_dir)


if __name__ == "__main__":
    main()
