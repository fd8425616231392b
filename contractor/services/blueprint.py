"""BluePrints, their ordered parents, scripts by role, PXE records and fingerprints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, NotFound
from contractor.models import (
    PXE,
    BluePrint,
    BluePrintParent,
    BluePrintScript,
    DynamicAddress,
    Foundation,
    FoundationBluePrint,
    RealNetworkInterface,
    Script,
    Structure,
    StructureBluePrint,
    StructureFoundationBluePrint,
)
from contractor.plugins import canonical_foundation_type, find_foundation_type
from contractor.services.common import UNSET, added, get_by, refuse_if_used
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.validation import (
    NAME_RE,
    check_config_values,
    check_description,
    check_int,
    check_name,
    check_string_list,
)

_KINDS: dict[str, type[BluePrint]] = {
    "foundation": FoundationBluePrint,
    "structure": StructureBluePrint,
}


async def get_blueprint(session: AsyncSession, name: str) -> BluePrint:
    return await get_by(session, BluePrint, BluePrint.name, name, what="blueprint")


async def get_foundation_blueprint(session: AsyncSession, name: str) -> FoundationBluePrint:
    return await get_by(
        session, FoundationBluePrint, FoundationBluePrint.name, name, what="foundation blueprint"
    )


async def get_structure_blueprint(session: AsyncSession, name: str) -> StructureBluePrint:
    return await get_by(
        session, StructureBluePrint, StructureBluePrint.name, name, what="structure blueprint"
    )


async def _check_new_name(session: AsyncSession, name: str) -> None:
    check_name(name, field="name", what="blueprint name")
    if (await session.execute(select(BluePrint.id).where(BluePrint.name == name))).first():
        raise Conflict(f"blueprint {name!r} already exists", field="name")


def _fingerprint(
    *,
    min_cpu_count: int | None,
    min_memory_mb: int | None,
    required_pci_devices: Sequence[str],
    required_disks_gb: Sequence[int],
) -> dict[str, Any]:
    if min_cpu_count is not None:
        check_int(min_cpu_count, field="min_cpu_count", low=1, high=1 << 20)
    if min_memory_mb is not None:
        check_int(min_memory_mb, field="min_memory_mb", low=1, high=1 << 40)
    pci = check_string_list(list(required_pci_devices), field="required_pci_devices")
    for item in pci:
        if not _is_pci_id(item):
            raise InvalidInput(
                f"required_pci_devices entry {item!r} must be 'vendor:device' in hex, "
                "e.g. '8086:1572'",
                field="required_pci_devices",
            )
    disks = [check_int(d, field="required_disks_gb", low=1) for d in required_disks_gb]
    return {
        "min_cpu_count": min_cpu_count,
        "min_memory_mb": min_memory_mb,
        "required_pci_devices": [p.lower() for p in pci],
        "required_disks_gb": sorted(disks, reverse=True),
    }


def _is_pci_id(value: str) -> bool:
    vendor, _, device = value.partition(":")
    hexdigits = set("0123456789abcdefABCDEF")
    return len(vendor) == 4 and len(device) == 4 and set(vendor + device) <= hexdigits


async def create_foundation_blueprint(
    session: AsyncSession,
    *,
    name: str,
    description: str = "",
    parents: Sequence[FoundationBluePrint] = (),
    foundation_types: Sequence[str] = (),
    physical_interface_names: Sequence[str] = (),
    min_cpu_count: int | None = None,
    min_memory_mb: int | None = None,
    required_pci_devices: Sequence[str] = (),
    required_disks_gb: Sequence[int] = (),
    config_values: dict[str, Any] | None = None,
    keep_missing_types: bool = False,
) -> FoundationBluePrint:
    """``keep_missing_types``: names of types that are not installed are kept as written
    (the resource loader) instead of refused as typing errors (the API)."""
    await _check_new_name(session, name)
    blueprint = FoundationBluePrint(
        name=name,
        description=check_description(description),
        foundation_types=_check_foundation_types(
            foundation_types, keep=foundation_types if keep_missing_types else ()
        ),
        physical_interface_names=check_string_list(
            list(physical_interface_names), field="physical_interface_names", item_re=NAME_RE
        ),
        config_values=check_config_values(config_values or {}),
        **_fingerprint(
            min_cpu_count=min_cpu_count,
            min_memory_mb=min_memory_mb,
            required_pci_devices=required_pci_devices,
            required_disks_gb=required_disks_gb,
        ),
    )
    session.add(blueprint)
    await session.flush()
    await set_parents(session, blueprint, parents)
    return blueprint


def _check_foundation_types(names: Sequence[str], *, keep: Sequence[str] = ()) -> list[str]:
    """The names of installed types in their own spelling, however they are written; a type
    that is not installed is refused unless ``keep`` names it, and then kept as written (it
    takes effect once a plugin of that name is installed: names match without regard to
    case)."""
    checked = check_string_list(list(names), field="foundation_types")
    kept = {name.casefold() for name in keep}
    canonical = [
        item
        if find_foundation_type(item) is None and item.casefold() in kept
        else canonical_foundation_type(item, field="foundation_types")
        for item in checked
    ]
    if len({name.casefold() for name in canonical}) != len(canonical):
        raise InvalidInput("foundation_types lists an entry twice", field="foundation_types")
    return canonical


def missing_foundation_types(blueprint: FoundationBluePrint) -> list[str]:
    """The blueprint's foundation types that are not installed (kept by name)."""
    return [name for name in blueprint.foundation_types if find_foundation_type(name) is None]


async def create_structure_blueprint(
    session: AsyncSession,
    *,
    name: str,
    description: str = "",
    parents: Sequence[StructureBluePrint] = (),
    foundation_blueprints: Sequence[FoundationBluePrint] = (),
    config_values: dict[str, Any] | None = None,
) -> StructureBluePrint:
    await _check_new_name(session, name)
    blueprint = StructureBluePrint(
        name=name,
        description=check_description(description),
        config_values=check_config_values(config_values or {}),
    )
    session.add(blueprint)
    await session.flush()
    await set_parents(session, blueprint, parents)
    await set_foundation_blueprints(session, blueprint, foundation_blueprints)
    return blueprint


async def update_blueprint(
    session: AsyncSession,
    blueprint: BluePrint,
    *,
    description: str = UNSET,
    config_values: dict[str, Any] = UNSET,
    parents: Sequence[BluePrint] = UNSET,
    keep_missing_types: bool = False,
    **fields: Any,
) -> BluePrint:
    """Change the given fields. Foundation blueprints also take ``foundation_types``,
    ``physical_interface_names`` and the fingerprint fields; structure blueprints
    ``foundation_blueprints``."""
    if description is not UNSET:
        blueprint.description = check_description(description)
    if config_values is not UNSET:
        blueprint.config_values = check_config_values(config_values)
    if isinstance(blueprint, FoundationBluePrint):
        allowed = {
            "foundation_types",
            "physical_interface_names",
            "min_cpu_count",
            "min_memory_mb",
            "required_pci_devices",
            "required_disks_gb",
        }
    else:
        allowed = {"foundation_blueprints"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidInput(
            f"{blueprint.kind} blueprints have no field {unknown[0]!r}", field=unknown[0]
        )
    if isinstance(blueprint, FoundationBluePrint):
        if "foundation_types" in fields:
            # names already on the blueprint that are not installed may stay (a round trip)
            wanted = fields["foundation_types"]
            keep = wanted if keep_missing_types else blueprint.foundation_types
            blueprint.foundation_types = _check_foundation_types(wanted, keep=keep)
        if "physical_interface_names" in fields:
            blueprint.physical_interface_names = check_string_list(
                list(fields["physical_interface_names"]),
                field="physical_interface_names",
                item_re=NAME_RE,
            )
        fingerprint_fields = allowed - {"foundation_types", "physical_interface_names"}
        if fingerprint_fields & set(fields):
            current = {name: getattr(blueprint, name) for name in fingerprint_fields}
            current.update({k: v for k, v in fields.items() if k in fingerprint_fields})
            for key, value in _fingerprint(**current).items():
                setattr(blueprint, key, value)
    elif "foundation_blueprints" in fields:
        assert isinstance(blueprint, StructureBluePrint)
        await set_foundation_blueprints(session, blueprint, fields["foundation_blueprints"])
    if parents is not UNSET:
        await set_parents(session, blueprint, parents)
    return await config_changed(session, blueprint)


async def set_parents(
    session: AsyncSession, blueprint: BluePrint, parents: Sequence[BluePrint]
) -> None:
    """Replace the ordered parent list; parents are of the same kind and never descendants."""
    seen: set[int] = set()
    for parent in parents:
        if parent.kind != blueprint.kind:
            raise InvalidInput(
                f"{blueprint.kind} blueprint {blueprint.name!r} cannot have the "
                f"{parent.kind} blueprint {parent.name!r} as a parent",
                field="parents",
            )
        if parent.id in seen:
            raise InvalidInput(f"parent {parent.name!r} is listed twice", field="parents")
        seen.add(parent.id)
        if blueprint.id in await ancestor_ids(session, parent):
            raise InvalidInput(
                f"blueprint {parent.name!r} is {blueprint.name!r} itself or inherits from it; "
                "parents cannot form a cycle",
                field="parents",
            )
    await session.execute(delete(BluePrintParent).where(BluePrintParent.child_id == blueprint.id))
    session.add_all(
        BluePrintParent(child_id=blueprint.id, parent_id=parent.id, position=index)
        for index, parent in enumerate(parents)
    )
    config_sources_changed(session)
    await session.flush()


async def set_foundation_blueprints(
    session: AsyncSession,
    blueprint: StructureBluePrint,
    foundation_blueprints: Sequence[FoundationBluePrint],
) -> None:
    ids = [fb.id for fb in foundation_blueprints]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a foundation blueprint is listed twice", field="foundation_blueprints")
    for fb in foundation_blueprints:
        if not isinstance(fb, FoundationBluePrint):
            raise InvalidInput(
                f"{fb.name!r} is not a foundation blueprint", field="foundation_blueprints"
            )
    await session.execute(
        delete(StructureFoundationBluePrint).where(
            StructureFoundationBluePrint.structure_blueprint_id == blueprint.id
        )
    )
    session.add_all(
        StructureFoundationBluePrint(
            structure_blueprint_id=blueprint.id, foundation_blueprint_id=fb.id, position=index
        )
        for index, fb in enumerate(foundation_blueprints)
    )
    await session.flush()


async def parent_links(session: AsyncSession, child_ids: Sequence[int]) -> dict[int, list[int]]:
    """Ordered parent ids of each of ``child_ids`` (one query)."""
    rows = await session.execute(
        select(BluePrintParent.child_id, BluePrintParent.parent_id)
        .where(BluePrintParent.child_id.in_(child_ids))
        .order_by(BluePrintParent.child_id, BluePrintParent.position)
    )
    links: dict[int, list[int]] = {child: [] for child in child_ids}
    for child, parent in rows:
        links[child].append(parent)
    return links


async def _parent_graph(session: AsyncSession, blueprint: BluePrint) -> dict[int, list[int]]:
    """Every ancestor's ordered parent list, one query per generation."""
    graph: dict[int, list[int]] = {}
    frontier = [blueprint.id]
    while frontier:
        links = await parent_links(session, frontier)
        graph.update(links)
        frontier = sorted({p for parents in links.values() for p in parents} - graph.keys())
    return graph


async def ancestor_ids(session: AsyncSession, blueprint: BluePrint) -> set[int]:
    """The blueprint's id and all its ancestors' ids."""
    return set(await _parent_graph(session, blueprint))


async def blueprint_chain(session: AsyncSession, blueprint: BluePrint) -> list[BluePrint]:
    """Blueprints in config-layer order: for each parent in order its own chain, then the
    blueprint itself (post-order, depth-first). A shared ancestor appears once per path,
    as in the original."""
    graph = await _parent_graph(session, blueprint)
    rows = await session.execute(select(BluePrint).where(BluePrint.id.in_(graph)))
    by_id = {row.id: row for row in rows.scalars()}
    order: list[BluePrint] = []

    def visit(node: int) -> None:
        for parent in graph.get(node, []):
            visit(parent)
        order.append(by_id[node])

    visit(blueprint.id)
    return order


async def find_script(session: AsyncSession, blueprint: BluePrint, role: str) -> Script | None:
    """The script linked for ``role``: the blueprint's own, else its parents' depth-first."""
    graph = await _parent_graph(session, blueprint)
    rows = await session.execute(
        select(BluePrintScript.blueprint_id, Script)
        .join(Script, Script.id == BluePrintScript.script_id)
        .where(BluePrintScript.blueprint_id.in_(graph), BluePrintScript.name == role)
    )
    found: dict[int, Script] = {bp_id: script for bp_id, script in rows}
    stack = [blueprint.id]
    while stack:
        node = stack.pop()
        if node in found:
            return found[node]
        stack.extend(reversed(graph.get(node, [])))
    return None


async def combined_foundation_blueprint_ids(
    session: AsyncSession, blueprint: StructureBluePrint
) -> set[int]:
    """Foundation blueprints the structure blueprint or any ancestor accepts."""
    graph = await _parent_graph(session, blueprint)
    rows = await session.execute(
        select(StructureFoundationBluePrint.foundation_blueprint_id).where(
            StructureFoundationBluePrint.structure_blueprint_id.in_(graph)
        )
    )
    return set(rows.scalars())


async def delete_blueprint(session: AsyncSession, blueprint: BluePrint) -> None:
    users: list[Any] = [
        (
            "child blueprints",
            BluePrint.name,
            BluePrint.id.in_(
                select(BluePrintParent.child_id).where(BluePrintParent.parent_id == blueprint.id)
            ),
        ),
    ]
    if isinstance(blueprint, FoundationBluePrint):
        users += [
            ("foundations", Foundation.locator, Foundation.blueprint_id == blueprint.id),
            (
                "structure blueprints",
                BluePrint.name,
                BluePrint.id.in_(
                    select(StructureFoundationBluePrint.structure_blueprint_id).where(
                        StructureFoundationBluePrint.foundation_blueprint_id == blueprint.id
                    )
                ),
            ),
        ]
    else:
        users.append(("structures", Structure.hostname, Structure.blueprint_id == blueprint.id))
    await refuse_if_used(session, f"blueprint {blueprint.name!r}", users)
    await session.delete(blueprint)
    config_sources_changed(session)
    await session.flush()


# -- scripts ---------------------------------------------------------------------------


async def get_script(session: AsyncSession, name: str) -> Script:
    return await get_by(session, Script, Script.name, name, what="script")


async def create_script(
    session: AsyncSession, *, name: str, source: str, description: str = ""
) -> Script:
    check_name(name, field="name", what="script name")
    if not isinstance(source, str):
        raise InvalidInput("script source must be text", field="source")
    if (await session.execute(select(Script.id).where(Script.name == name))).first():
        raise Conflict(f"script {name!r} already exists", field="name")
    script = Script(name=name, description=check_description(description), source=source)
    return await added(session, script)


async def update_script(
    session: AsyncSession, script: Script, *, source: str = UNSET, description: str = UNSET
) -> Script:
    if source is not UNSET:
        if not isinstance(source, str):
            raise InvalidInput("script source must be text", field="source")
        script.source = source
    if description is not UNSET:
        script.description = check_description(description)
    await session.flush()
    return script


async def link_script(
    session: AsyncSession, *, blueprint: BluePrint, role: str, script: Script
) -> BluePrintScript:
    """Use ``script`` as the blueprint's ``role`` script, replacing any earlier one."""
    check_name(role, field="role", max_length=50, what="script role")
    existing = (
        await session.execute(
            select(BluePrintScript).where(
                BluePrintScript.blueprint_id == blueprint.id, BluePrintScript.name == role
            )
        )
    ).scalar_one_or_none()
    if existing is None:
        existing = BluePrintScript(blueprint_id=blueprint.id, name=role, script_id=script.id)
        session.add(existing)
    else:
        existing.script_id = script.id
    await session.flush()
    return existing


async def unlink_script(session: AsyncSession, *, blueprint: BluePrint, role: str) -> None:
    result = await session.execute(
        delete(BluePrintScript).where(
            BluePrintScript.blueprint_id == blueprint.id, BluePrintScript.name == role
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(
            f"blueprint {blueprint.name!r} has no {role!r} script of its own", field="role"
        )


async def script_roles(session: AsyncSession, blueprint: BluePrint) -> dict[str, str]:
    """The blueprint's own role → script name links (parents not included)."""
    rows = await session.execute(
        select(BluePrintScript.name, Script.name)
        .join(Script, Script.id == BluePrintScript.script_id)
        .where(BluePrintScript.blueprint_id == blueprint.id)
        .order_by(BluePrintScript.name)
    )
    return dict(rows.all())


async def delete_script(session: AsyncSession, script: Script) -> None:
    await refuse_if_used(
        session,
        f"script {script.name!r}",
        [
            (
                "blueprints",
                BluePrint.name,
                BluePrint.id.in_(
                    select(BluePrintScript.blueprint_id).where(
                        BluePrintScript.script_id == script.id
                    )
                ),
            ),
        ],
    )
    await session.delete(script)
    await session.flush()


# -- PXE -------------------------------------------------------------------------------


async def get_pxe(session: AsyncSession, name: str) -> PXE:
    return await get_by(session, PXE, PXE.name, name, what="PXE")


async def create_pxe(
    session: AsyncSession, *, name: str, boot_script: str = "", template: str = ""
) -> PXE:
    check_name(name, field="name", max_length=50, what="PXE name")
    for field, text in (("boot_script", boot_script), ("template", template)):
        if not isinstance(text, str):
            raise InvalidInput(f"{field} must be text", field=field)
    if (await session.execute(select(PXE.id).where(PXE.name == name))).first():
        raise Conflict(f"PXE {name!r} already exists", field="name")
    pxe = PXE(name=name, boot_script=boot_script, template=template)
    return await added(session, pxe)


async def delete_pxe(session: AsyncSession, pxe: PXE) -> None:
    await refuse_if_used(
        session,
        f"PXE {pxe.name!r}",
        [
            (
                "interfaces",
                RealNetworkInterface.physical_location,
                RealNetworkInterface.pxe_id == pxe.id,
            ),
            ("dynamic addresses", DynamicAddress.offset, DynamicAddress.pxe_id == pxe.id),
        ],
    )
    await session.delete(pxe)
    await session.flush()


# -- fingerprints ----------------------------------------------------------------------


async def fingerprint_problems(
    session: AsyncSession, blueprint: FoundationBluePrint, id_map: dict[str, Any] | None
) -> list[str]:
    """Why the reported hardware does not satisfy the blueprint (and its ancestors);
    empty when it does. The strictest requirement along the chain counts."""
    chain = [
        bp
        for bp in await blueprint_chain(session, blueprint)
        if isinstance(bp, FoundationBluePrint)
    ]
    hardware = id_map or {}
    problems: list[str] = []
    cpus = max((bp.min_cpu_count or 0 for bp in chain), default=0)
    memory = max((bp.min_memory_mb or 0 for bp in chain), default=0)
    pci = sorted({dev for bp in chain for dev in bp.required_pci_devices})
    disks = max((bp.required_disks_gb for bp in chain), key=len, default=[])
    if cpus and not _number(hardware.get("cpu_count")) >= cpus:
        problems.append(f"needs at least {cpus} CPUs, has {hardware.get('cpu_count', 'unknown')}")
    if memory and not _number(hardware.get("memory_mb")) >= memory:
        problems.append(
            f"needs at least {memory} MB of memory, has {hardware.get('memory_mb', 'unknown')}"
        )
    present = {str(dev).lower() for dev in hardware.get("pci_devices") or []}
    problems += [f"needs PCI device {dev}, which is missing" for dev in pci if dev not in present]
    have = sorted((_number(d) for d in hardware.get("disks_gb") or []), reverse=True)
    for index, size in enumerate(disks):
        if index >= len(have) or have[index] < size:
            problems.append(
                f"needs {len(disks)} disks of at least {disks} GB, has {have or 'none'}"
            )
            break
    return problems


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0
