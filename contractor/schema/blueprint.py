"""Blueprints, scripts and PXE targets in GraphQL: the two kinds of blueprint with their
parents and scripts, their lists, and their changes."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.schema.common import (
    Deleted,
    DeleteResult,
    Row,
    Scope,
    each,
    given,
    given_object,
    json_object,
)
from contractor.schema.configurable import Configurable
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation, through
from contractor.schema.permissions import Operator
from contractor.services import blueprint as bps
from contractor.services import inventory
from contractor.services.common import UNSET


@strawberry.type
class Script(Row):
    id: int
    name: str
    description: str
    source: str
    updated: dt.datetime


@strawberry.type(name="PXE")
class Pxe(Row):
    id: int
    name: str
    boot_script: str
    template: str


@strawberry.type(description="A blueprint's script for a role (create, destroy, or a utility).")
class ScriptLink:
    role: str
    script: Script


@strawberry.interface
class BluePrint(Configurable):
    id: int
    name: str
    description: str
    config_values: JSON
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.BluePrint]

    parents: list[BluePrint] = through(
        models.BluePrintParent.child_id,
        models.BluePrintParent.position,
        models.BluePrint.id,
        "parent_id",
        lambda _, parent: blueprint_of(parent),
        description="Parents in order (config layering and script lookup).",
    )
    scripts: list[ScriptLink] = through(
        models.BluePrintScript.blueprint_id,
        models.BluePrintScript.name,
        models.Script.id,
        "script_id",
        lambda link, script: ScriptLink(role=link.name, script=Script.of(script)),
        description="This blueprint's own scripts by role (parents not included).",
    )


@strawberry.type
class FoundationBluePrint(BluePrint):
    foundation_types: list[str] = strawberry.field(
        description="The foundation types this accepts, installed or not (a type that is not "
        "installed is kept by name and takes effect once a plugin of that name is installed)."
    )
    physical_interface_names: list[str]
    min_cpu_count: int | None
    min_memory_mb: int | None
    required_pci_devices: list[str]
    required_disks_gb: list[int]

    @strawberry.field(description="Those of foundationTypes that no installed plugin provides.")
    def missing_foundation_types(self) -> list[str]:
        assert isinstance(self.row, models.FoundationBluePrint)
        return bps.missing_foundation_types(self.row)


@strawberry.type
class StructureBluePrint(BluePrint):
    foundation_blueprints: list[FoundationBluePrint] = through(
        models.StructureFoundationBluePrint.structure_blueprint_id,
        models.StructureFoundationBluePrint.position,
        models.BluePrint.id,
        "foundation_blueprint_id",
        lambda _, blueprint: FoundationBluePrint.of(blueprint),
        description="Foundation blueprints this may be built on (own list).",
    )


def blueprint_of(row: models.BluePrint) -> FoundationBluePrint | StructureBluePrint:
    if isinstance(row, models.FoundationBluePrint):
        return FoundationBluePrint.of(row)
    assert isinstance(row, models.StructureBluePrint)
    return StructureBluePrint.of(row)


FoundationBluePrintResult = Annotated[
    FoundationBluePrint | AnyError, strawberry.union("FoundationBluePrintResult")
]
StructureBluePrintResult = Annotated[
    StructureBluePrint | AnyError, strawberry.union("StructureBluePrintResult")
]
BluePrintResult = Annotated[
    FoundationBluePrint | StructureBluePrint | AnyError, strawberry.union("BluePrintResult")
]
ScriptResult = Annotated[Script | AnyError, strawberry.union("ScriptResult")]
PxeResult = Annotated[Pxe | AnyError, strawberry.union("PXEResult")]


@strawberry.enum
class BluePrintKind(enum.Enum):
    FOUNDATION = "foundation"
    STRUCTURE = "structure"


@strawberry.input(description="Which blueprint, optionally with every blueprint inheriting it.")
class BluePrintScope(Scope):
    pass


@strawberry.type
class BlueprintQuery:
    blueprint = lookup(BluePrint, bps.get_blueprint, of=blueprint_of, name=str)
    blueprints = connection(BluePrint, inventory.blueprints, of=blueprint_of, kind=BluePrintKind)
    script = lookup(Script, bps.get_script, name=str)
    scripts = connection(Script, inventory.scripts)
    pxe = lookup(Pxe, bps.get_pxe, name=str)
    pxes = connection(Pxe, inventory.pxes)


@strawberry.type
class BlueprintMutation:
    @mutation(Operator)
    async def create_foundation_blueprint(
        session: AsyncSession,
        name: str,
        description: str = "",
        parents: list[str] | None = None,
        foundation_types: list[str] | None = None,
        physical_interface_names: list[str] | None = None,
        min_cpu_count: int | None = None,
        min_memory_mb: int | None = None,
        required_pci_devices: list[str] | None = None,
        required_disks_gb: list[int] | None = None,
        config_values: JSON | None = None,
    ) -> FoundationBluePrintResult:
        row = await bps.create_foundation_blueprint(
            session,
            name=name,
            description=description,
            parents=await each(bps.get_foundation_blueprint, session, parents),
            foundation_types=foundation_types or [],
            physical_interface_names=physical_interface_names or [],
            min_cpu_count=min_cpu_count,
            min_memory_mb=min_memory_mb,
            required_pci_devices=required_pci_devices or [],
            required_disks_gb=required_disks_gb or [],
            config_values=json_object(config_values, "config_values"),
        )
        return FoundationBluePrint.of(row)

    @mutation(Operator)
    async def create_structure_blueprint(
        session: AsyncSession,
        name: str,
        description: str = "",
        parents: list[str] | None = None,
        foundation_blueprints: list[str] | None = None,
        config_values: JSON | None = None,
    ) -> StructureBluePrintResult:
        row = await bps.create_structure_blueprint(
            session,
            name=name,
            description=description,
            parents=await each(bps.get_structure_blueprint, session, parents),
            foundation_blueprints=await each(
                bps.get_foundation_blueprint, session, foundation_blueprints
            ),
            config_values=json_object(config_values, "config_values"),
        )
        return StructureBluePrint.of(row)

    @mutation(Operator, description="Change a blueprint of either kind; only given fields change.")
    async def update_blueprint(
        session: AsyncSession,
        name: str,
        description: str | None = strawberry.UNSET,
        parents: list[str] | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
        foundation_types: list[str] | None = strawberry.UNSET,
        foundation_blueprints: list[str] | None = strawberry.UNSET,
        min_cpu_count: int | None = strawberry.UNSET,
        min_memory_mb: int | None = strawberry.UNSET,
    ) -> BluePrintResult:
        row = await bps.get_blueprint(session, name)
        fields: dict[str, Any] = {}
        for key, value in (
            ("foundation_types", foundation_types),
            ("min_cpu_count", min_cpu_count),
            ("min_memory_mb", min_memory_mb),
        ):
            if value is not strawberry.UNSET:
                fields[key] = value or [] if key == "foundation_types" else value
        if foundation_blueprints is not strawberry.UNSET:
            fields["foundation_blueprints"] = await each(
                bps.get_foundation_blueprint, session, foundation_blueprints
            )
        parent_rows: Any = UNSET
        if parents is not strawberry.UNSET:
            parent_rows = await each(bps.get_blueprint, session, parents)
        await bps.update_blueprint(
            session,
            row,
            description=given(description),
            config_values=given_object(config_values, "config_values"),
            parents=parent_rows,
            **fields,
        )
        return blueprint_of(row)

    delete_blueprint = deletion("BluePrint", bps.get_blueprint, bps.delete_blueprint, name=str)

    @mutation(Operator)
    async def create_script(
        session: AsyncSession, name: str, source: str, description: str = ""
    ) -> ScriptResult:
        row = await bps.create_script(session, name=name, source=source, description=description)
        return Script.of(row)

    @mutation(Operator)
    async def update_script(
        session: AsyncSession,
        name: str,
        source: str | None = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
    ) -> ScriptResult:
        row = await bps.get_script(session, name)
        await bps.update_script(session, row, source=given(source), description=given(description))
        return Script.of(row)

    delete_script = deletion("Script", bps.get_script, bps.delete_script, name=str)

    @mutation(Operator, description="Use a script for a blueprint's role (create, destroy, ...).")
    async def link_script(
        session: AsyncSession, blueprint: str, role: str, script: str
    ) -> BluePrintResult:
        row = await bps.get_blueprint(session, blueprint)
        await bps.link_script(
            session, blueprint=row, role=role, script=await bps.get_script(session, script)
        )
        return blueprint_of(row)

    @mutation(Operator)
    async def unlink_script(session: AsyncSession, blueprint: str, role: str) -> DeleteResult:
        row = await bps.get_blueprint(session, blueprint)
        await bps.unlink_script(session, blueprint=row, role=role)
        return Deleted(kind="ScriptLink", id=row.id)

    @mutation(Operator, name="createPXE")
    async def create_pxe(
        session: AsyncSession, name: str, boot_script: str = "", template: str = ""
    ) -> PxeResult:
        row = await bps.create_pxe(session, name=name, boot_script=boot_script, template=template)
        return Pxe.of(row)

    delete_pxe = deletion("PXE", bps.get_pxe, bps.delete_pxe, field_name="deletePXE", name=str)
