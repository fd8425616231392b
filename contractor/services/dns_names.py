"""Names in DNS, without the database: the labels zones may take, the names the addresses
of a Structure get, and the RDATA of a zone entry.

Zone labels follow RFC 1035 as relaxed by RFC 1123 (a label may start with a digit) and
IDNA 2008 (RFC 5890/5891): letters, digits and inner ``-``, 1 to 63 characters; a label
with ``--`` in its third and fourth places is reserved unless it is a valid A-label
(``xn--…``). A U-label (``bücher``) is converted to its A-label (``xn--bcher-kva``) with the
``idna`` package (UTS #46 mapping, so ``Bücher`` is accepted too).
"""

from __future__ import annotations

import re
from typing import Any

import idna

from contractor.errors import InvalidInput
from contractor.models.directory import Entry

__all__ = [
    "MAX_NAME",
    "address_label",
    "check_zone_label",
    "entry_data",
    "interface_label",
    "txt_data",
]

MAX_NAME = 253  # the longest name in presentation form, without the trailing dot
_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_zone_label(value: Any, *, field: str = "name", top_level: bool = False) -> str:
    """One label of a zone's name, lower case, as an A-label; InvalidInput saying what is
    wrong otherwise. ``top_level``: the label is the whole name (a TLD may not be all
    digits, RFC 3696 §2, or it would read as a number)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("zone name must not be empty", field=field)
    if "." in value or "\u3002" in value:
        raise InvalidInput(
            f"zone name {value!r} must be one label: give the parent zone as parent "
            "(child zones are separate rows)",
            field=field,
        )
    label = value.lower()
    if not label.isascii():
        try:
            label = idna.encode(value, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise InvalidInput(
                f"zone name {value!r} is not a valid internationalised label: {error}",
                field=field,
            ) from None
    if len(label) > 63:
        raise InvalidInput(
            f"zone name {value!r} is {len(label)} characters long as a DNS label; "
            "a label has at most 63",
            field=field,
        )
    if not _LDH.fullmatch(label):
        raise InvalidInput(
            f"zone name {value!r} may only hold letters, digits and '-', and may neither "
            "start nor end with '-' (RFC 1035, RFC 1123)",
            field=field,
        )
    if label[2:4] == "--":
        if not label.startswith("xn--"):
            raise InvalidInput(
                f"zone name {value!r}: labels with '--' in the third and fourth places are "
                "reserved for encodings such as IDNA's 'xn--' (RFC 5891 §4.2.3.1)",
                field=field,
            )
        try:
            idna.decode(label)
        except (idna.IDNAError, UnicodeError) as error:
            raise InvalidInput(
                f"zone name {value!r} is not a valid IDNA A-label: {error}", field=field
            ) from None
    if top_level and label.isdigit():
        raise InvalidInput(
            f"top-level zone name {value!r} must not be all digits (RFC 3696 §2)", field=field
        )
    return label


# -- the names of a Structure's addresses ------------------------------------------------


def interface_label(interface_name: str) -> str:
    """An interface name as a DNS label: lower case, '_' becomes '-', no '-' at the ends
    (BIND refuses host names with '_')."""
    return interface_name.lower().replace("_", "-").strip("-") or "if"


def address_label(interface_name: str, alias_index: int | None) -> str:
    """``eth0`` for an interface's own address, ``eth0-2`` for its alias 2."""
    label = interface_label(interface_name)
    return f"{label}-{alias_index}" if alias_index else label


def txt_data(text: str) -> str:
    """TXT presentation data: quoted strings of at most 255 bytes, escaped."""
    raw = text.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    out = []
    for chunk in chunks:
        escaped = "".join(
            chr(b)
            if 32 <= b < 127 and b not in (34, 92)
            else ("\\" + chr(b) if b in (34, 92) else f"\\{b:03d}")
            for b in chunk
        )
        out.append(f'"{escaped}"')
    return " ".join(out)


def entry_data(entry: Entry) -> str:
    """The entry's RDATA in presentation format."""
    if entry.type == "TXT":
        return txt_data(entry.text or "")
    if entry.type == "MX":
        return f"{entry.priority} {entry.target}"
    if entry.type == "SRV":
        return f"{entry.priority} {entry.weight} {entry.port} {entry.target}"
    return entry.target or ""
