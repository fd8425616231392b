"""Foundation types as plugins.

A foundation type is registered under the entry-point group ``contractor.foundation_types``;
the entry point's name is the type's canonical name, the one spelling stored in
``Foundation.type`` and listed in ``FoundationBluePrint.foundation_types``, and its object is a
``FoundationType`` subclass::

    [project.entry-points."contractor.foundation_types"]
    manual = "contractor.plugins.manual:ManualFoundationType"

Type names are matched without regard to case wherever a caller names one (``Simulated``,
``IPMI``, as the original's resource files write them): ``find_foundation_type`` and
``canonical_foundation_type`` turn any spelling into the installed type's own name, so no
two installed types may differ only in case.

Each type owns a joined table extending ``foundation`` (its SQLAlchemy subclass of
``Foundation``), the class list used by ``:Class`` config filters, its own config
attributes and its TScript functions and values (reached in job scripts as
``foundation.<name>``; a function may send its task to a subcontractor module of another
name, ``ipmi`` say, by returning ``(module, handler)`` from its factory).

The script of a *Foundation* job may also assign the fields a type lists in
``settable_fields`` (``foundation.bmc_address = "10.0.0.5"``); each assignment is checked by
``validate_setting``, that is by the type's own ``validate_fields``, so a script obeys the same
rules as the API. Secret fields are never settable by scripts: the value would be written in
the script or held in its variables, which are saved with the job and shown to operators.

A type whose functions need more of the job than its foundation row (a cloud instance's
shape from the blueprint's config values, a client token made of the job's id, fields an
answer records on the foundation) sets ``uses_job`` and overrides ``job_functions``, which
is given a ``JobAccess``.

A *hosted* type (``contractor.plugins.hosted.HostedFoundationType``: a VM, a container)
has its Foundations placed on the members of a Complex of its ``complex_type``; its
``JobAccess.member`` tells its functions how to reach the member carrying the Foundation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from contractor.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from contractor.models.building import Foundation
    from contractor.services.placement import Demand, MemberAccess
    from tscript import FunctionFactory

__all__ = [
    "ENTRY_POINT_GROUP",
    "FoundationType",
    "JobAccess",
    "canonical_foundation_type",
    "find_foundation_type",
    "foundation_types",
    "get_foundation_type",
]

ENTRY_POINT_GROUP = "contractor.foundation_types"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobAccess:
    """What a ``uses_job`` type's functions see of the job that calls them: the job's id, the
    foundation's composed configuration (empty outside a step), its interfaces' names in
    physical-location order, and ``record(fields)``, which sets checked fields on the
    foundation when the step is written (``validate_fields`` applies; secrets refused)."""

    job_id: int | None
    config: Mapping[str, Any] = field(default_factory=dict)
    interface_names: Sequence[str] = ()
    record: Callable[[Mapping[str, Any]], None] = lambda fields: None
    # A hosted type's Foundation: the member carrying it (None: not placed, or not hosted).
    member: MemberAccess | None = None


class FoundationType:
    """What a plugin tells Contractor about its kind of Foundation."""

    name: ClassVar[str]
    model: ClassVar[type[Foundation]]
    class_list: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # Extra fields a caller may set when creating or updating a Foundation of this type.
    fields: ClassVar[tuple[str, ...]] = ()
    # Fields that are secrets (a BMC password): set through the API only; never shown, logged
    # or configured.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Fields a Foundation job's script may read and assign as ``foundation.<field>`` (some of
    # ``fields``, never a secret one).
    settable_fields: ClassVar[tuple[str, ...]] = ()
    # Its functions read the job (``job_functions``): a Foundation job then loads the
    # foundation's configuration and interfaces for every step.
    uses_job: ClassVar[bool] = False
    # The type of Complex whose members carry this type's Foundations (a hosted type's);
    # None: not hosted.
    complex_type: ClassVar[str | None] = None
    # Fields a caller gives at creation that are not stored on the type's row (a hosted
    # type's complex, member and demand): they go to placement, and cannot be updated.
    placement_fields: ClassVar[tuple[str, ...]] = ()

    def demand(self, foundation: Foundation, values: Mapping[str, Any]) -> Demand:
        """What a hosted type's new Foundation takes of its member, from the (checked)
        fields it was created with."""
        raise NotImplementedError(f"foundation type {self.name!r} is not hosted")

    def validate_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check caller-supplied extra fields; return the ones to set on the row."""
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            allowed = ", ".join(self.fields) or "none"
            raise InvalidInput(
                f"foundation type {self.name!r} has no field {unknown[0]!r} (allowed: {allowed})",
                field=unknown[0],
            )
        return dict(values)

    def validate_setting(self, name: str, value: Any) -> Any:
        """Check a value a script assigns to ``foundation.<name>``; return the one to store.
        ``InvalidInput`` names the field and says why."""
        if name in self.secret_fields:
            raise InvalidInput(
                f"{name} is a secret and cannot be set by a script (it would be saved with the "
                "job); set it with updateFoundation",
                field=name,
            )
        if name not in self.settable_fields:
            settable = ", ".join(self.settable_fields) or "none"
            raise InvalidInput(
                f"foundation type {self.name!r} does not let scripts set {name!r} "
                f"(settable: {settable})",
                field=name,
            )
        return self.validate_fields({name: value})[name]

    def config_attributes(self, foundation: Foundation) -> dict[str, Any]:
        """Attributes (``_name``) this type adds to the Foundation's configuration."""
        return {}

    def tscript_values(self, foundation: Foundation) -> dict[str, Any]:
        """Read-only values a job script sees as ``foundation.<name>`` (never secrets); the
        ``settable_fields`` are shown too, under their own names.

        In a Foundation job this and ``tscript_functions`` are given the foundation as the
        script has changed it so far in the step (an unsaved copy once it has assigned a
        field), so what a script reads or sends reflects its own assignments."""
        return {}

    def tscript_functions(self, foundation: Foundation) -> Mapping[str, FunctionFactory]:
        """Functions a job script calls as ``foundation.<name>( ... )``."""
        return {}

    def job_functions(
        self, foundation: Foundation, job: JobAccess
    ) -> Mapping[str, FunctionFactory]:
        """``tscript_functions`` for a job: override it (with ``uses_job``) to read the job."""
        return self.tscript_functions(foundation)

    def interface_map_reader(
        self, foundation: Foundation, locations: Sequence[str]
    ) -> FunctionFactory | None:
        """``foundation.get_interface_map()`` for a type that can read the MACs of its
        machine's interfaces (``locations``: the foundation's physical locations, in order):
        its value maps each physical location to its MAC, as the original's did. None: this
        type cannot read them (the script then has no ``get_interface_map``)."""
        return None


@functools.cache
def foundation_types() -> Mapping[str, FoundationType]:
    """Every installed foundation type by name, loaded once from the entry points."""
    found: dict[str, FoundationType] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except ImportError as error:
            # A plugin that is registered but not importable (uninstalled, or a stale
            # registration) must not take the others down; its foundations cannot be loaded.
            log.error("foundation type %r cannot be imported: %s", entry.name, error)
            continue
        if not (isinstance(cls, type) and issubclass(cls, FoundationType)):
            raise TypeError(f"entry point {entry.name!r} does not name a FoundationType")
        if cls.name != entry.name:
            raise TypeError(f"entry point {entry.name!r} loads type {cls.name!r}")
        wrong = set(cls.settable_fields) - (set(cls.fields) - set(cls.secret_fields))
        if wrong:
            raise TypeError(
                f"foundation type {cls.name!r} lets scripts set {sorted(wrong)!r}, "
                "which are not its fields or are secret"
            )
        same = next((name for name in found if name.casefold() == entry.name.casefold()), None)
        if same is not None:
            raise TypeError(
                f"foundation types {same!r} and {entry.name!r} differ only in case; "
                "type names are matched without regard to case"
            )
        found[entry.name] = cls()
    return found


def find_foundation_type(name: str) -> FoundationType | None:
    """The installed type called ``name`` in any case, or None."""
    if not isinstance(name, str):
        return None
    installed = foundation_types()
    folded = name.casefold()
    return installed.get(name) or next(
        (plugin for known, plugin in installed.items() if known.casefold() == folded), None
    )


def _installed() -> str:
    return f"(installed: {', '.join(sorted(foundation_types())) or 'none'})"


def get_foundation_type(name: str, *, field: str = "type") -> FoundationType:
    """The installed type called ``name`` in any case; ``NotFound`` lists the installed
    ones."""
    plugin = find_foundation_type(name)
    if plugin is None:
        raise NotFound(f"unknown foundation type {name!r} {_installed()}", field=field)
    return plugin


def canonical_foundation_type(name: str, *, field: str) -> str:
    """``name`` in the installed type's own spelling (``"IPMI"`` → ``"ipmi"``);
    ``InvalidInput`` naming ``field`` lists the installed types when none is called so."""
    plugin = find_foundation_type(name)
    if plugin is None:
        raise InvalidInput(
            f"{field} names {name!r}, which is not an installed foundation type {_installed()}",
            field=field,
        )
    return plugin.name
