"""The ``named.conf`` fragment that declares a set of primary zones."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

__all__ = ["notify_target", "render_named_conf", "transfer_element"]

_KEY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})")
_WORDS = ("any", "none", "localhost", "localnets")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def transfer_element(text: str) -> str:
    """One ``allow-transfer`` element as named.conf takes it: an address, a network without
    host bits, ``key <name>`` (a TSIG key the server's named.conf defines), ``any``,
    ``none``, ``localhost`` or ``localnets``, each optionally negated with ``!``. Raises
    ValueError naming what is wrong."""
    item = " ".join(text.split())
    negated = item.startswith("!")
    body = item.removeprefix("!").strip()
    prefix = "!" if negated else ""
    if body.lower() in _WORDS:
        return prefix + body.lower()
    if body.lower().startswith("key "):
        name = body[4:].strip().strip('"')
        if not _KEY_NAME.fullmatch(name):
            raise ValueError(f"allow-transfer {text!r}: key name {name!r} is not a key name")
        return f'{prefix}key "{name}"'
    try:
        network = ipaddress.ip_network(body, strict=True)
    except ValueError as error:
        raise ValueError(
            f"allow-transfer {text!r} must be an address, a network (no host bits), "
            f"'key <name>', 'any' or 'none': {error}"
        ) from None
    address_only = network.num_addresses == 1 and "/" not in body
    return prefix + (str(network.network_address) if address_only else str(network))


def notify_target(text: str) -> str:
    """One ``also-notify`` target: an address, optionally ``<address> port <n>``. Raises
    ValueError naming what is wrong."""
    parts = text.split()
    port: int | None = None
    if len(parts) == 3 and parts[1].lower() == "port" and parts[2].isdigit():
        port = int(parts[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"also-notify {text!r}: port {port} is not from 1 to 65535")
    elif len(parts) != 1:
        raise ValueError(f"also-notify {text!r} must be an address or '<address> port <n>'")
    try:
        address = ipaddress.ip_address(parts[0])
    except ValueError:
        raise ValueError(f"also-notify {text!r}: {parts[0]!r} is not an IP address") from None
    return str(address) if port is None else f"{address} port {port}"


def _list(option: str, items: Sequence[str]) -> str:
    return f" {option} {{ {' '.join(item + ';' for item in items)} }};" if items else ""


def render_named_conf(
    zones: Iterable[tuple[str, str]],
    *,
    header: str | None = None,
    allow_transfer: Sequence[str] = (),
    also_notify: Sequence[str] = (),
) -> str:
    """``zone "<origin>" { type primary; file "<path>"; };`` for each ``(origin, path)``,
    sorted by origin, for ``include`` from the server's own named.conf.

    ``allow_transfer`` (``transfer_element`` s) and ``also_notify`` (``notify_target`` s)
    go into every zone as given: the caller checks them with those functions."""
    options = _list("allow-transfer", allow_transfer) + _list("also-notify", also_notify)
    lines = [f"// {line}".rstrip() for line in (header or "").splitlines()]
    for origin, path in sorted(zones):
        name = origin.rstrip(".") + "."
        lines.append(f"zone {_quote(name)} {{ type primary; file {_quote(path)};{options} }};")
    return "\n".join(lines) + "\n"
