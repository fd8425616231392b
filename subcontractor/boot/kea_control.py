"""Talking to a running kea-dhcp4, and reading its leases without it.

``KeaControl`` sends one command over kea-dhcp4's unix control socket: a JSON object
``{"command": ..., "arguments": ...}``, answered with ``{"result": ..., "text": ...,
"arguments": ...}``, after which Kea closes the connection. Result 0 is success, 3 "found
nothing" (an empty lease list); anything else raises ``KeaCommandError`` with Kea's own
text. A socket that cannot be reached, or an answer that is not Kea's, raises
``KeaControlError`` naming the socket.

``read_memfile`` reads Kea's memfile lease database, a CSV file Kea only appends to: a
later line for an address replaces the one before, a line with valid lifetime 0 removes
it. The lease file cleanup (``kea-lfc``, every ``lfc-interval``) moves older lines to
``<file>.completed`` (or, while it runs, ``<file>.2`` and ``<file>.1``); they are read
first, as Kea itself reads them at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from subcontractor.boot.backend import Lease

__all__ = [
    "KeaCommandError",
    "KeaControl",
    "KeaControlError",
    "KeaError",
    "memfile_leases",
    "read_memfile",
]

ANSWER_LIMIT = 64 * 2**20  # a lease list of every lease of a large site fits
STATE_DECLINED = 1  # a lease the client declined (the address is in use): not a lease held


class KeaError(Exception):
    """Something the Kea backend could not do; the message says what and where."""


class KeaControlError(KeaError):
    """kea-dhcp4's control socket could not be reached or answered something else."""


class KeaCommandError(KeaError):
    """kea-dhcp4 answered a command with an error (``result`` and Kea's ``text``)."""

    def __init__(self, command: str, result: int, text: str) -> None:
        super().__init__(f"kea-dhcp4 refused {command!r} (result {result}): {text}")
        self.command = command
        self.result = result
        self.text = text


class KeaControl:
    """Commands to the kea-dhcp4 listening on ``socket_path``."""

    def __init__(self, socket_path: Path, *, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def command(
        self, command: str, arguments: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Kea's answer to ``command``; its ``arguments`` (``{}`` when it has none). Result 3
        ("empty") is an answer, not an error."""
        request: dict[str, Any] = {"command": command}
        if arguments is not None:
            request["arguments"] = arguments
        where = f"kea-dhcp4's control socket {self.socket_path}"
        try:
            raw = await asyncio.wait_for(self._exchange(json.dumps(request)), self.timeout)
        except TimeoutError:
            raise KeaControlError(
                f"{where}: no answer to {command!r} within {self.timeout:g}s"
            ) from None
        except FileNotFoundError:
            raise KeaControlError(
                f"{where} does not exist (is kea-dhcp4 running with this configuration?)"
            ) from None
        except ConnectionRefusedError:
            raise KeaControlError(
                f"{where}: connection refused (kea-dhcp4 is not listening there)"
            ) from None
        except OSError as error:
            raise KeaControlError(f"{where}: {error.strerror or error}") from None
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeaControlError(
                f"{where}: the answer to {command!r} is not JSON: {raw[:200]!r}"
            ) from None
        # Kea answers a list of one answer per server when asked through its agent
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), int):
            raise KeaControlError(f"{where}: the answer to {command!r} has no result")
        result: int = answer["result"]
        if result not in (0, 3):
            raise KeaCommandError(command, result, str(answer.get("text", "")))
        arguments_out = answer.get("arguments")
        return arguments_out if isinstance(arguments_out, dict) else {}

    async def _exchange(self, request: str) -> bytes:
        reader, writer = await asyncio.open_unix_connection(
            str(self.socket_path), limit=ANSWER_LIMIT
        )
        try:
            writer.write(request.encode())
            await writer.drain()
            chunks: list[bytes] = []
            size = 0
            while chunk := await reader.read(2**16):
                size += len(chunk)
                if size > ANSWER_LIMIT:
                    raise KeaControlError(
                        f"kea-dhcp4's control socket {self.socket_path}: an answer over "
                        f"{ANSWER_LIMIT} bytes"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def leases(self) -> list[Lease]:
        """Every IPv4 lease Kea holds (``lease4-get-all``: the lease commands hook)."""
        answer = await self.command("lease4-get-all")
        raw = answer.get("leases", [])
        return list(_answered_leases(raw if isinstance(raw, list) else []))


def _answered_leases(raw: Iterable[object]) -> Iterable[Lease]:
    for lease in raw:
        if not isinstance(lease, dict) or lease.get("state") == STATE_DECLINED:
            continue
        mac, address = lease.get("hw-address"), lease.get("ip-address")
        cltt, valid = lease.get("cltt"), lease.get("valid-lft")
        if not isinstance(mac, str) or not mac or not isinstance(address, str):
            continue
        yield Lease(
            mac=mac.lower(),
            address=address,
            expires=_expires(cltt, valid),
            hostname=str(lease.get("hostname") or "") or None,
        )


def _expires(cltt: object, valid: object) -> dt.datetime | None:
    if not isinstance(cltt, int) or not isinstance(valid, int):
        return None
    if valid >= 0xFFFFFFFF:  # Kea's infinite lifetime
        return None
    return dt.datetime.fromtimestamp(cltt + valid, dt.UTC)


def _unescape(text: str) -> str:
    # Kea writes a comma inside a field as "&#x2c"
    return text.replace("&#x2c", ",")


def memfile_leases(lines: Iterable[str]) -> list[Lease]:
    """The leases held after the memfile lines ``lines`` (a header line names the
    columns; a line with valid lifetime 0 removes its address's lease)."""
    held: dict[str, Lease] = {}
    columns: list[str] = []
    for line in lines:
        fields = line.rstrip("\r\n").split(",")
        if fields[0] == "address":
            columns = fields
            continue
        if not columns or len(fields) < len(columns):
            continue
        row = dict(zip(columns, fields, strict=False))
        try:
            address = row["address"]
            valid = int(row["valid_lifetime"])
            expire = int(row["expire"])
            state = int(row.get("state") or 0)
        except (KeyError, ValueError):
            continue  # a damaged line, as Kea's own loader skips it
        if valid == 0:
            held.pop(address, None)
            continue
        mac = row.get("hwaddr", "").lower()
        if state == STATE_DECLINED or not mac:
            held.pop(address, None)
            continue
        held[address] = Lease(
            mac=mac,
            address=address,
            expires=None if valid >= 0xFFFFFFFF else dt.datetime.fromtimestamp(expire, dt.UTC),
            hostname=_unescape(row.get("hostname", "")) or None,
        )
    return list(held.values())


def read_memfile(path: Path) -> list[Lease]:
    """The leases in Kea's memfile ``path`` and the files its cleanup leaves beside it
    (none while there is no file yet)."""
    completed = path.with_name(path.name + ".completed")
    earlier = (
        [completed] if completed.exists() else [path.with_name(path.name + s) for s in (".2", ".1")]
    )
    lines: list[str] = []
    for part in (*earlier, path):
        try:
            lines.extend(part.read_text(encoding="utf-8", errors="replace").splitlines())
        except FileNotFoundError:
            continue
    return memfile_leases(lines)
