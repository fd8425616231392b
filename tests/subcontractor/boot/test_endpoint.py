"""The HTTP boot endpoint in front of a real Contractor app on loopback: iPXE's chain
URL answered by the reservation or discovery, the routes it forwards, 404 for anything
else, the body and rate bounds, upstream time-outs, files by ETag."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from subcontractor.boot.backend import BootData
from subcontractor.boot.endpoint import EndpointSettings, RateLimit, build_endpoint
from subcontractor.boot.follower import Follower
from subcontractor.client import Client
from subcontractor.config import ContractorConfig
from tests.serving import serving_in_thread
from tests.subcontractor.boot.served import Machine, Served


@asynccontextmanager
async def endpoint(
    contractor: ContractorConfig,
    tmp_path: Path,
    data: BootData | None = None,
    **more: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = EndpointSettings(
        site=contractor.site,
        files_dir=more.pop("files_dir", None),
        cache_dir=tmp_path / "cache",
        **more,
    )
    app = build_endpoint(settings, contractor, lambda: data)
    transport = httpx.ASGITransport(app=app, client=("198.18.7.50", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://boot") as http:
        try:
            yield http
        finally:
            await app.state.upstream.aclose()


async def held(served: Served) -> BootData:
    client = Client(served.contractor())
    try:
        return await Follower(client, served.site, Path("/nonexistent"), _ignore).snapshot()
    finally:
        await client.aclose()


async def _ignore(data: BootData) -> None:
    return None


@pytest.fixture
async def machine(served: Served) -> Machine:
    return await served.add_machine()


async def test_ipxe_for_a_reservation_answers_contractors_boot_decision(
    served: Served, machine: Machine, tmp_path: Path
) -> None:
    data = await held(served)
    async with (
        endpoint(served.contractor(), tmp_path, data) as http,
        httpx.AsyncClient() as direct_client,
    ):
        answer = await http.get("/ipxe", params={"mac": machine.mac.upper()})
        direct = await direct_client.get(f"{served.base}/boot/{machine.config_uuid}")
        assert answer.status_code == 200
        assert answer.text == direct.text
        assert answer.text.startswith("#!ipxe")
        assert f"structure '{machine.hostname}'" in answer.text


async def test_ipxe_for_an_unknown_mac_answers_the_discovery_script(
    served: Served, machine: Machine, tmp_path: Path
) -> None:
    data = await held(served)
    async with endpoint(served.contractor(), tmp_path, data) as http:
        answer = await http.get("/ipxe", params={"mac": "52:54:00:ee:ee:01"})
        assert answer.status_code == 200
        assert "52:54:00:ee:ee:01 is not known in site" in answer.text
        assert "kernel /files/discovery/vmlinuz" in answer.text
        bad = await http.get("/ipxe", params={"mac": "nonsense"})
        assert bad.status_code == 400
        assert "mac" in bad.text


async def test_boot_config_and_signal_are_forwarded(
    served: Served, machine: Machine, tmp_path: Path
) -> None:
    async with (
        endpoint(served.contractor(), tmp_path) as http,
        httpx.AsyncClient() as direct_client,
    ):
        boot = await http.get(f"/boot/{machine.config_uuid}")
        assert (
            boot.text == (await direct_client.get(f"{served.base}/boot/{machine.config_uuid}")).text
        )
        config = await http.get(f"/config/{machine.config_uuid}")
        assert config.status_code == 200
        assert config.json()["_hostname"] == machine.hostname
        script = await http.get(f"/config/{machine.config_uuid}/boot_script")
        direct = await direct_client.get(f"{served.base}/config/{machine.config_uuid}/boot_script")
        assert (script.status_code, script.text) == (direct.status_code, direct.text)
        unknown = await http.get("/boot/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404
        signal = await http.post(f"/signal/{machine.config_uuid}")
        direct = await direct_client.post(f"{served.base}/api/v1/signal/{machine.config_uuid}")
        assert signal.status_code == direct.status_code == 404  # no job waits: Contractor's own
        assert signal.json()["error"]["message"] == direct.json()["error"]["message"]


async def test_a_discovery_report_is_forwarded_with_the_site(
    served: Served, tmp_path: Path
) -> None:
    mac = "52:54:00:ee:ee:02"
    async with endpoint(served.contractor(), tmp_path) as http:
        answer = await http.post("/discovery", json={"mac": mac, "macs": [mac], "cpu_count": 2})
        assert answer.status_code == 201, answer.text
        assert answer.json()["matched"] is None
        bad = await http.post("/discovery", json={"mac": mac, "macs": [mac], "cpu_count": -1})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "report.cpu_count"
    data = await served.graphql(
        "query($mac: String) { discoveredHardware(mac: $mac) { nodes { facts } } }", mac=mac
    )
    (node,) = data["discoveredHardware"]["nodes"]
    assert node["facts"]["cpu_count"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/graphql"),
        ("POST", "/graphql"),
        ("POST", "/api/v1/subcontractor/poll"),
        ("POST", "/api/v1/subcontractor/boot"),
        ("GET", "/config/"),
        ("GET", "/config/foundation/web1"),
        ("GET", "/config/5b0c0000-1111-2222-3333-444455556666/secrets"),
        ("GET", "/boot/discovery%3Fsite%3Dother"),
        ("GET", "/boot/../graphql"),
        ("POST", "/boot/5b0c0000-1111-2222-3333-444455556666"),
        ("GET", "/ui/"),
        ("GET", "/metrics"),
        ("GET", "/files/../etc/passwd"),
        ("GET", "/api/v1/subcontractor/openapi.json"),
    ],
)
async def test_nothing_else_is_forwarded(
    served: Served, tmp_path: Path, method: str, path: str
) -> None:
    async with endpoint(served.contractor(), tmp_path) as http:
        answer = await http.request(method, path)
        assert answer.status_code in (404, 405), (path, answer.status_code, answer.text)


async def test_a_body_over_the_bound_is_refused(served: Served, tmp_path: Path) -> None:
    async with endpoint(served.contractor(), tmp_path, max_body_bytes=2048) as http:
        large = b'{"mac": "' + b"a" * 4096 + b'"}'
        answer = await http.post("/discovery", content=large)
        assert answer.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            for _ in range(8):
                yield b" " * 1024

        answer = await http.post("/discovery", content=chunks())
        assert answer.status_code == 413
        answer = await http.post("/signal/5b0c0000-1111-2222-3333-444455556666", content=chunks())
        assert answer.status_code == 413


async def test_a_client_over_its_rate_is_throttled(
    served: Served, machine: Machine, tmp_path: Path
) -> None:
    async with endpoint(served.contractor(), tmp_path, rate=0.01, burst=3) as http:
        codes = [(await http.get(f"/boot/{machine.config_uuid}")).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        answer = await http.get(f"/boot/{machine.config_uuid}")
        assert int(answer.headers["retry-after"]) >= 1


def test_the_rate_limit_refills_and_keeps_clients_apart() -> None:
    limit = RateLimit(rate=2.0, burst=2)
    assert [limit.take("a", 0.0) for _ in range(3)] == [0, 0, 0.5]
    assert limit.take("b", 0.0) == 0
    assert limit.take("a", 1.0) == 0  # refilled by two a second


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections, never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_contractor_slow_or_away_is_504_or_502(served: Served, tmp_path: Path) -> None:
    uuid = "5b0c0000-1111-2222-3333-444455556666"
    with silent_server() as base:
        slow = served.contractor().model_copy(update={"url": base})
        async with endpoint(slow, tmp_path, upstream_timeout=0.5) as http:
            assert (await http.get(f"/boot/{uuid}")).status_code == 504
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    away = served.contractor().model_copy(update={"url": closed})
    async with endpoint(away, tmp_path) as http:
        assert (await http.get(f"/boot/{uuid}")).status_code == 502


async def test_files_from_the_files_dir_first(served: Served, tmp_path: Path) -> None:
    files = tmp_path / "files"
    (files / "discovery").mkdir(parents=True)
    (files / "discovery" / "vmlinuz").write_bytes(b"kernel")
    async with endpoint(served.contractor(), tmp_path, files_dir=files) as http:
        answer = await http.get("/files/discovery/vmlinuz")
        assert (answer.status_code, answer.content) == (200, b"kernel")
        # not there, and Contractor has none: 404
        assert (await http.get("/files/discovery/initrd")).status_code == 404


async def test_files_from_contractor_are_kept_by_their_etag(tmp_path: Path) -> None:
    content = {"body": b"initrd-1"}
    asked: list[str | None] = []

    async def serve_file(request: Request) -> Response:
        etag = '"' + hashlib.sha256(content["body"]).hexdigest()[:16] + '"'
        asked.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(content["body"], headers={"ETag": etag})

    upstream = Starlette(routes=[Route("/files/{path:path}", serve_file)])
    with serving_in_thread(upstream) as base:
        contractor = ContractorConfig(url=base, token="sct_a.b", site="dc1")
        async with endpoint(contractor, tmp_path) as http:
            first = await http.get("/files/os/initrd")
            again = await http.get("/files/os/initrd")
            content["body"] = b"initrd-2"
            changed = await http.get("/files/os/initrd")
    assert (first.content, again.content, changed.content) == (
        b"initrd-1",
        b"initrd-1",
        b"initrd-2",
    )
    assert asked[0] is None
    assert asked[1] == first.headers["etag"]  # answered 304: from the copy kept
    assert len(list((tmp_path / "cache").glob("*.data"))) == 2  # kept by content
    await asyncio.sleep(0)
