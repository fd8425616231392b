"""What an object is, as an event sees it: its type and name, the site and blueprint its event
carries, its payload (columns, secrets and binary columns left out), and which link rows
(blueprint parents, scripts, complex members, ...) count as changes of the object they
belong to."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import LargeBinary, inspect
from sqlalchemy.sql.schema import Column

from contractor.models import (
    PXE,
    AbstractNetworkInterface,
    AddressBlock,
    BaseAddress,
    BluePrint,
    BluePrintParent,
    BluePrintScript,
    Complex,
    ComplexMember,
    Dependency,
    DhcpPool,
    Foundation,
    FoundationBluePrint,
    Network,
    NetworkAddressBlock,
    RealNetworkInterface,
    Script,
    Site,
    Structure,
    StructureBluePrint,
    StructureFoundationBluePrint,
    Zone,
)
from contractor.models.directory import Entry
from contractor.models.offsets import Offset, json_exact
from contractor.secret_names import is_secret_name

__all__ = [
    "CREATED",
    "DELETED",
    "LINKS",
    "LINK_COLUMNS",
    "UPDATED",
    "Identity",
    "generic_identity",
    "identity_of",
    "scrub",
    "snapshot",
]


CREATED: Final = "created"
UPDATED: Final = "updated"
DELETED: Final = "deleted"


def scrub(value: Any) -> Any:
    """``value`` as JSON-ready data without any key that names a secret, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if not is_secret_name(str(k))}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


@dataclass
class Identity:
    object_type: str
    name: str
    site_id: int | None = None
    blueprint_id: int | None = None
    # (model, id) whose site and blueprint this object's event carries, resolved at commit
    owner: tuple[type[Any], int] | None = None


def identity_of(obj: Any) -> Identity | None:
    """How an inventory object appears in events; None for anything else."""
    match obj:
        case Site():
            return Identity("site", obj.name, site_id=obj.id)
        case FoundationBluePrint():
            return Identity("foundation_blueprint", obj.name, blueprint_id=obj.id)
        case StructureBluePrint():
            return Identity("structure_blueprint", obj.name, blueprint_id=obj.id)
        case Script():
            return Identity("script", obj.name)
        case PXE():
            return Identity("pxe", obj.name)
        case Foundation():
            return Identity("foundation", obj.locator, obj.site_id, obj.blueprint_id)
        case Structure():
            return Identity("structure", obj.hostname, obj.site_id, obj.blueprint_id)
        case Complex():
            return Identity("complex", obj.name, site_id=obj.site_id)
        case Dependency():
            structure = (Structure, obj.structure_id) if obj.structure_id is not None else None
            return Identity("dependency", str(obj.id), owner=structure)
        case Network():
            return Identity("network", obj.name, site_id=obj.site_id)
        case AddressBlock():
            return Identity("address_block", obj.name, site_id=obj.site_id)
        case BaseAddress():
            if obj.structure_id is not None:
                owner: tuple[type[Any], int] | None = (Structure, obj.structure_id)
            elif obj.address_block_id is not None:
                owner = (AddressBlock, obj.address_block_id)
            else:
                owner = None
            kind = {"address": "address"}.get(obj.kind, f"{obj.kind}_address")
            name = obj.interface_name or obj.reason or ""
            return Identity(kind, name, owner=owner)
        case DhcpPool():
            return Identity("dhcp_pool", str(obj.id), owner=(AddressBlock, obj.address_block_id))
        case RealNetworkInterface():
            return Identity("network_interface", obj.name, owner=(Foundation, obj.foundation_id))
        case AbstractNetworkInterface():
            return Identity("structure_interface", obj.name, owner=(Structure, obj.structure_id))
        case Zone():
            return Identity("zone", obj.name)
        case Entry():
            return Identity("zone_entry", obj.name)
    return None


def generic_identity(obj: Any) -> Identity:
    """For ``record_event`` on objects outside the inventory (jobs, ...)."""
    name = next(
        (
            str(getattr(obj, attr))
            for attr in ("name", "hostname", "locator", "target_description", "username")
            if getattr(obj, attr, None) is not None
        ),
        "",
    )
    return Identity(
        getattr(obj, "__tablename__", type(obj).__name__.lower()),
        name,
        site_id=getattr(obj, "site_id", None),
        blueprint_id=getattr(obj, "blueprint_id", None),
    )


# Link rows: a change to one is an update of the object it belongs to.
LINKS: Final[dict[Any, tuple[type[Any], str]]] = {
    BluePrintParent.__table__.c.child_id: (BluePrint, "parents"),
    StructureFoundationBluePrint.__table__.c.structure_blueprint_id: (
        BluePrint,
        "foundation_blueprints",
    ),
    BluePrintScript.__table__.c.blueprint_id: (BluePrint, "scripts"),
    ComplexMember.__table__.c.complex_id: (Complex, "members"),
    NetworkAddressBlock.__table__.c.network_id: (Network, "address_blocks"),
}
LINK_COLUMNS: Final[dict[Any, list[Column[Any]]]] = {}
for _column in LINKS:
    LINK_COLUMNS.setdefault(_column.table, []).append(_column)


def snapshot(obj: Any, *, loaded_only: bool = False) -> dict[str, Any]:
    """The object's columns (and its derived ``state``), secrets and binary columns left out."""
    state = inspect(obj)
    loaded = state.dict
    values: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        column = attr.columns[0]
        if isinstance(column.type, LargeBinary):
            continue
        if loaded_only and attr.key not in loaded:
            continue
        value = getattr(obj, attr.key)
        if isinstance(column.type, Offset) and value is not None:
            value = json_exact(value)  # exact for every reader of the payload
        values[attr.key] = value
    derived = getattr(type(obj), "state", None)
    if isinstance(derived, property):
        with contextlib.suppress(AttributeError):  # a state needing what is not loaded
            values["state"] = obj.state
    result: dict[str, Any] = scrub(values)
    return result
