"""The ``named.conf`` fragment that declares a set of primary zones."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["render_named_conf"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_named_conf(zones: Iterable[tuple[str, str]], *, header: str | None = None) -> str:
    """``zone "<origin>" { type primary; file "<path>"; };`` for each ``(origin, path)``,
    sorted by origin, for ``include`` from the server's own named.conf."""
    lines = [f"// {line}".rstrip() for line in (header or "").splitlines()]
    for origin, path in sorted(zones):
        name = origin.rstrip(".") + "."
        lines.append(f"zone {_quote(name)} {{ type primary; file {_quote(path)}; }};")
    return "\n".join(lines) + "\n"
