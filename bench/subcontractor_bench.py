"""Subcontractor benchmark: tasks per second through one agent, IPMI queries and AWS
operations per second.

1. `contractor serve` (its foreman stepping jobs) on PostgreSQL and one `subcontractor run`
   daemon serving the ``simulated`` module (no delays): JOBS simulated foundations each run a
   create job of 10 remote ``power_state`` steps. Reports tasks per second from the first job
   created to the last job done (poll, run, journal with fsync, result, next step).
2. The ``ipmi`` module in-process against OpenIPMI's ``ipmi_sim`` (one simulator per BMC on a
   loopback UDP port): power-state queries per second on one BMC (operations on a BMC are one
   at a time) and on several BMCs at once.
3. The ``aws`` module in-process against ``moto_server`` on a loopback port (the ``aws``
   extra): power-state operations per second on one instance, 4 at a time (each a
   DescribeInstances through the module: its parameter checks, worker thread, retry loop
   and answer checks), with boto3's own ``describe_instances`` in the same threads as the
   floor; and create+destroy cycles per second (launch, look-ups, terminate, wait).
4. The ``redfish`` module in-process against ``sushy-emulator --fake`` over HTTPS (the
   ``redfish`` extra; left out when it is not installed): power-state reads and boot-device
   changes (PATCH, then read back) per second on one BMC; the floor is the same GET of the
   system resource with httpx alone on one kept-alive client.

    python bench/subcontractor_bench.py                      # a throwaway PostgreSQL
    python bench/subcontractor_bench.py --database-url URL   # an empty database you own
    python bench/subcontractor_bench.py --jobs 200 --concurrency 50 --bmcs 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.foreman_bench import STEPS, populate  # noqa: E402
from bench.harness import Clock, Figure, Series, postgres  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.db import create_engine, create_session_factory, transaction  # noqa: E402
from contractor.models import Job  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.redfish_emulator import RedfishBmc, installed, sushy_emulator  # noqa: E402
from contractor.services import (  # noqa: E402
    building,
    jobs,
)
from contractor.settings import Settings  # noqa: E402
from subcontractor.module import load_modules  # noqa: E402
from tests.subcontractor.bmc import ipmi_sim  # noqa: E402
from tests.subcontractor.ec2 import KEY_ID, REGION, SECRET, ec2_client, moto_server  # noqa: E402


async def run_jobs(settings: Settings, count: int) -> float:
    """Create the jobs, wait until all are done; seconds taken."""
    engine = create_engine(settings)
    try:
        start = time.perf_counter()
        async with transaction(create_session_factory(engine)) as session:
            for n in range(count):
                foundation = await building.get_foundation(session, f"sim{n}")
                await jobs.create_job(
                    session, target=foundation, script_name="create", creator="bench"
                )
        query = select(func.count()).select_from(Job).where(Job.state == "done")
        deadline = start + 600
        while time.perf_counter() < deadline:
            async with create_session_factory(engine)() as session:
                if int((await session.execute(query)).scalar_one()) >= count:
                    return time.perf_counter() - start
            await asyncio.sleep(0.05)
        raise SystemExit("the jobs did not finish within 600 s")
    finally:
        await engine.dispose()


def agent_figures(url: str, count: int, concurrency: int, work: Path) -> float:
    settings = Settings(database_url=url, auto_migrate=False)
    foundation_types()
    migrate.upgrade(settings)
    token = asyncio.run(populate(settings, count))
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTRACTOR_", "SUBCON"))}
    env.update(PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1")
    (work / "token").write_text(token)
    config = work / "subcontractor.toml"
    config.write_text(
        f"""[contractor]
url = "http://127.0.0.1:{port}"
token_file = "{work / "token"}"
site = "bench"

[agent]
wait = 10
journal_dir = "{work / "journal"}"
log_level = "warning"

[modules.simulated]
concurrency = {concurrency}
"""
    )
    with ExitStack() as stack:
        server = subprocess.Popen(
            [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
            env=dict(env, CONTRACTOR_DATABASE_URL=url, CONTRACTOR_LOG_LEVEL="warning"),
        )
        stack.callback(server.wait, 20)
        stack.callback(server.terminate)
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        agent = subprocess.Popen(
            [sys.executable, "-m", "subcontractor", "run", "--config", str(config)], env=env
        )
        stack.callback(agent.wait, 30)
        stack.callback(agent.terminate)
        return asyncio.run(run_jobs(settings, count))


async def ipmi_queries(ports: list[int], seconds: float, concurrency: int) -> float:
    """Power-state queries per second, one stream per BMC, for ``seconds``."""
    module = load_modules({"ipmi": concurrency}, {})["ipmi"]
    power_state = module.functions()["power_state"]
    done = 0

    async def stream(port: int) -> None:
        nonlocal done
        connection = {"host": "127.0.0.1", "port": port, "username": "admin", "password": "pw"}
        await power_state({"connection": connection})  # log in outside the timing
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await power_state({"connection": connection})
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(stream(port) for port in ports))
    elapsed = time.perf_counter() - start
    await module.aclose()
    return done / elapsed


def has_moto() -> bool:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


AWS_STREAMS = 4


def aws_connection(url: str, **extra: str) -> dict[str, str]:
    return {
        "foundation": "bench",
        "region": REGION,
        "endpoint_url": url,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        **extra,
    }


async def aws_power_states(url: str, instance_id: str, seconds: float) -> float:
    """Power-state operations per second through the module, AWS_STREAMS at a time."""
    module = load_modules({"aws": AWS_STREAMS}, {})["aws"]
    power_state = module.functions()["power_state"]
    task = {"connection": aws_connection(url, instance_id=instance_id)}
    await power_state(task)  # the client is made outside the timing
    done = 0

    async def stream() -> None:
        nonlocal done
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await power_state(task)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(AWS_STREAMS)))
    return done / (time.perf_counter() - start)


async def boto_describes(url: str, instance_id: str, seconds: float) -> float:
    """The floor: boto3's describe_instances alone, in as many threads."""
    client = ec2_client(url)
    client.describe_instances(InstanceIds=[instance_id])
    done = 0

    async def stream() -> None:
        nonlocal done
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await asyncio.to_thread(client.describe_instances, InstanceIds=[instance_id])
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(AWS_STREAMS)))
    return done / (time.perf_counter() - start)


async def aws_cycles(url: str, count: int) -> float:
    """Create+destroy cycles per second through the module, one after the other."""
    module = load_modules({"aws": 2}, {"aws": {"confirm_interval": 0.05}})["aws"]
    functions = module.functions()
    start = time.perf_counter()
    for n in range(count):
        created = await functions["create"](
            {
                "connection": aws_connection(url),
                "client_token": f"bench-{n}-{time.monotonic_ns()}",
                "instance": {
                    "image_id": "ami-12c6146b",
                    "instance_type": "t3.micro",
                    "security_group_ids": [],
                    "tags": {},
                },
                "interface_names": ["eth0"],
            }
        )
        connection = aws_connection(url, instance_id=created["instance_id"])
        await functions["destroy"]({"connection": connection})
    return count / (time.perf_counter() - start)


def aws_figures(rounds: int, seconds: float, cycles: int) -> list[Figure]:
    power = Figure(
        f"aws power-state operations, {AWS_STREAMS} at a time",
        unit="/s",
        better="higher",
        note="moto_server",
    )
    power.floor = Series(
        f"boto3 describe_instances, {AWS_STREAMS} threads", note="the same calls, no module"
    )
    cycle = Figure("aws create+destroy cycles", unit="/s", better="higher", note="moto_server")
    with (
        tempfile.TemporaryDirectory(prefix="aws-bench-") as scratch,
        moto_server(Path(scratch)) as url,
    ):
        launched = ec2_client(url).run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        instance_id = launched["Instances"][0]["InstanceId"]
        for _ in range(rounds):  # figure and floor alternate, round by round
            with Clock() as clock:
                rate = asyncio.run(aws_power_states(url, instance_id, seconds))
            power.add(rate, clock.wall, clock.cpu)
            with Clock() as clock:
                rate = asyncio.run(boto_describes(url, instance_id, seconds))
            power.floor.add(rate, clock.wall, clock.cpu)
            with Clock() as clock:
                rate = asyncio.run(aws_cycles(url, cycles))
            cycle.add(rate, clock.wall, clock.cpu)
    return [power, cycle]


def redfish_connection(bmc: RedfishBmc) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": bmc.port,
        "username": bmc.username,
        "password": bmc.password,
        "ca_bundle": bmc.tls.ca,
    }


async def redfish_operations(bmc: RedfishBmc, function: str, seconds: float) -> float:
    """``function`` calls per second through the ``redfish`` module, one BMC, for ``seconds``
    (one operation at a time per BMC, as the module does them)."""
    module = load_modules({"redfish": 4}, {})["redfish"]
    call = module.functions()[function]
    parameters: dict[str, object] = {"connection": redfish_connection(bmc)}
    if function == "set_boot_device":
        parameters["device"] = "pxe"
    await call(parameters)  # the TLS handshake and the system's discovery outside the timing
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await call(parameters)
        done += 1
    elapsed = time.perf_counter() - start
    await module.aclose()
    return done / elapsed


async def redfish_floor(bmc: RedfishBmc, seconds: float) -> float:
    """The same GET of the system resource with httpx alone, per second."""
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{bmc.port}",
        verify=ssl.create_default_context(cadata=bmc.tls.ca),
        auth=(bmc.username, bmc.password),
        trust_env=False,
    ) as client:
        (await client.get(bmc.system)).raise_for_status()
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            (await client.get(bmc.system)).json()
            done += 1
        return done / (time.perf_counter() - start)


def redfish_figures(rounds: int, seconds: float) -> list[Figure]:
    """Redfish operations per second against one emulated BMC, with the floor alternating."""
    if not installed():
        print("redfish: sushy-tools not installed (the redfish extra); left out")
        return []
    floor = Series("GET of the system resource with httpx alone", note="same emulator")
    reads = Figure(
        "redfish power-state reads, 1 BMC",
        unit="/s",
        better="higher",
        note="sushy-emulator --fake over HTTPS",
        floor=floor,
    )
    boots = Figure("redfish set_boot_device (PATCH + read back), 1 BMC", unit="/s", better="higher")
    with (
        tempfile.TemporaryDirectory(prefix="redfish-bench-") as scratch,
        sushy_emulator(Path(scratch) / "bmc", power="On") as bmc,
    ):
        for _ in range(rounds):
            with Clock([bmc.pid]) as clock:
                rate = asyncio.run(redfish_operations(bmc, "power_state", seconds))
            reads.add(rate, clock.wall, clock.cpu)
            with Clock([bmc.pid]) as clock:
                rate = asyncio.run(redfish_floor(bmc, seconds))
            floor.add(rate, clock.wall, clock.cpu)
            with Clock([bmc.pid]) as clock:
                rate = asyncio.run(redfish_operations(bmc, "set_boot_device", seconds))
            boots.add(rate, clock.wall, clock.cpu)
    return [reads, boots]


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py: per round a fresh PostgreSQL database, JOBS jobs
    through `contractor serve` and one `subcontractor run`; IPMI queries per second."""
    count, seconds, bmcs = (4, 0.5, 2) if quick else (100, 5.0, 4)
    agent = Figure(
        "tasks/s through one agent",
        unit="/s",
        better="higher",
        note=f"{count} jobs x {STEPS} steps, simulated x50",
    )
    one = Figure("ipmi power-state queries, 1 BMC", unit="/s", better="higher", note="ipmi_sim")
    many = Figure(f"ipmi power-state queries, {bmcs} BMCs at once", unit="/s", better="higher")
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="subcontractor-bench-") as scratch:
            work = Path(scratch)
            with postgres() as url, Clock() as clock:
                elapsed = agent_figures(url, count, 50, work)
            agent.add(count * STEPS / elapsed, clock.wall, clock.cpu)
            with ExitStack() as stack:
                ports = [
                    stack.enter_context(ipmi_sim(work / f"bmc{n}", password="pw", power="on")).port
                    for n in range(bmcs)
                ]
                with Clock() as clock:
                    rate = asyncio.run(ipmi_queries(ports[:1], seconds, 4))
                one.add(rate, clock.wall, clock.cpu)
                with Clock() as clock:
                    rate = asyncio.run(ipmi_queries(ports, seconds, max(4, bmcs)))
                many.add(rate, clock.wall, clock.cpu)
    figures = [agent, one, many, *redfish_figures(rounds, seconds)]
    if has_moto():  # the aws extra
        figures += aws_figures(rounds, seconds, 3 if quick else 20)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: a throwaway one)"
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=50, help="simulated module limit")
    parser.add_argument("--bmcs", type=int, default=4, help="ipmi_sim instances at once")
    parser.add_argument("--seconds", type=float, default=5.0, help="per IPMI measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="subcontractor-bench-") as scratch:
        work = Path(scratch)
        base_dir = None
        url = args.database_url
        if url is None:
            url, base_dir = harness.start_cluster()
        try:
            seconds = agent_figures(url, args.jobs, args.concurrency, work)
        finally:
            if base_dir:
                harness.stop_cluster(base_dir)
        tasks = args.jobs * STEPS
        print(
            f"{args.jobs} jobs x {STEPS} remote steps through one subcontractor "
            f"(simulated x{args.concurrency}), contractor serve on PostgreSQL: {seconds:.1f} s"
        )
        print(f"tasks/s through one agent      {tasks / seconds:7.0f}")
        print(f"jobs/s                         {args.jobs / seconds:7.1f}")
        with ExitStack() as stack:
            ports = [
                stack.enter_context(ipmi_sim(work / f"bmc{n}", password="pw", power="on")).port
                for n in range(args.bmcs)
            ]
            one = asyncio.run(ipmi_queries(ports[:1], args.seconds, 4))
            many = asyncio.run(ipmi_queries(ports, args.seconds, max(4, args.bmcs)))
        print(f"ipmi power-state queries/s, 1 BMC          {one:7.0f}")
        print(f"ipmi power-state queries/s, {args.bmcs} BMCs at once  {many:7.0f}")
        for figure in redfish_figures(1, args.seconds):
            print(f"{figure.name + '/s':<44} {figure.samples[0]:7.0f}")
            if figure.floor is not None:
                print(f"  floor: {figure.floor.name + '/s':<36} {figure.floor.samples[0]:7.0f}")
    if has_moto():
        power, cycle = aws_figures(1, args.seconds, 20)
        assert power.floor is not None
        print(f"aws power-state operations/s ({AWS_STREAMS} at a time)  {power.samples[0]:7.0f}")
        print(f"  boto3 describe_instances/s (the floor)  {power.floor.samples[0]:7.0f}")
        print(f"aws create+destroy cycles/s                {cycle.samples[0]:7.1f}")


if __name__ == "__main__":
    main()
