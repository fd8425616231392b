"""BIND zone files from plain data: pure functions, no database, no files.

Build a ``ZoneData`` (origin, ``SOA`` timers and mailbox, name servers, ``Record`` s) and
``render_zone(zone, serial)`` gives its text through dnspython, deterministic and sorted;
``check_zone`` lists what would make it invalid (``zone_problems``: each a ``Problem`` with
its code and record), ``content_hash`` says whether it changed (serials excluded) and
``next_serial`` picks a serial that only grows. ``plan_reverse_zones`` works out the reverse
zones (octet-aligned, RFC 2317 classless, IPv6 nibble) of a set of address blocks, and
``render_named_conf`` the ``named.conf`` fragment that loads the zones (with the
``allow-transfer`` and ``also-notify`` that ``transfer_element`` and ``notify_target`` check).
``zone_rrsets`` and ``diff_rrsets`` give the record sets a dynamic update changes.
"""

from bindgen.conf import notify_target, render_named_conf, transfer_element
from bindgen.names import is_hostname, mailbox_to_rname
from bindgen.reverse import (
    IPAddress,
    IPNetwork,
    ReversePlan,
    ReverseZone,
    plan_reverse_zones,
    reverse_zone_name,
)
from bindgen.rrsets import (
    Change,
    RRset,
    RRsetKey,
    RRsets,
    apply_changes,
    diff_rrsets,
    zone_rrsets,
    zone_rrsets_of,
)
from bindgen.serial import next_serial, serial_gt
from bindgen.zone import (
    FORMAT_VERSION,
    RECORD_TYPES,
    SOA,
    Problem,
    Record,
    ZoneData,
    ZoneError,
    check_zone,
    content_hash,
    render_zone,
    zone_problems,
)

__all__ = [
    "FORMAT_VERSION",
    "RECORD_TYPES",
    "SOA",
    "Change",
    "IPAddress",
    "IPNetwork",
    "Problem",
    "RRset",
    "RRsetKey",
    "RRsets",
    "Record",
    "ReversePlan",
    "ReverseZone",
    "ZoneData",
    "ZoneError",
    "apply_changes",
    "check_zone",
    "content_hash",
    "diff_rrsets",
    "is_hostname",
    "mailbox_to_rname",
    "next_serial",
    "notify_target",
    "plan_reverse_zones",
    "render_named_conf",
    "render_zone",
    "reverse_zone_name",
    "serial_gt",
    "transfer_element",
    "zone_problems",
    "zone_rrsets",
    "zone_rrsets_of",
]
