"""BluePrint resource files: the original's TOML format, loaded idempotently and dumped back.

A resource file has these top-level tables, all optional (``model-original.md`` §11)::

    sflinks = [ ["<structure blueprint>", "<foundation blueprint>"], ... ]
    [structure.<name>]   description, parents, foundation_blueprints, scripts, config_values
    [foundation.<name>]  description, foundation_types, parents, physical_interface_names,
                         scripts, config_values, template (read, not used: as the original)
    [script.<name>]      description, script
    [pxe.<name>]         boot_script, template

``read_resources`` parses the files and checks everything that needs no database (TOML
syntax, known tables and keys, names, every script with the TScript parser, every config
key) and reports all problems at once, each as ``FILE:LINE: ENTRY: problem``.
``apply_resources`` then writes them in the caller's transaction: scripts, PXEs, foundation
blueprints, structure blueprints (parents first), then ``sflinks``; an object is changed only
where the file differs, so loading a file twice changes nothing. A blueprint's parents,
foundation blueprints and script roles become exactly those of the file (roles missing from
the file are unlinked), and its ``config_values`` are replaced when the file has them.
Foundation type names are matched without regard to case (``Manual`` is ``manual``); types
that are not installed are left out with a warning.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import tscript
from contractor.config import validate_config_values
from contractor.errors import ConfigError, ContractorError, InvalidInput
from contractor.models import (
    PXE,
    BluePrint,
    FoundationBluePrint,
    Script,
    StructureBluePrint,
    StructureFoundationBluePrint,
)
from contractor.plugins import find_foundation_type
from contractor.services import blueprint as bps
from contractor.services.validation import NAME_RE

KINDS = ("script", "pxe", "foundation", "structure")
# A script's columns, by the keys its entry gives them in.
_SCRIPT_FIELDS = (("source", "script"), ("description", "description"))
KEYS = {
    "script": {"description", "script"},
    "pxe": {"boot_script", "template"},
    "foundation": {
        "description",
        "foundation_types",
        "parents",
        "physical_interface_names",
        "scripts",
        "config_values",
        "template",
    },
    "structure": {"description", "parents", "foundation_blueprints", "scripts", "config_values"},
}
STRING_KEYS = {
    "script": ("description", "script"),
    "pxe": ("boot_script", "template"),
    "foundation": ("description",),
    "structure": ("description",),
}
BUILTIN = Path(__file__).resolve().parents[1] / "resources"


def builtin_paths() -> list[Path]:
    """The resource files shipped with Contractor (``contractor/resources/*.toml``)."""
    return sorted(BUILTIN.glob("*.toml"))


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    data: dict[str, Any]
    where: str  # FILE:LINE, for messages

    def problem(self, message: str) -> str:
        return f"{self.where}: {self.kind}.{self.name}: {message}"


@dataclass
class Resources:
    entries: list[Entry] = field(default_factory=list)
    sflinks: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (structure, foundation, where)

    def of(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


def _header_lines(text: str) -> dict[tuple[str, str], int]:
    """Where each ``[kind.name]`` table starts (tomllib keeps no positions)."""
    found: dict[tuple[str, str], int] = {}
    pattern = re.compile(r"^\s*\[\s*(\w+)\s*\.\s*(?:'([^']*)'|\"([^\"]*)\"|([^\]\s.]+))")
    for number, line in enumerate(text.splitlines(), start=1):
        match = pattern.match(line)
        if match and not line.lstrip().startswith("[["):
            name = match.group(2) or match.group(3) or match.group(4)
            found.setdefault((match.group(1), name), number)
    return found


def read_resources(paths: Sequence[Path]) -> Resources:
    """Parse and check resource files; InvalidInput lists every problem found."""
    resources = Resources()
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{path}: cannot read: {error}")
            continue
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            problems.append(f"{path}: not valid TOML: {error}")
            continue
        lines = _header_lines(text)
        for key, value in document.items():
            if key == "sflinks":
                problems += _read_sflinks(path, value, resources)
                continue
            if key not in KINDS:
                problems.append(
                    f"{path}: unknown table {key!r} (expected one of: sflinks, {', '.join(KINDS)})"
                )
                continue
            if not isinstance(value, dict):
                problems.append(f"{path}: {key} must be a table of named entries")
                continue
            for name, data in value.items():
                where = f"{path}:{lines.get((key, name), 1)}"
                entry = Entry(key, name, data if isinstance(data, dict) else {}, where)
                if not isinstance(data, dict):
                    problems.append(entry.problem("must be a table"))
                    continue
                if (key, name) in seen:
                    problems.append(entry.problem(f"defined again (first at {seen[(key, name)]})"))
                    continue
                seen[(key, name)] = where
                problems += _check(entry)
                resources.entries.append(entry)
    if problems:
        raise InvalidInput("\n".join(problems), field="resources")
    return resources


def _read_sflinks(path: Path, value: Any, resources: Resources) -> list[str]:
    if not isinstance(value, list):
        return [f"{path}: sflinks must be a list of [structure, foundation] pairs"]
    problems = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(item, str) for item in pair)
        ):
            problems.append(f"{path}: sflinks[{index}] must be [structure, foundation]")
            continue
        resources.sflinks.append((pair[0], pair[1], f"{path}: sflinks[{index}]"))
    return problems


def _check(entry: Entry) -> list[str]:
    problems = []
    limit = 50 if entry.kind == "pxe" else 40
    if not NAME_RE.fullmatch(entry.name) or len(entry.name) > limit:
        problems.append(entry.problem("the name may only hold letters, digits, '_' and '-'"))
    unknown = sorted(set(entry.data) - KEYS[entry.kind])
    if unknown:
        problems.append(
            entry.problem(
                f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(KEYS[entry.kind]))})"
            )
        )
    for key in STRING_KEYS[entry.kind]:
        if key in entry.data and not isinstance(entry.data[key], str):
            problems.append(entry.problem(f"{key} must be a string"))
    for key in ("parents", "foundation_blueprints", "foundation_types", "physical_interface_names"):
        value = entry.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(entry.problem(f"{key} must be a list of names"))
    scripts = entry.data.get("scripts", {})
    if not isinstance(scripts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in scripts.items()
    ):
        problems.append(entry.problem("scripts must map roles to script names"))
    if "config_values" in entry.data:
        values = entry.data["config_values"]
        if not isinstance(values, dict):
            problems.append(entry.problem("config_values must be a table"))
        else:
            try:
                validate_config_values(values)
            except ConfigError as error:
                problems.append(entry.problem(f"config_values: {error.message}"))
    if entry.kind == "script" and isinstance(entry.data.get("script", ""), str):
        try:
            tscript.parse(entry.data.get("script", ""))
        except tscript.ParseError as error:
            problems.append(
                entry.problem(f"script line {error.line}, column {error.column}: {error.message}")
            )
    return problems


def _ordered(entries: list[Entry]) -> list[Entry]:
    """Parents defined in the same batch first."""
    pending = {e.name: e for e in entries}
    ordered: list[Entry] = []
    while pending:
        ready = [e for e in pending.values() if not set(e.data.get("parents", [])) & set(pending)]
        if not ready:
            stuck = ", ".join(sorted(pending))
            first = next(iter(pending.values()))
            raise InvalidInput(
                first.problem(f"parents form a cycle among: {stuck}"), field="parents"
            )
        for entry in sorted(ready, key=lambda e: e.name):
            ordered.append(entry)
            del pending[entry.name]
    return ordered


async def apply_resources(session: AsyncSession, resources: Resources) -> LoadReport:
    """Write checked resources in the caller's transaction (see the module docstring)."""
    report = LoadReport()
    for entry in resources.of("script"):
        script = {key: entry.data.get(name, "") for key, name in _SCRIPT_FIELDS}
        await _apply_named(
            session, entry, report, Script, script, bps.create_script, bps.update_script
        )
    for entry in resources.of("pxe"):
        pxe = {key: entry.data.get(key, "") for key in ("boot_script", "template")}
        await _apply_named(session, entry, report, PXE, pxe, bps.create_pxe, _update_pxe)
    # A structure's foundation blueprints are its own list plus the sflinks of this load, so
    # that loading the same files again finds nothing to change.
    linked: dict[str, list[str]] = {}
    for structure, foundation, _ in resources.sflinks:
        linked.setdefault(structure, []).append(foundation)
    for entry in _ordered(resources.of("foundation")):
        await _apply_blueprint(session, entry, report, [])
    for entry in _ordered(resources.of("structure")):
        await _apply_blueprint(session, entry, report, linked.get(entry.name, []))
    for structure, foundation, where in resources.sflinks:
        await _apply_sflink(session, structure, foundation, where, report)
    return report


async def load_builtin(session: AsyncSession) -> LoadReport:
    """Load the shipped resource set (idempotent, as every load)."""
    return await apply_resources(session, read_resources(builtin_paths()))


async def _existing(session: AsyncSession, model: type[Any], name: str) -> Any:
    return (await session.execute(select(model).where(model.name == name))).scalar_one_or_none()


def _note(report: LoadReport, entry: Entry, created: bool, changed: bool) -> None:
    label = f"{entry.kind}.{entry.name}"
    if created:
        report.created.append(label)
    elif changed:
        report.updated.append(label)
    else:
        report.unchanged += 1


async def _apply_named(
    session: AsyncSession,
    entry: Entry,
    report: LoadReport,
    model: type[Any],
    values: dict[str, str],
    create: Callable[..., Awaitable[Any]],
    update: Callable[..., Awaitable[Any]],
) -> None:
    """A script or PXE: created when missing, updated when one of ``values`` differs."""
    row = await _existing(session, model, entry.name)
    if row is None:
        await _guard(entry, create(session, name=entry.name, **values))
        _note(report, entry, True, False)
        return
    changed = any(getattr(row, key) != value for key, value in values.items())
    if changed:
        await _guard(entry, update(session, row, **values))
    _note(report, entry, False, changed)


async def _update_pxe(session: AsyncSession, row: PXE, *, boot_script: str, template: str) -> None:
    row.boot_script, row.template = boot_script, template
    await session.flush()


async def _guard(entry: Entry, work: Any) -> Any:
    """Run a service call, naming the entry in any error it raises."""
    try:
        return await work
    except ContractorError as error:
        raise type(error)(entry.problem(error.message), field=error.field) from None


def _types(entry: Entry, report: LoadReport) -> list[str]:
    kept = []
    for name in entry.data.get("foundation_types", []):
        plugin = find_foundation_type(name)
        if plugin is not None:
            kept.append(plugin.name)
        else:
            report.warnings.append(
                entry.problem(f"foundation type {name!r} is not installed; left out")
            )
    return list(dict.fromkeys(kept))


async def _named(
    session: AsyncSession, entry: Entry, model: type[Any], names: Iterable[str], what: str
) -> list[Any]:
    rows = []
    for name in names:
        row = await _existing(session, model, name)
        if row is None:
            raise InvalidInput(entry.problem(f"{what} {name!r} does not exist"), field=what)
        rows.append(row)
    return rows


async def _apply_blueprint(
    session: AsyncSession, entry: Entry, report: LoadReport, linked: list[str]
) -> None:
    model = FoundationBluePrint if entry.kind == "foundation" else StructureBluePrint
    other = await _existing(session, BluePrint, entry.name)
    if other is not None and not isinstance(other, model):
        raise InvalidInput(
            entry.problem(f"a {other.kind} blueprint with this name exists"), field="name"
        )
    parents = await _named(
        session, entry, model, entry.data.get("parents", []), f"{entry.kind} blueprint"
    )
    fields: dict[str, Any] = {"description": entry.data.get("description", "")}
    if "config_values" in entry.data:
        fields["config_values"] = entry.data["config_values"]
    if entry.kind == "foundation":
        fields["foundation_types"] = _types(entry, report)
        fields["physical_interface_names"] = entry.data.get("physical_interface_names", [])
    else:
        names = [*entry.data.get("foundation_blueprints", []), *linked]
        fields["foundation_blueprints"] = await _named(
            session, entry, FoundationBluePrint, list(dict.fromkeys(names)), "foundation blueprint"
        )
    created = other is None
    row: BluePrint
    if other is None:
        creator = (
            bps.create_foundation_blueprint
            if entry.kind == "foundation"
            else bps.create_structure_blueprint
        )
        row = await _guard(entry, creator(session, name=entry.name, parents=parents, **fields))
        changed = True
    else:
        row = other
        changed = await _blueprint_changes(session, row, parents, fields)
        if changed:
            await _guard(entry, bps.update_blueprint(session, row, parents=parents, **fields))
    changed |= await _sync_scripts(session, entry, row)
    _note(report, entry, created, changed)


async def _blueprint_changes(
    session: AsyncSession, row: BluePrint, parents: list[Any], fields: dict[str, Any]
) -> bool:
    current_parents = (await bps.parent_links(session, [row.id]))[row.id]
    if current_parents != [p.id for p in parents]:
        return True
    for key, value in fields.items():
        if key == "foundation_blueprints":
            links = await session.execute(
                select(StructureFoundationBluePrint.foundation_blueprint_id)
                .where(StructureFoundationBluePrint.structure_blueprint_id == row.id)
                .order_by(StructureFoundationBluePrint.position)
            )
            if list(links.scalars()) != [fb.id for fb in value]:
                return True
        elif key == "config_values":
            if list(row.config_values.items()) != list(value.items()):
                return True
        elif getattr(row, key) != value:
            return True
    return False


async def _sync_scripts(session: AsyncSession, entry: Entry, row: BluePrint) -> bool:
    wanted: dict[str, str] = entry.data.get("scripts", {})
    current = await bps.script_roles(session, row)
    if current == wanted:
        return False
    for role, script_name in wanted.items():
        if current.get(role) != script_name:
            script = (await _named(session, entry, Script, [script_name], "script"))[0]
            await _guard(entry, bps.link_script(session, blueprint=row, role=role, script=script))
    for role in set(current) - set(wanted):
        await bps.unlink_script(session, blueprint=row, role=role)
    return True


async def _apply_sflink(
    session: AsyncSession, structure: str, foundation: str, where: str, report: LoadReport
) -> None:
    sbp = await _existing(session, StructureBluePrint, structure)
    fbp = await _existing(session, FoundationBluePrint, foundation)
    if sbp is None or fbp is None:
        missing = structure if sbp is None else foundation
        raise InvalidInput(f"{where}: blueprint {missing!r} does not exist", field="sflinks")
    links = await session.execute(
        select(StructureFoundationBluePrint.foundation_blueprint_id)
        .where(StructureFoundationBluePrint.structure_blueprint_id == sbp.id)
        .order_by(StructureFoundationBluePrint.position)
    )
    current = list(links.scalars())
    if fbp.id in current:
        report.unchanged += 1
        return
    by_id = {
        b.id: b
        for b in (
            await session.execute(
                select(FoundationBluePrint).where(FoundationBluePrint.id.in_(current))
            )
        ).scalars()
    }
    await bps.set_foundation_blueprints(session, sbp, [*(by_id[i] for i in current), fbp])
    report.updated.append(f"sflink {structure} -> {foundation}")


async def dump_resources(session: AsyncSession) -> str:
    """Every script, PXE and blueprint in the resource format (loading it back changes
    nothing)."""
    document: dict[str, Any] = {}
    scripts = (await session.execute(select(Script).order_by(Script.name))).scalars()
    document["script"] = {
        s.name: {"description": s.description, "script": s.source} for s in scripts
    }
    pxes = (await session.execute(select(PXE).order_by(PXE.name))).scalars()
    document["pxe"] = {p.name: {"boot_script": p.boot_script, "template": p.template} for p in pxes}
    names = {b.id: b.name for b in (await session.execute(select(BluePrint))).scalars()}
    for kind, model in (("foundation", FoundationBluePrint), ("structure", StructureBluePrint)):
        table: dict[str, Any] = {}
        for row in (await session.execute(select(model).order_by(model.name))).scalars():
            entry: dict[str, Any] = {"description": row.description}
            entry["parents"] = [
                names[p] for p in (await bps.parent_links(session, [row.id]))[row.id]
            ]
            if isinstance(row, FoundationBluePrint):
                entry["foundation_types"] = list(row.foundation_types)
                entry["physical_interface_names"] = list(row.physical_interface_names)
            else:
                links = await session.execute(
                    select(StructureFoundationBluePrint.foundation_blueprint_id)
                    .where(StructureFoundationBluePrint.structure_blueprint_id == row.id)
                    .order_by(StructureFoundationBluePrint.position)
                )
                entry["foundation_blueprints"] = [names[i] for i in links.scalars()]
            entry["scripts"] = await bps.script_roles(session, row)
            entry["config_values"] = row.config_values
            table[row.name] = entry
        document[kind] = table
    try:
        text: str = tomli_w.dumps({k: v for k, v in document.items() if v})
    except TypeError as error:
        raise InvalidInput(
            f"a config value cannot be written as TOML ({error}); TOML has no null",
            field="config_values",
        ) from None
    return text


__all__ = [
    "BUILTIN",
    "LoadReport",
    "Resources",
    "apply_resources",
    "builtin_paths",
    "dump_resources",
    "load_builtin",
    "read_resources",
]
