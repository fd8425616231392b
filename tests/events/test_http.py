"""The webhook worker's HTTP client against real servers on loopback: keep-alive reuse,
receivers that close, chunked answers, a receiver closing a kept connection, timeouts,
refused connections and bad URLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from contractor.events.http import WebhookClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a kernel-chosen loopback port; yields its URL and a list that grows by one
    per accepted connection."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook?x=1", accepted
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of one request, or None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def keep_alive(answer: bytes, *, close_after: int | None = None) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while await read_request(reader) is not None:
            writer.write(answer)
            await writer.drain()
            served += 1
            if close_after is not None and served >= close_after:
                return  # closes the connection without saying so

    return handler


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


async def test_requests_reuse_one_kept_connection() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(NO_CONTENT)

    async with raw_server(handler) as (url, accepted), WebhookClient(timeout=5) as client:
        for index in range(3):
            answer = await client.post(url, f"body{index}".encode(), {"X-Test": "yes"})
            assert (answer.status, answer.text) == (204, "")
    assert len(accepted) == 1
    head, _body = seen[0]
    assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nX-Test: yes\r\n" in head
    assert b"\r\nHost: 127.0.0.1:" in head
    assert [b for _h, b in seen] == [b"body0", b"body1", b"body2"]


async def test_a_receiver_that_closes_each_time_and_chunked_answers() -> None:
    chunked = (
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nbroke\r\n6\r\nn, sir\r\n0\r\n\r\n"
    )
    closing = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfine"
    async with WebhookClient(timeout=5) as client:
        async with raw_server(keep_alive(chunked)) as (url, accepted):
            for _ in range(2):
                answer = await client.post(url, b"{}", {})
                assert (answer.status, answer.text) == (500, "broken, sir")
            assert len(accepted) == 1  # a chunked answer keeps the connection
        async with raw_server(keep_alive(closing, close_after=1)) as (url, accepted):
            for _ in range(2):
                assert (await client.post(url, b"{}", {})).text == "fine"
            assert len(accepted) == 2  # an HTTP/1.0 answer ends with the connection


async def test_a_kept_connection_closed_by_the_receiver_is_replaced() -> None:
    async with (
        raw_server(keep_alive(NO_CONTENT, close_after=1)) as (url, accepted),
        WebhookClient(timeout=5) as client,
    ):
        for _ in range(3):
            assert (await client.post(url, b"{}", {})).status == 204
            await asyncio.sleep(0.05)  # the receiver's close arrives while it is kept
    assert len(accepted) == 3

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(NO_CONTENT)
        await read_request(reader)  # the next one on this connection is dropped unanswered

    async with raw_server(one_answer) as (url, accepted), WebhookClient(timeout=5) as client:
        for _ in range(3):  # the 2nd and 3rd go out on a kept line, then once more
            assert (await client.post(url, b"{}", {})).status == 204
    assert len(accepted) == 3


async def test_timeouts_refusals_and_bad_urls() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with WebhookClient(timeout=0.3) as client:
        async with raw_server(silent) as (url, accepted):
            for _ in range(2):
                with pytest.raises(TimeoutError):
                    await client.post(url, b"{}", {})
            assert len(accepted) == 2  # a timed-out connection is never reused
        async with raw_server(silent) as (url, _accepted):
            pass  # the port is free again now
        with pytest.raises(OSError, match=r"Connect call failed|refused"):
            await client.post(url, b"{}", {})
        for bad in ("ftp://127.0.0.1/x", "http:///nohost"):
            with pytest.raises(ValueError, match="cannot post to"):
                await client.post(bad, b"{}", {})


async def test_a_huge_answer_is_cut_and_its_connection_dropped() -> None:
    big = b"x" * (200 * 1024)
    answer_bytes = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    async with (
        raw_server(keep_alive(answer_bytes)) as (url, accepted),
        WebhookClient(timeout=5) as client,
    ):
        for _ in range(2):
            answer = await client.post(url, b"{}", {})
            assert answer.status == 200
            assert len(answer.text) == 64 * 1024
    assert len(accepted) == 2


@asynccontextmanager
async def tls_server(handler: Handler, ca: object) -> AsyncIterator[str]:
    """An HTTPS server on a loopback port with a certificate for 127.0.0.1 from ``ca``."""
    import ssl

    import trustme

    assert isinstance(ca, trustme.CA)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/hook"
    finally:
        server.close()


async def test_https_with_a_trusted_certificate_and_basic_auth_from_the_url() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request[0])
            writer.write(NO_CONTENT)
        writer.close()

    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with tls_server(handler, ca) as url:
        with_user = url.replace("https://", "https://hook%40user:p%3Ass@")
        async with WebhookClient(timeout=5, ssl_context=trusting) as client:
            assert (await client.post(with_user, b"{}", {})).status == 204
            assert (await client.post(url, b"{}", {})).status == 204
    # "hook@user:p:ss", base64
    assert b"Authorization: Basic aG9va0B1c2VyOnA6c3M=" in seen[0]
    assert b"Authorization" not in seen[1]
    assert b"Host: 127.0.0.1:" in seen[0]


async def test_https_refuses_an_untrusted_certificate() -> None:
    import ssl

    import trustme

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tls_server(handler, trustme.CA()) as url, WebhookClient(timeout=5) as client:
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.post(url, b"{}", {})
