"""Foundations, Structures and Dependencies: creation rules and state transitions.

States follow from timestamps. The transitions here are the ones an operator (or, later, a
finished job) makes; each checks its preconditions and names what blocks it (interfaces are
in ``services.interfaces``, complexes, whose state is derived, in ``services.complexes``)::

    Foundation  planned --set_located--> located --set_built--> built --set_destroyed--> planned
    Structure   planned --set_built--> built --set_destroyed--> planned (new config UUID)
    Dependency  planned --set_built--> built --set_destroyed--> planned (children too; a hard
                link destroys its Foundation)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InUse, InvalidInput, InvalidState
from contractor.models import (
    Address,
    BaseAddress,
    Complex,
    ComplexMember,
    Dependency,
    Foundation,
    FoundationBluePrint,
    Job,
    RealNetworkInterface,
    Site,
    Structure,
    StructureBluePrint,
    Zone,
    utcnow,
)
from contractor.models.building import new_config_uuid
from contractor.plugins import get_foundation_type
from contractor.services import placement
from contractor.services.blueprint import (
    blueprint_chain,
    combined_foundation_blueprint_ids,
    fingerprint_problems,
)
from contractor.services.common import UNSET, added, get_by, refuse_if_used, set_given
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.directory import (
    check_hostname_free_of_entries,
    check_hostname_free_of_zones,
)
from contractor.services.dns_guard import kept_exportable
from contractor.services.interfaces import check_mac_free
from contractor.services.validation import (
    check_config_values,
    check_hostname,
    check_json_object,
    check_name,
    normalise_mac,
)

# -- foundations -----------------------------------------------------------------------


async def get_foundation(
    session: AsyncSession, locator: str, *, for_update: bool = False
) -> Foundation:
    return await get_by(
        session, Foundation, Foundation.locator, locator, what="foundation", for_update=for_update
    )


async def create_foundation(
    session: AsyncSession,
    *,
    locator: str,
    site: Site,
    blueprint: FoundationBluePrint,
    type: str,
    fields: dict[str, Any] | None = None,
) -> Foundation:
    """A planned Foundation of a plugin ``type`` the blueprint (or an ancestor) accepts."""
    check_name(locator, field="locator", max_length=100, what="locator")
    plugin = get_foundation_type(type)  # any case: the row holds the plugin's own name
    await _check_type_accepted(session, blueprint, plugin.name, field="type")
    if (await session.execute(select(Foundation.id).where(Foundation.locator == locator))).first():
        raise Conflict(f"foundation {locator!r} already exists", field="locator")
    extra = plugin.validate_fields(fields or {})
    stored = {k: v for k, v in extra.items() if k not in plugin.placement_fields}
    foundation = plugin.model(locator=locator, site_id=site.id, blueprint_id=blueprint.id, **stored)
    await added(session, foundation)
    if plugin.complex_type is not None:
        await placement.host(
            session,
            foundation,
            foundation_type=plugin.name,
            complex_type=plugin.complex_type,
            values=extra,
            demand=plugin.demand(foundation, extra),
        )
    return foundation


async def _check_type_accepted(
    session: AsyncSession, blueprint: FoundationBluePrint, type: str, *, field: str
) -> None:
    """The blueprint, or one of its ancestors, lists the foundation type."""
    accepted = {
        name
        for bp in await blueprint_chain(session, blueprint)
        if isinstance(bp, FoundationBluePrint)
        for name in bp.foundation_types
    }
    if type.casefold() not in {name.casefold() for name in accepted}:
        raise InvalidInput(
            f"blueprint {blueprint.name!r} does not accept foundation type {type!r} "
            f"(it accepts: {', '.join(sorted(accepted)) or 'none'})",
            field=field,
        )


async def foundation_structure(session: AsyncSession, foundation: Foundation) -> Structure | None:
    query = select(Structure).where(Structure.foundation_id == foundation.id)
    return (await session.execute(query)).scalar_one_or_none()


async def set_id_map(
    session: AsyncSession, foundation: Foundation, id_map: dict[str, Any]
) -> Foundation:
    """Record the hardware identity a machine reported; MACs under ``network`` are copied onto
    the interfaces with the same physical location."""
    checked = check_json_object(id_map, field="id_map")
    network = checked.get("network", {})
    if not isinstance(network, dict):
        raise InvalidInput(
            "id_map.network must be a map of physical location to details", field="id_map.network"
        )
    interfaces = {
        i.physical_location: i
        for i in (
            await session.execute(
                select(RealNetworkInterface).where(
                    RealNetworkInterface.foundation_id == foundation.id
                )
            )
        ).scalars()
    }
    for location, details in network.items():
        if not isinstance(details, dict):
            raise InvalidInput(
                f"id_map.network.{location} must be a map", field=f"id_map.network.{location}"
            )
        if location in interfaces and details.get("mac"):
            mac = normalise_mac(details["mac"], field=f"id_map.network.{location}.mac")
            wanted_by = f"interface {location!r} of foundation {foundation.locator!r}"
            await check_mac_free(session, mac, interfaces[location].id, wanted_by=wanted_by)
            interfaces[location].mac = mac
    foundation.id_map = checked
    return await config_changed(session, foundation)


async def _require_fingerprint(session: AsyncSession, foundation: Foundation) -> None:
    blueprint = await session.get_one(FoundationBluePrint, foundation.blueprint_id)
    problems = await fingerprint_problems(session, blueprint, foundation.id_map)
    if problems:
        raise InvalidState(
            f"foundation {foundation.locator!r} does not match blueprint {blueprint.name!r}: "
            + "; ".join(problems)
        )


async def set_located(session: AsyncSession, foundation: Foundation) -> Foundation:
    if foundation.state == "built":
        raise InvalidState(
            f"foundation {foundation.locator!r} is built; destroy it before locating it again"
        )
    structure = await foundation_structure(session, foundation)
    if structure is not None and structure.state != "planned":
        raise InvalidState(
            f"foundation {foundation.locator!r} carries built structure {structure.hostname!r}"
        )
    await _require_fingerprint(session, foundation)
    foundation.located_at = utcnow()
    foundation.built_at = None
    return await config_changed(session, foundation)


async def set_built(session: AsyncSession, foundation: Foundation) -> Foundation:
    if foundation.state == "built":
        raise InvalidState(f"foundation {foundation.locator!r} is already built")
    if foundation.located_at is None:
        await _require_fingerprint(session, foundation)
        foundation.located_at = utcnow()
    foundation.built_at = utcnow()
    return await config_changed(session, foundation)


async def set_destroyed(session: AsyncSession, foundation: Foundation) -> Foundation:
    """Back to planned: timestamps, hardware identity, MACs and PXE choices are cleared
    (the machine reports them again when it is next located)."""
    structure = await foundation_structure(session, foundation)
    if structure is not None and structure.state != "planned":
        raise InvalidState(
            f"foundation {foundation.locator!r} carries built structure {structure.hostname!r}; "
            "destroy the structure first"
        )
    await session.execute(
        update(RealNetworkInterface)
        .where(RealNetworkInterface.foundation_id == foundation.id)
        .values(mac=None, pxe_id=None)
    )
    foundation.located_at = None
    foundation.built_at = None
    foundation.id_map = None
    await placement.release(session, foundation)
    return await config_changed(session, foundation)


async def update_foundation(
    session: AsyncSession,
    foundation: Foundation,
    *,
    site: Site = UNSET,
    blueprint: FoundationBluePrint = UNSET,
    fields: dict[str, Any] | None = None,
) -> Foundation:
    if blueprint is not UNSET:
        await _check_type_accepted(session, blueprint, foundation.type, field="blueprint")
        structure = await foundation_structure(session, foundation)
        if structure is not None:
            allowed = await combined_foundation_blueprint_ids(
                session, await session.get_one(StructureBluePrint, structure.blueprint_id)
            )
            if blueprint.id not in allowed:
                raise InvalidInput(
                    f"structure {structure.hostname!r} cannot be built on blueprint "
                    f"{blueprint.name!r}",
                    field="blueprint",
                )
        foundation.blueprint_id = blueprint.id
    set_given(foundation, site_id=(site, lambda site: site.id))
    if fields:
        plugin = get_foundation_type(foundation.type)
        fixed = sorted(set(fields) & set(plugin.placement_fields))
        if fixed:
            raise InvalidInput(
                f"{fixed[0]} is given when a foundation is created and cannot be changed",
                field=fixed[0],
            )
        for key, value in plugin.validate_fields(fields).items():
            setattr(foundation, key, value)
    return await config_changed(session, foundation)


async def _refuse_if_job(session: AsyncSession, description: str, *condition: Any) -> None:
    """A target with an unfinished job is not deleted (its job would vanish with it)."""
    job = (
        await session.execute(select(Job).where(Job.finished_at.is_(None), *condition))
    ).scalar_one_or_none()
    if job is not None:
        raise InUse(
            f"{description} has unfinished job {job.id} ({job.script_name}, {job.state}); "
            "cancel it (cancelJob) or let it finish first",
            field="id",
        )


async def delete_foundation(session: AsyncSession, foundation: Foundation) -> None:
    if foundation.state == "built":
        raise InvalidState(f"foundation {foundation.locator!r} is built; destroy it first")
    await _refuse_if_job(
        session, f"foundation {foundation.locator!r}", Job.foundation_id == foundation.id
    )
    await refuse_if_used(
        session,
        f"foundation {foundation.locator!r}",
        [
            ("structures", Structure.hostname, Structure.foundation_id == foundation.id),
            ("dependencies", Dependency.id, Dependency.foundation_id == foundation.id),
        ],
    )
    await placement.release(session, foundation)
    await session.delete(foundation)
    config_sources_changed(session)
    await session.flush()


# -- structures ------------------------------------------------------------------------


async def get_structure(session: AsyncSession, site: Site, hostname: str) -> Structure:
    return await get_by(
        session, Structure, Structure.hostname, hostname, what="structure", in_site=site
    )


async def get_structure_by_id(session: AsyncSession, structure_id: int) -> Structure:
    return await get_by(session, Structure, Structure.id, structure_id, what="structure")


async def _check_hostname_free(
    session: AsyncSession, hostname: str, site: Site, structure_id: int | None
) -> None:
    same_site = select(Structure.id).where(
        Structure.site_id == site.id, Structure.hostname == hostname
    )
    if structure_id is not None:
        same_site = same_site.where(Structure.id != structure_id)
    if (await session.execute(same_site)).first():
        raise Conflict(
            f"hostname {hostname!r} is already used in site {site.name!r}", field="hostname"
        )
    if site.zone_id is None:
        return
    zone = await session.get_one(Zone, site.zone_id)
    await check_hostname_free_of_zones(session, zone, hostname)
    await check_hostname_free_of_entries(session, zone, hostname)
    same_zone = (
        select(Site.name)
        .join(Structure, Structure.site_id == Site.id)
        .where(Site.zone_id == site.zone_id, Site.id != site.id, Structure.hostname == hostname)
    )
    other = (await session.execute(same_zone.limit(1))).scalar_one_or_none()
    if other is not None:
        raise Conflict(
            f"hostname {hostname!r} is already used in site {other!r}, which shares "
            f"the DNS zone of site {site.name!r}",
            field="hostname",
        )


async def create_structure(
    session: AsyncSession,
    *,
    hostname: str,
    site: Site,
    blueprint: StructureBluePrint,
    foundation: Foundation,
    config_values: dict[str, Any] | None = None,
) -> Structure:
    check_hostname(hostname)
    values = check_config_values(config_values or {})
    await _check_hostname_free(session, hostname, site, None)
    holder = await foundation_structure(session, foundation)
    if holder is not None:
        raise Conflict(
            f"foundation {foundation.locator!r} already carries structure {holder.hostname!r}",
            field="foundation",
        )
    allowed = await combined_foundation_blueprint_ids(session, blueprint)
    if foundation.blueprint_id not in allowed:
        foundation_bp = await session.get_one(FoundationBluePrint, foundation.blueprint_id)
        raise InvalidInput(
            f"structure blueprint {blueprint.name!r} cannot be built on foundation blueprint "
            f"{foundation_bp.name!r} (foundation {foundation.locator!r})",
            field="foundation",
        )
    structure = Structure(
        hostname=hostname,
        site_id=site.id,
        blueprint_id=blueprint.id,
        foundation_id=foundation.id,
        config_values=values,
    )
    session.add(structure)
    return await config_changed(session, structure)


async def update_structure(
    session: AsyncSession,
    structure: Structure,
    *,
    hostname: str = UNSET,
    config_values: dict[str, Any] = UNSET,
) -> Structure:
    if hostname is not UNSET:
        check_hostname(hostname)
        site = await session.get_one(Site, structure.site_id)
        await _check_hostname_free(session, hostname, site, structure.id)
        async with kept_exportable(session, field="hostname"):
            structure.hostname = hostname
            await session.flush()
    set_given(structure, config_values=(config_values, check_config_values))
    return await config_changed(session, structure)


async def set_structure_built(session: AsyncSession, structure: Structure) -> Structure:
    if structure.state == "built":
        raise InvalidState(f"structure {structure.hostname!r} is already built")
    foundation = await session.get_one(Foundation, structure.foundation_id)
    if foundation.state != "built":
        raise InvalidState(
            f"structure {structure.hostname!r} needs its foundation {foundation.locator!r} "
            f"built first (it is {foundation.state})"
        )
    structure.built_at = utcnow()
    return await config_changed(session, structure)


async def set_structure_destroyed(session: AsyncSession, structure: Structure) -> Structure:
    """Back to planned with a new config UUID (so a stale host can notice); dependencies on
    the structure are destroyed too."""
    if structure.state != "built":
        raise InvalidState(f"structure {structure.hostname!r} is not built")
    await _destroy_built(session, Dependency.structure_id == structure.id)
    structure.built_at = None
    structure.config_uuid = new_config_uuid()
    return await config_changed(session, structure)


async def delete_structure(session: AsyncSession, structure: Structure) -> None:
    if structure.state == "built":
        raise InvalidState(f"structure {structure.hostname!r} is built; destroy it first")
    await _refuse_if_job(
        session, f"structure {structure.hostname!r}", Job.structure_id == structure.id
    )
    own_addresses = select(BaseAddress.id).where(BaseAddress.structure_id == structure.id)
    await refuse_if_used(
        session,
        f"structure {structure.hostname!r}",
        [
            (
                "complexes",
                Complex.name,
                Complex.id.in_(
                    select(ComplexMember.complex_id).where(
                        ComplexMember.structure_id == structure.id
                    )
                ),
            ),
            (
                "dependencies",
                Dependency.id,
                (Dependency.structure_id == structure.id)
                | (Dependency.script_structure_id == structure.id),
            ),
            ("pointer addresses", Address.interface_name, Address.pointer_id.in_(own_addresses)),
        ],
    )
    async with kept_exportable(session, field="hostname"):
        await session.delete(structure)
        config_sources_changed(session)


# -- dependencies ----------------------------------------------------------------------


async def get_dependency(session: AsyncSession, dependency_id: int) -> Dependency:
    return await get_by(session, Dependency, Dependency.id, dependency_id, what="dependency")


async def create_dependency(
    session: AsyncSession,
    *,
    structure: Structure | None = None,
    dependency: Dependency | None = None,
    foundation: Foundation | None = None,
    script_structure: Structure | None = None,
    link: str = "soft",
    create_script_name: str | None = None,
    destroy_script_name: str | None = None,
) -> Dependency:
    if (structure is None) == (dependency is None):
        raise InvalidInput(
            "a dependency is on exactly one structure or one other dependency",
            field="structure",
        )
    if link not in ("soft", "hard"):
        raise InvalidInput(f"link must be 'soft' or 'hard', got {link!r}", field="link")
    for field, value in (
        ("create_script_name", create_script_name),
        ("destroy_script_name", destroy_script_name),
    ):
        if value is not None:
            check_name(value, field=field, what=field.replace("_", " "))
            if structure is None and script_structure is None:
                raise InvalidInput(
                    f"{field} needs a structure to run on (structure or script_structure)",
                    field=field,
                )
    if create_script_name is not None and create_script_name == destroy_script_name:
        raise InvalidInput(
            "create_script_name and destroy_script_name must differ", field="destroy_script_name"
        )
    if foundation is not None:
        clash = select(Dependency.id).where(Dependency.foundation_id == foundation.id)
        if (await session.execute(clash)).first():
            raise Conflict(
                f"foundation {foundation.locator!r} already has a dependency", field="foundation"
            )
    if link == "hard" and foundation is None:
        raise InvalidInput("a hard link needs a foundation to destroy with it", field="link")
    row = Dependency(
        structure_id=structure.id if structure else None,
        dependency_id=dependency.id if dependency else None,
        foundation_id=foundation.id if foundation else None,
        script_structure_id=script_structure.id if script_structure else None,
        link=link,
        create_script_name=create_script_name,
        destroy_script_name=destroy_script_name,
    )
    return await added(session, row)


async def set_dependency_built(session: AsyncSession, dependency: Dependency) -> Dependency:
    if dependency.state == "built":
        raise InvalidState(f"dependency {dependency.id} is already built")
    if dependency.structure_id is not None:
        target = await session.get_one(Structure, dependency.structure_id)
        if target.state != "built":
            raise InvalidState(
                f"dependency {dependency.id} needs structure {target.hostname!r} built first"
            )
    elif dependency.dependency_id is not None:
        parent = await session.get_one(Dependency, dependency.dependency_id)
        if parent.state != "built":
            raise InvalidState(
                f"dependency {dependency.id} needs dependency {parent.id} built first"
            )
    dependency.built_at = utcnow()
    await session.flush()
    return dependency


async def _destroy_built(session: AsyncSession, dependencies: ColumnElement[bool]) -> None:
    """Destroy the built ones of the ``dependencies`` (a condition on Dependency)."""
    built = select(Dependency).where(dependencies, Dependency.built_at.is_not(None))
    for dependency in (await session.execute(built)).scalars():
        await set_dependency_destroyed(session, dependency)


async def set_dependency_destroyed(session: AsyncSession, dependency: Dependency) -> Dependency:
    """Back to planned; built child dependencies follow, and a hard link destroys its
    foundation."""
    await _destroy_built(session, Dependency.dependency_id == dependency.id)
    dependency.built_at = None
    if dependency.link == "hard" and dependency.foundation_id is not None:
        foundation = await session.get_one(Foundation, dependency.foundation_id)
        if foundation.state != "planned":
            await set_destroyed(session, foundation)
    await session.flush()
    return dependency


async def delete_dependency(session: AsyncSession, dependency: Dependency) -> None:
    if dependency.state == "built":
        raise InvalidState(f"dependency {dependency.id} is built; destroy it first")
    await _refuse_if_job(session, f"dependency {dependency.id}", Job.dependency_id == dependency.id)
    await refuse_if_used(
        session,
        f"dependency {dependency.id}",
        [("dependencies", Dependency.id, Dependency.dependency_id == dependency.id)],
    )
    await session.delete(dependency)
    await session.flush()
