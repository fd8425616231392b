"""Reading one BluePrint resource file: the original's TOML dialect, its tables and keys.

``read_file`` parses a file (``toml_dialect``: bare config keys are read as the original did,
with a warning) and checks everything that needs no database: known tables and keys, names,
every script with the TScript parser, every config key. It never raises for what is in the
file: each problem is kept on the ``ResourceFile`` as ``FILE:LINE: ENTRY: problem`` (or
``FILE:LINE:COLUMN: ...`` for TOML syntax), so each file of a load stands or falls alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tscript
from contractor.config import validate_config_values
from contractor.errors import ConfigError
from contractor.services.toml_dialect import TomlSyntaxError, loads
from contractor.services.validation import NAME_RE

__all__ = ["FINGERPRINT_KEYS", "KINDS", "Entry", "ResourceFile", "SFLink", "read_file"]

KINDS = ("script", "pxe", "foundation", "structure")
# A foundation blueprint's fingerprint requirements (``docs/boot.md``, "Discovery"): kept
# only when the file has them, as config_values.
FINGERPRINT_KEYS = ("min_cpu_count", "min_memory_mb", "required_pci_devices", "required_disks_gb")
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
        *FINGERPRINT_KEYS,
    },
    "structure": {"description", "parents", "foundation_blueprints", "scripts", "config_values"},
}
STRING_KEYS = {
    "script": ("description", "script"),
    "pxe": ("boot_script", "template"),
    "foundation": ("description",),
    "structure": ("description",),
}
LIST_KEYS = ("parents", "foundation_blueprints", "foundation_types", "physical_interface_names")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    data: dict[str, Any]
    where: str  # FILE:LINE, for messages
    file: int = 0  # the file's place in its load

    def problem(self, message: str) -> str:
        return f"{self.where}: {self.kind}.{self.name}: {message}"


@dataclass(frozen=True)
class SFLink:
    structure: str
    foundation: str
    where: str  # FILE: sflinks[INDEX]
    file: int = 0


@dataclass
class ResourceFile:
    path: Path
    index: int
    entries: list[Entry] = field(default_factory=list)
    sflinks: list[SFLink] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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


def read_file(path: Path, index: int = 0) -> ResourceFile:
    """One file, parsed and checked; its problems are on the result (``errors``)."""
    read = ResourceFile(path, index)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        read.errors.append(f"{path}: cannot read: {error}")
        return read
    try:
        document, warnings = loads(text)
    except TomlSyntaxError as error:
        read.errors.append(f"{path}:{error.line}:{error.column}: not valid TOML: {error.message}")
        return read
    read.warnings += [f"{path}:{warning}" for warning in warnings]
    lines = _header_lines(text)
    for key, value in document.items():
        if key == "sflinks":
            _read_sflinks(read, value)
        elif key not in KINDS:
            read.errors.append(
                f"{path}: unknown table {key!r} (expected one of: sflinks, {', '.join(KINDS)})"
            )
        elif not isinstance(value, dict):
            read.errors.append(f"{path}: {key} must be a table of named entries")
        else:
            for name, data in value.items():
                where = f"{path}:{lines.get((key, name), 1)}"
                entry = Entry(key, name, data if isinstance(data, dict) else {}, where, index)
                if not isinstance(data, dict):
                    read.errors.append(entry.problem("must be a table"))
                    continue
                read.errors += _check(entry)
                read.entries.append(entry)
    return read


def _read_sflinks(read: ResourceFile, value: Any) -> None:
    if not isinstance(value, list):
        read.errors.append(f"{read.path}: sflinks must be a list of [structure, foundation] pairs")
        return
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(item, str) for item in pair)
        ):
            read.errors.append(f"{read.path}: sflinks[{index}] must be [structure, foundation]")
            continue
        read.sflinks.append(SFLink(pair[0], pair[1], f"{read.path}: sflinks[{index}]", read.index))


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
    for key in LIST_KEYS:
        value = entry.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(entry.problem(f"{key} must be a list of names"))
    for key in ("min_cpu_count", "min_memory_mb"):
        value = entry.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(entry.problem(f"{key} must be a whole number"))
    pci = entry.data.get("required_pci_devices", [])
    if not isinstance(pci, list) or not all(isinstance(v, str) for v in pci):
        problems.append(entry.problem("required_pci_devices must be a list of 'vendor:device'"))
    disks = entry.data.get("required_disks_gb", [])
    if not isinstance(disks, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in disks
    ):
        problems.append(entry.problem("required_disks_gb must be a list of whole numbers"))
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
