"""BluePrint resource files: the original's TOML format, loaded as forgivingly as the original
loaded them, idempotently, and dumped back.

A resource file has these top-level tables, all optional (``model-original.md`` §11)::

    sflinks = [ ["<structure blueprint>", "<foundation blueprint>"], ... ]
    [structure.<name>]   description, parents, foundation_blueprints, scripts, config_values
    [foundation.<name>]  description, foundation_types, parents, physical_interface_names,
                         scripts, config_values, template (read, not used: as the original),
                         min_cpu_count, min_memory_mb, required_pci_devices,
                         required_disks_gb (fingerprint requirements; kept when absent)
    [script.<name>]      description, script
    [pxe.<name>]         boot_script, template

``resource_files.read_file`` reads and checks one file without the database. The entries of
every file of a load are then written in the caller's transaction as one set, so a link may
name an entry of a later file: scripts, PXEs, foundation blueprints, structure blueprints
(parents first, across files), then ``sflinks``. An object is changed only where the file
differs, so loading a file twice changes nothing. A blueprint's parents, foundation
blueprints and script roles become exactly those of the file (roles missing from the file
are unlinked), and its ``config_values`` are replaced when the file has them. Foundation
type names are matched without regard to case (``Manual`` is ``manual``); a type that is
not installed is kept by its name, with a warning, and takes effect once a plugin of that
name is installed.

``load_resources`` loads as the original did: a link (a parent, a foundation blueprint, a
script, either end of an ``sflinks`` pair) to something that is neither in the database nor
in the files loaded is skipped with a warning naming it; an entry defined in two files is
reported and the later file's wins; each file loads or fails on its own (a failing file
changes nothing, the others load), with a ``FileReport`` each. The strict way, today's
``read_resources`` then ``apply_resources`` (``blueprint load --all-or-nothing``), refuses
the whole load for any problem in any file, a link that resolves nowhere included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import ContractorError, InvalidInput
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
from contractor.services.resource_files import (
    FINGERPRINT_KEYS,
    Entry,
    ResourceFile,
    SFLink,
    read_file,
)

# A script's columns, by the keys its entry gives them in.
_SCRIPT_FIELDS = (("source", "script"), ("description", "description"))
BUILTIN = Path(__file__).resolve().parents[1] / "resources"
_NOWHERE = "is neither in the database nor in the files loaded; link skipped"


def builtin_paths() -> list[Path]:
    """The resource files shipped with Contractor (``contractor/resources/*.toml``)."""
    return sorted(BUILTIN.glob("*.toml"))


@dataclass
class Resources:
    """Checked files, every one without problems (``read_resources``)."""

    files: list[ResourceFile] = field(default_factory=list)

    @property
    def entries(self) -> list[Entry]:
        return [entry for file in self.files for entry in file.entries]


@dataclass
class FileReport:
    """What a load did with one file. ``loaded`` is False when the file failed: then
    nothing of it was written and ``errors`` says why."""

    path: str
    loaded: bool = True
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # links to nothing, left out
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def created(self) -> list[str]:
        return [label for file in self.files for label in file.created]

    @property
    def updated(self) -> list[str]:
        return [label for file in self.files for label in file.updated]

    @property
    def unchanged(self) -> int:
        return sum(file.unchanged for file in self.files)

    @property
    def warnings(self) -> list[str]:
        return [w for file in self.files for w in (*file.warnings, *file.skipped)]

    @property
    def failed(self) -> list[FileReport]:
        return [file for file in self.files if not file.loaded]


class _FilesFailed(Exception):
    """Files that cannot be loaded, by their place in the load, with why."""

    def __init__(self, problems: dict[int, list[str]]) -> None:
        assert problems, "a failure names a file, so the next attempt has a file fewer"
        super().__init__(problems)
        self.problems = problems


def read_resources(paths: Sequence[Path]) -> Resources:
    """Parse and check resource files; InvalidInput lists every problem found, an entry
    defined in two files included."""
    files = [read_file(path, index) for index, path in enumerate(paths)]
    problems = [problem for file in files for problem in file.errors]
    seen: dict[tuple[str, str], Entry] = {}
    for file in files:
        for entry in file.entries:
            first = seen.setdefault((entry.kind, entry.name), entry)
            if first.file != entry.file:
                problems.append(entry.problem(f"defined again (first at {first.where})"))
    if problems:
        raise InvalidInput("\n".join(problems), field="resources")
    return Resources(files)


async def apply_resources(session: AsyncSession, resources: Resources) -> LoadReport:
    """Write checked resources in the caller's transaction, strictly: any problem (a link
    to nothing included) raises, and the caller rolls back."""
    return await _Load(session, resources.files, strict=True).run()


async def load_resources(
    session: AsyncSession, paths: Sequence[Path], *, all_or_nothing: bool = False
) -> LoadReport:
    """Load files as the original did (see the module docstring), each file on its own;
    ``all_or_nothing`` is the strict ``read_resources`` and ``apply_resources``."""
    if all_or_nothing:
        checked = read_resources(paths)
        async with session.begin_nested():  # a failure leaves the caller's data as it was
            return await apply_resources(session, checked)
    files = [read_file(path, index) for index, path in enumerate(paths)]
    failed = {file.index: list(file.errors) for file in files if file.errors}
    # Each attempt writes the files not known to fail in a savepoint; a file that fails
    # rolls the attempt back and the rest are written again without it, so a failing file
    # changes nothing and links into it are skipped as links to nothing.
    while True:
        load = _Load(session, [file for file in files if file.index not in failed], strict=False)
        try:
            async with session.begin_nested():
                await load.run()
        except _FilesFailed as failure:
            for index, problems in failure.problems.items():
                failed.setdefault(index, []).extend(problems)
            continue
        break
    result = LoadReport()
    for file in files:
        if file.index in failed:
            result.files.append(
                FileReport(str(file.path), False, warnings=file.warnings, errors=failed[file.index])
            )
        else:
            result.files.append(load.reports[file.index])
    return result


async def load_builtin(session: AsyncSession) -> LoadReport:
    """Load the shipped resource set (idempotent, as every load)."""
    return await apply_resources(session, read_resources(builtin_paths()))


async def _existing(session: AsyncSession, model: type[Any], name: str) -> Any:
    return (await session.execute(select(model).where(model.name == name))).scalar_one_or_none()


async def _guard(entry: Entry, work: Any) -> Any:
    """Run a service call, naming the entry in any error it raises."""
    try:
        return await work
    except ContractorError as error:
        raise type(error)(entry.problem(error.message), field=error.field) from None


async def _update_pxe(session: AsyncSession, row: PXE, *, boot_script: str, template: str) -> None:
    row.boot_script, row.template = boot_script, template
    await session.flush()


def _cycle(pending: dict[str, Entry]) -> list[Entry]:
    """The entries of ``pending`` that are their own ancestors (through ``pending``)."""

    def reaches(start: str) -> bool:
        seen: set[str] = set()
        todo = [p for p in pending[start].data.get("parents", []) if p in pending]
        while todo:
            name = todo.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                todo += [p for p in pending[name].data.get("parents", []) if p in pending]
        return False

    return [entry for name, entry in sorted(pending.items()) if reaches(name)]


class _Load:
    """One attempt at writing a set of files (all of them, or none when it raises)."""

    def __init__(self, session: AsyncSession, files: list[ResourceFile], *, strict: bool) -> None:
        self.session, self.files, self.strict = session, files, strict
        self.reports = {file.index: FileReport(str(file.path)) for file in files}
        for file in files:
            self.reports[file.index].warnings += file.warnings

    def report(self, of: Entry | SFLink) -> FileReport:
        return self.reports[of.file]

    def _winners(self) -> list[Entry]:
        """Every entry once: one in several files is reported in each, and the last wins."""
        every: dict[tuple[str, str], list[Entry]] = {}
        for file in self.files:
            for entry in file.entries:
                every.setdefault((entry.kind, entry.name), []).append(entry)
        for *earlier, winner in (found for found in every.values() if len(found) > 1):
            for entry in earlier:
                self.report(entry).warnings.append(
                    entry.problem(f"also in {winner.where}, a later file, whose entry wins")
                )
            places = ", ".join(entry.where for entry in earlier)
            self.report(winner).warnings.append(
                winner.problem(f"also in {places} (earlier); this one wins")
            )
        return [found[-1] for found in every.values()]

    async def run(self) -> LoadReport:
        entries = self._winners()
        sflinks = [link for file in self.files for link in file.sflinks]
        for entry in (e for e in entries if e.kind == "script"):
            script = {key: entry.data.get(name, "") for key, name in _SCRIPT_FIELDS}
            await self._entry(
                entry,
                self._apply_named(entry, Script, script, bps.create_script, bps.update_script),
            )
        for entry in (e for e in entries if e.kind == "pxe"):
            pxe = {key: entry.data.get(key, "") for key in ("boot_script", "template")}
            await self._entry(
                entry, self._apply_named(entry, PXE, pxe, bps.create_pxe, _update_pxe)
            )
        # A structure's foundation blueprints are its own list plus the sflinks of this load,
        # so that loading the same files again finds nothing to change.
        linked: dict[str, list[str]] = {}
        for link in sflinks:
            linked.setdefault(link.structure, []).append(link.foundation)
        for kind in ("foundation", "structure"):
            for entry in self._ordered([e for e in entries if e.kind == kind]):
                await self._entry(entry, self._apply_blueprint(entry, linked.get(entry.name, [])))
        for link in sflinks:
            await self._entry(link, self._apply_sflink(link))
        return LoadReport([self.reports[file.index] for file in self.files])

    async def _entry(self, entry: Entry | SFLink, work: Awaitable[None]) -> None:
        """One entry's work; when it fails and the load is not strict, its file fails."""
        try:
            await work
        except ContractorError as error:
            if self.strict:
                raise
            raise _FilesFailed({entry.file: [error.message]}) from None

    def _ordered(self, entries: list[Entry]) -> list[Entry]:
        """Parents defined in the same load first."""
        pending = {e.name: e for e in entries}
        ordered: list[Entry] = []
        while pending:
            ready = [
                e for e in pending.values() if not set(e.data.get("parents", [])) & set(pending)
            ]
            if not ready:
                stuck = _cycle(pending)
                message = f"parents form a cycle among: {', '.join(e.name for e in stuck)}"
                if self.strict:
                    raise InvalidInput(stuck[0].problem(message), field="parents")
                problems: dict[int, list[str]] = {}
                for entry in stuck:
                    problems.setdefault(entry.file, []).append(entry.problem(message))
                raise _FilesFailed(problems)
            for entry in sorted(ready, key=lambda e: e.name):
                ordered.append(entry)
                del pending[entry.name]
        return ordered

    def _note(self, entry: Entry, created: bool, changed: bool) -> None:
        label = f"{entry.kind}.{entry.name}"
        report = self.report(entry)
        if created:
            report.created.append(label)
        elif changed:
            report.updated.append(label)
        else:
            report.unchanged += 1

    async def _apply_named(
        self,
        entry: Entry,
        model: type[Any],
        values: dict[str, str],
        create: Callable[..., Awaitable[Any]],
        update: Callable[..., Awaitable[Any]],
    ) -> None:
        """A script or PXE: created when missing, updated when one of ``values`` differs."""
        row = await _existing(self.session, model, entry.name)
        if row is None:
            await _guard(entry, create(self.session, name=entry.name, **values))
            self._note(entry, True, False)
            return
        changed = any(getattr(row, key) != value for key, value in values.items())
        if changed:
            await _guard(entry, update(self.session, row, **values))
        self._note(entry, False, changed)

    def _types(self, entry: Entry) -> list[str]:
        """The entry's foundation types once each, installed ones in their own spelling."""
        kept: dict[str, str] = {}
        for name in entry.data.get("foundation_types", []):
            plugin = find_foundation_type(name)
            if plugin is None:
                self.report(entry).warnings.append(
                    entry.problem(
                        f"foundation type {name!r} is not installed; kept by name (it takes "
                        "effect once a plugin of that name is installed)"
                    )
                )
            kept.setdefault(name.casefold(), plugin.name if plugin else name)
        return list(kept.values())

    async def _named(
        self, entry: Entry, model: type[Any], names: Iterable[str], what: str, note: str = ""
    ) -> list[Any]:
        """The rows ``names`` name; one that is nowhere is skipped with a warning (or,
        strictly, refused)."""
        rows = []
        for name in names:
            row = await _existing(self.session, model, name)
            if row is not None:
                rows.append(row)
            elif self.strict:
                raise InvalidInput(entry.problem(f"{what} {name!r} does not exist"), field=what)
            else:
                self.report(entry).skipped.append(
                    entry.problem(f"{what} {name!r}{note} {_NOWHERE}")
                )
        return rows

    async def _apply_blueprint(self, entry: Entry, linked: list[str]) -> None:
        session = self.session
        model = FoundationBluePrint if entry.kind == "foundation" else StructureBluePrint
        other = await _existing(session, BluePrint, entry.name)
        if other is not None and not isinstance(other, model):
            raise InvalidInput(
                entry.problem(f"a {other.kind} blueprint with this name exists"), field="name"
            )
        parents = await self._named(
            entry, model, entry.data.get("parents", []), f"{entry.kind} blueprint"
        )
        fields: dict[str, Any] = {"description": entry.data.get("description", "")}
        if "config_values" in entry.data:
            fields["config_values"] = entry.data["config_values"]
        if entry.kind == "foundation":
            fields["foundation_types"] = self._types(entry)
            fields["physical_interface_names"] = entry.data.get("physical_interface_names", [])
            fields["keep_missing_types"] = True
            fields.update({k: entry.data[k] for k in FINGERPRINT_KEYS if k in entry.data})
        else:
            own = list(dict.fromkeys(entry.data.get("foundation_blueprints", [])))
            if self.strict:
                own = list(dict.fromkeys([*own, *linked]))
            rows = await self._named(entry, FoundationBluePrint, own, "foundation blueprint")
            # an sflink to nothing is reported where the sflink is, not here
            for name in dict.fromkeys(linked):
                found = await _existing(session, FoundationBluePrint, name)
                if found is not None and found not in rows:
                    rows.append(found)
            fields["foundation_blueprints"] = rows
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
            changed = await self._blueprint_changes(row, parents, fields)
            if changed:
                await _guard(entry, bps.update_blueprint(session, row, parents=parents, **fields))
        changed |= await self._sync_scripts(entry, row)
        self._note(entry, created, changed)

    async def _foundation_links(self, structure: StructureBluePrint) -> list[int]:
        links = await self.session.execute(
            select(StructureFoundationBluePrint.foundation_blueprint_id)
            .where(StructureFoundationBluePrint.structure_blueprint_id == structure.id)
            .order_by(StructureFoundationBluePrint.position)
        )
        return list(links.scalars())

    async def _blueprint_changes(
        self, row: BluePrint, parents: list[Any], fields: dict[str, Any]
    ) -> bool:
        current_parents = (await bps.parent_links(self.session, [row.id]))[row.id]
        if current_parents != [p.id for p in parents]:
            return True
        for key, value in fields.items():
            if key == "keep_missing_types":
                continue
            if key == "foundation_blueprints":
                assert isinstance(row, StructureBluePrint)
                if await self._foundation_links(row) != [fb.id for fb in value]:
                    return True
            elif key == "config_values":
                if list(row.config_values.items()) != list(value.items()):
                    return True
            elif getattr(row, key) != value:
                return True
        return False

    async def _sync_scripts(self, entry: Entry, row: BluePrint) -> bool:
        """The blueprint's roles become the file's (a role whose script is nowhere is
        skipped, so it is unlinked as a role the file does not have)."""
        wanted: dict[str, str] = {}
        for role, script_name in entry.data.get("scripts", {}).items():
            if await self._named(entry, Script, [script_name], "script", f" (role {role!r})"):
                wanted[role] = script_name
        current = await bps.script_roles(self.session, row)
        if current == wanted:
            return False
        for role, script_name in wanted.items():
            if current.get(role) != script_name:
                script = await _existing(self.session, Script, script_name)
                await _guard(
                    entry, bps.link_script(self.session, blueprint=row, role=role, script=script)
                )
        for role in set(current) - set(wanted):
            await bps.unlink_script(self.session, blueprint=row, role=role)
        return True

    async def _apply_sflink(self, link: SFLink) -> None:
        sbp = await _existing(self.session, StructureBluePrint, link.structure)
        fbp = await _existing(self.session, FoundationBluePrint, link.foundation)
        report = self.reports[link.file]
        if sbp is None or fbp is None:
            kind, missing = (
                ("structure", link.structure) if sbp is None else ("foundation", link.foundation)
            )
            if self.strict:
                raise InvalidInput(
                    f"{link.where}: blueprint {missing!r} does not exist", field="sflinks"
                )
            report.skipped.append(f"{link.where}: {kind} blueprint {missing!r} {_NOWHERE}")
            return
        current = await self._foundation_links(sbp)
        if fbp.id in current:
            report.unchanged += 1
            return
        by_id = {
            b.id: b
            for b in (
                await self.session.execute(
                    select(FoundationBluePrint).where(FoundationBluePrint.id.in_(current))
                )
            ).scalars()
        }
        try:
            await bps.set_foundation_blueprints(
                self.session, sbp, [*(by_id[i] for i in current), fbp]
            )
        except ContractorError as error:
            raise type(error)(f"{link.where}: {error.message}", field=error.field) from None
        report.updated.append(f"sflink {link.structure} -> {link.foundation}")


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
                for key in FINGERPRINT_KEYS:
                    if getattr(row, key) not in (None, []):
                        entry[key] = getattr(row, key)
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
    "FileReport",
    "LoadReport",
    "Resources",
    "apply_resources",
    "builtin_paths",
    "dump_resources",
    "load_builtin",
    "load_resources",
    "read_resources",
]
