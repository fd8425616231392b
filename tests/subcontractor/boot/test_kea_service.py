"""The boot services with ``backend = "kea"``, end to end on a real network: Contractor (a
real app on loopback) → the follower → kea-dhcp4 on the namespace's bridge → busybox
udhcpc on ports of that bridge (198.18.0.0/16 only), and the leases back to Contractor,
seen in GraphQL. Skipped only where network namespaces cannot be made.

Kea runs inside the namespace (the service's backend made again with ``wrap``), not on the
host end of the veth as a subcontractor would run it: on this shared host, its port 67
socket and another test's dnsmasq on the host would keep each other from binding."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from subcontractor.boot.kea import KeaBackend
from subcontractor.boot.service import BootService
from tests.rigs.netns import Netns, network_namespace
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.kea_entries import network_in_198_18, short_directory
from tests.subcontractor.boot.served import (
    Served,
    boot_config,
    client_link,
    running_boot,
    udhcpc,
    until,
)

INTERFACE_LEASES = """query($locator: String!) { foundation(locator: $locator) {
  interfaces { mac leases { address state } } } }"""


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_tools("kea-dhcp4", "dnsmasq", "busybox")
    network = network_in_198_18()
    with network_namespace(str(network)) as ns:
        yield ns


async def test_the_boot_services_on_kea_lease_live_reservations_and_report_them(
    contractor: Served, netns: Netns, tmp_path: Path
) -> None:
    first = await contractor.add_machine(offset=10)
    with short_directory() as state:
        config = boot_config(
            contractor,
            netns,
            tmp_path,
            backend="kea",
            interfaces=[netns.bridge],
            http_listen=f"{netns.host_address}:0",
            state_dir=state,
            lease_report_seconds=0.5,
            wait=5,
        )

        def kea_in_netns(service: BootService) -> KeaBackend:
            assert isinstance(service.backend, KeaBackend)  # made by make_backend("kea", ...)
            return KeaBackend(service.settings, wrap=netns.command())

        async with running_boot(config, backend=kea_in_netns) as service:
            backend = service.backend
            assert isinstance(backend, KeaBackend)
            await until("kea-dhcp4 answering", backend.kea.ready.is_set)
            link = client_link(netns, first.mac)
            output = await udhcpc(netns, link, backend.paths.log)
            assert f"lease of {first.address} obtained" in output, output

            # a reservation added in Contractor: live in the same kea-dhcp4, no lease dropped
            assert backend.kea.process is not None
            pid = backend.kea.process.pid
            second = await contractor.add_machine(offset=11)

            async def served_by_kea() -> bool:
                answer = await backend.control.command("config-get")
                hosts = answer["Dhcp4"]["subnet4"][0]["reservations"]
                return second.mac in {host["hw-address"] for host in hosts}

            await until("the new reservation in kea-dhcp4", served_by_kea)
            output = await udhcpc(netns, client_link(netns, second.mac), backend.paths.log)
            assert f"lease of {second.address} obtained" in output, output
            assert backend.kea.process.pid == pid
            assert backend.restarts == 0
            held = {(lease.mac, lease.address) for lease in await backend.leases()}
            assert {(first.mac, first.address), (second.mac, second.address)} <= held

            # reported to Contractor: NetworkInterface.leases
            async def reported() -> bool:
                data = await contractor.graphql(INTERFACE_LEASES, locator=second.locator)
                (interface,) = data["foundation"]["interfaces"]
                return bool(interface["leases"] == [{"address": second.address, "state": "ACTIVE"}])

            await until("the lease reported", reported)

            # kea-dhcp4 killed: started again, the leases and reservations still held
            os.kill(pid, signal.SIGKILL)
            await until(
                "kea-dhcp4 started again",
                lambda: backend.kea.ready.is_set() and backend.restarts == 1,
            )
            output = await udhcpc(netns, link, backend.paths.log)
            assert f"lease of {first.address} obtained" in output, output
        assert not backend.alive()
