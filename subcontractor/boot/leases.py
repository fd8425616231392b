"""Leases as dnsmasq keeps them in its lease file, and their report to Contractor
(``POST /api/v1/subcontractor/leases``).

A dnsmasq lease file line is ``<expiry epoch> <mac> <address> <hostname|*> <client id|*>``
(expiry 0: never expires); IPv6 lines (after ``duid``) name no MAC and are skipped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from subcontractor.client import Client

__all__ = ["dnsmasq_leases", "read_dnsmasq_leases", "report_leases"]

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
REPORT_AT_MOST = 5000  # Contractor's bound on one report


def dnsmasq_leases(lines: Iterable[str], *, now: dt.datetime) -> list[dict[str, Any]]:
    """The IPv4 leases of dnsmasq lease file ``lines``, as the report names them; lines
    that are not leases (``duid``, IPv6, damaged) are skipped."""
    leases: list[dict[str, Any]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] == "duid":
            continue
        expiry, mac, address, hostname = fields[:4]
        mac = mac.lower()
        try:
            seconds = int(expiry)
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if not MAC.match(mac) or ip.version != 4:
            continue
        ends = None if seconds == 0 else dt.datetime.fromtimestamp(seconds, dt.UTC)
        leases.append(
            {
                "mac": mac,
                "address": str(ip),
                "hostname": "" if hostname == "*" else hostname[:253],
                "starts": None,
                "ends": None if ends is None else ends.isoformat(),
                "state": "active" if ends is None or ends > now else "expired",
            }
        )
    return leases


def read_dnsmasq_leases(path: Path, *, now: dt.datetime) -> list[dict[str, Any]]:
    """The leases in dnsmasq's lease file ``path`` (none while it does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return dnsmasq_leases(text.splitlines(), now=now)


async def report_leases(client: Client, site: str, leases: list[dict[str, Any]]) -> int:
    """Report ``leases`` of ``site`` to Contractor, in reports of at most the bound it
    takes; answers how many were new to it."""
    added = 0
    for start in range(0, len(leases), REPORT_AT_MOST):
        answer = await client.leases(site, leases[start : start + REPORT_AT_MOST])
        added += int(answer["added"])
    return added
