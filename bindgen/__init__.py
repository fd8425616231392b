"""BIND zone files from plain data: pure functions, no database, no files.

Build a ``ZoneData`` (origin, ``SOA`` timers and mailbox, name servers, ``Record`` s) and
``render_zone(zone, serial)`` gives its text through dnspython, deterministic and sorted;
``check_zone`` lists what would make it invalid, ``content_hash`` says whether it changed
(serials excluded) and ``next_serial`` picks a serial that only grows. ``plan_reverse_zones``
works out the reverse zones (octet-aligned, RFC 2317 classless, IPv6 nibble) of a set of
address blocks, and ``render_named_conf`` the ``named.conf`` fragment that loads the zones.
"""

from bindgen.conf import render_named_conf
from bindgen.names import is_hostname, mailbox_to_rname
from bindgen.reverse import (
    IPAddress,
    IPNetwork,
    ReversePlan,
    ReverseZone,
    plan_reverse_zones,
    reverse_zone_name,
)
from bindgen.serial import next_serial, serial_gt
from bindgen.zone import (
    FORMAT_VERSION,
    RECORD_TYPES,
    SOA,
    Record,
    ZoneData,
    ZoneError,
    check_zone,
    content_hash,
    render_zone,
)

__all__ = [
    "FORMAT_VERSION",
    "RECORD_TYPES",
    "SOA",
    "IPAddress",
    "IPNetwork",
    "Record",
    "ReversePlan",
    "ReverseZone",
    "ZoneData",
    "ZoneError",
    "check_zone",
    "content_hash",
    "is_hostname",
    "mailbox_to_rname",
    "next_serial",
    "plan_reverse_zones",
    "render_named_conf",
    "render_zone",
    "reverse_zone_name",
    "serial_gt",
]
