"""RDATA that needs no parsing by dnspython: an A record of a canonical IPv4 address, a PTR
record whose target is a plain absolute name (most records of a big zone), printed and
ordered as dnspython's own objects are (``bindgen.zone`` renders with them)."""

from __future__ import annotations

import re

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_PTR = dns.rdatatype.PTR

# Names that need no escaping: parsed without dnspython's general tokenizer (much faster).
PLAIN_NAME = re.compile(r"[A-Za-z0-9_*-]+(?:\.[A-Za-z0-9_-]+)*\.?")

# An IPv4 address as dnspython prints one (no leading zeros): its A record needs no parsing.
_CANONICAL_V4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


class Plain:
    """The RDATA of an A record given as a canonical IPv4 address, or of a PTR record whose
    target is a plain absolute name (most records of a big zone): printed as
    dnspython's own object is and ordered as it (``real``, for the few record sets of
    several records), without dnspython's parsing, which was most of the time of rendering
    such a zone."""

    __slots__ = ("_origin", "_relative", "rdtype", "text")

    def __init__(
        self, rdtype: dns.rdatatype.RdataType, text: str, origin: dns.name.Name, relative: str
    ) -> None:
        self.rdtype = rdtype
        self.text = text  # as printed without relativizing
        self._origin = origin
        self._relative = relative  # as printed relative to ``origin``

    def to_text(
        self, origin: dns.name.Name | None = None, relativize: bool = True, **_: object
    ) -> str:
        if not relativize or origin is None:
            return self.text
        if origin is self._origin or origin == self._origin:
            return self._relative
        return plain_relative(self.text, origin)

    def real(self) -> dns.rdata.Rdata:
        """dnspython's own object: what several records of one type at one name are
        deduplicated and ordered as (by their canonical wire form)."""
        if self.rdtype == _A:
            return dns.rdtypes.IN.A.A(_IN, _A, self.text)  # type: ignore[no-untyped-call]
        return dns.rdtypes.ANY.PTR.PTR(_IN, _PTR, dns.name.from_text(self.text))  # type: ignore[no-untyped-call]


def real(rdata: dns.rdata.Rdata) -> dns.rdata.Rdata:
    return rdata.real() if isinstance(rdata, Plain) else rdata


def plain_relative(target: str, origin: dns.name.Name, apex: str | None = None) -> str:
    """A plain absolute name as dnspython prints it relative to ``origin`` (whose text is
    ``apex``, when known)."""
    apex = origin.to_text() if apex is None else apex
    lowered_apex = apex.lower()
    lowered = target.lower()
    if lowered == lowered_apex:
        return "@"
    if apex != "." and lowered.endswith("." + lowered_apex):
        return target[: -len(apex) - 1]
    return target


def plain(
    rdtype: dns.rdatatype.RdataType, data: str, origin: dns.name.Name, apex: str | None = None
) -> Plain | None:
    """``data`` as a ``Plain`` RDATA when it is one (else None: dnspython parses it);
    ``apex`` is the origin's text, when known."""
    if rdtype == _A:
        if _CANONICAL_V4.fullmatch(data) is None:
            return None
        return Plain(rdtype, data, origin, data)
    if rdtype != _PTR or not data.endswith(".") or ".." in data or len(data) > 254:
        return None
    if PLAIN_NAME.fullmatch(data) is None or "*" in data:
        return None
    if len(data) > 64 and any(len(label) > 63 for label in data.split(".")):
        return None
    return Plain(rdtype, data, origin, plain_relative(data, origin, apex))
