"""The TScript modules a job's script sees: ``foundation``, ``structure``, ``config``,
``dhcp``, ``iputils``, ``signaling`` and ``ssh`` (``iputils`` and ``ssh`` are in
``foreman.reach``).

A runner runs synchronously, so a ``JobContext`` reads everything the modules show before a
step (``JobContext.load``), records what the script changes during it (assigned foundation
fields, interface MACs, PXE choices, structure config values; later reads in the step see
them) and writes it after the step (``check`` then ``apply``), inside the step's transaction.
A step that aborts the job writes none of it. Every job registers the same seven modules,
whatever its target, so a saved runner always finds its modules again.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.foreman.capacity import (
    complex_membership,
    record_capacity,
    refresh_capacity_function,
)
from contractor.foreman.config_setting import set_config_value
from contractor.foreman.reach import iputils_functions, ssh_functions
from contractor.foreman.recording import AddressPlan, checked_macs, macs_of_interface_list
from contractor.models import (
    PXE,
    BluePrint,
    Complex,
    ComplexMember,
    Dependency,
    Foundation,
    Job,
    RealNetworkInterface,
    Site,
    Structure,
)
from contractor.plugins import FoundationType, JobAccess, foundation_types
from contractor.services import jobs, placement, plainreads
from contractor.services.config import ConfigCache, composed_config, config_sources_changed
from contractor.services.placement import MemberAccess
from contractor.services.recorded_addresses import BlockIndex
from contractor.settings import Settings
from tscript import (
    FunctionFactory,
    Handler,
    Interrupt,
    Module,
    ModuleSignature,
    ParameterError,
    Value,
    describe,
    references,
)

__all__ = ["MODULE_NAMES", "JobContext", "module_signatures"]

MODULE_NAMES: tuple[str, ...] = ("foundation", "structure", "config", "dhcp", "iputils")
MODULE_NAMES += ("signaling", "ssh", "complex")
_LABEL = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")
# The module values and functions that show (or change) the foundation's interfaces.
_SHOW_INTERFACES = (
    ("foundation", "interfaces"),
    ("foundation", "provisioning_interface"),
    ("foundation", "interface_list"),
    ("foundation", "set_interface_macs"),
    ("foundation", "get_interface_map"),
    ("foundation", "set_ip_addresses"),
    ("dhcp", "set_pxe"),
)


class _Table(Module):
    def __init__(
        self,
        name: str,
        values: Mapping[str, Value] | None = None,
        functions: Mapping[str, FunctionFactory] | None = None,
    ) -> None:
        self.name = name
        self._values = dict(values or {})
        self._functions = dict(functions or {})

    def values(self) -> Mapping[str, Value]:
        return self._values

    def functions(self) -> Mapping[str, FunctionFactory]:
        return self._functions


def _no_record(fields: Mapping[str, Any]) -> None:
    """A job that cannot write its foundation's fields records nothing."""


def _constant(value: Any) -> Value:
    return Value(lambda: copy.deepcopy(value))


@functools.cache
def _foundation_query() -> Select[Foundation, str, str]:
    """A foundation with its site's and blueprint's names, built once (on first use, when
    every foundation type's table is mapped): building it costs more than running it."""
    return (
        select(Foundation, Site.name, BluePrint.name)
        .join(Site, Site.id == Foundation.site_id)
        .join(BluePrint, BluePrint.id == Foundation.blueprint_id)
        .where(Foundation.id == bindparam("foundation_id"))
    )


@dataclass
class JobContext:
    """The rows a job's modules read and the changes its script made during one step."""

    job: Job
    foundation: Foundation | None = None
    structure: Structure | None = None
    interfaces: list[RealNetworkInterface] = field(default_factory=list)
    site_name: str | None = None
    blueprint_name: str | None = None
    config: dict[str, Any] | None = None
    pxe_ids: dict[str, int] | None = None
    writable_structure: bool = False
    writable_foundation: bool = False
    pxe_changes: dict[int, int | None] = field(default_factory=dict)
    config_values: dict[str, Any] | None = None
    # A Foundation job's assignments (field -> checked value) and MACs (interface id -> MAC).
    foundation_changes: dict[str, Any] = field(default_factory=dict)
    mac_changes: dict[int, str] = field(default_factory=dict)
    # Fields a function recorded from an answer (an instance id): kept even when the step
    # aborts the job, for they describe what exists outside.
    recorded: dict[str, Any] = field(default_factory=dict)
    # ``foundation.set_ip_addresses``: the site's blocks and the addresses recorded
    addresses: AddressPlan | None = None
    # A hosted type's foundation: how to reach the member carrying it.
    member: MemberAccess | None = None
    # A Structure job's ``complex`` module: the Complex the structure is a member of, and
    # the capacity ``complex.refresh_capacity()`` read (written with the step).
    complex: Complex | None = None
    complex_member: ComplexMember | None = None
    capacity: dict[str, int] | None = None
    _changed_foundation: Foundation | None = field(default=None, repr=False)

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        job: Job,
        *,
        settings: Settings,
        cache: ConfigCache | None = None,
        for_step: bool = True,
    ) -> JobContext:
        """Read what the job's modules show. ``for_step=False`` (to take a result or roll
        back: nothing runs) reads only what rebuilding the waiting function needs."""
        context = cls(job=job, writable_foundation=job.foundation_id is not None)
        if not for_step:
            # Only a foundation type's functions need a row to be rebuilt; values and the
            # other modules are read by running scripts only.
            context.foundation = await jobs.foundation_of(session, job)
            await context._load_member(session)
            return context
        # What a script does not refer to it does not need: a foundation job reads its
        # structure, and any job its interfaces, its configuration and the PXE names, only
        # when the script names what shows them.
        uses = references(job.script_source).uses
        uses_job = False
        foundation_ref: int | None = job.foundation_id
        if job.foundation_id is not None:
            if uses("structure") or uses("foundation", "set_ip_addresses"):
                context.structure = (
                    await session.execute(
                        select(Structure).where(Structure.foundation_id == job.foundation_id)
                    )
                ).scalar_one_or_none()
        else:
            if job.structure_id is not None:
                context.structure = await session.get_one(Structure, job.structure_id)
                context.writable_structure = True
            else:
                assert job.dependency_id is not None
                dependency = await session.get_one(Dependency, job.dependency_id)
                holder = dependency.script_structure_id or dependency.structure_id
                if holder is not None:
                    context.structure = await session.get_one(Structure, holder)
            foundation_ref = context.structure.foundation_id if context.structure else None
        if foundation_ref is not None:
            row = await plainreads.job_foundation(session, foundation_ref)
            if row is None:  # a type whose attributes the plain read does not give
                query = _foundation_query()
                row = (await session.execute(query, {"foundation_id": foundation_ref})).one()
            context.foundation, context.site_name, context.blueprint_name = row
            plugin = foundation_types().get(context.foundation.type)
            uses_job = plugin is not None and plugin.uses_job and job.foundation_id is not None
            await context._load_member(session)  # a hosted type's, in any job
            if uses_job or any(uses(module, name) for module, name in _SHOW_INTERFACES):
                context.interfaces = list(
                    (
                        await session.execute(
                            select(RealNetworkInterface)
                            .where(RealNetworkInterface.foundation_id == foundation_ref)
                            .order_by(RealNetworkInterface.physical_location)
                        )
                    ).scalars()
                )
        if context.structure is not None:
            context.config_values = copy.deepcopy(context.structure.config_values)
            if uses("complex"):
                context.complex_member, context.complex = await complex_membership(
                    session, context.structure
                )
        foundation = context.foundation
        if (
            foundation is not None
            and job.foundation_id is not None
            and uses("foundation", "set_ip_addresses")
        ):
            site = context.site_name or ""
            blocks = await BlockIndex.of_site(session, foundation.site_id, site)
            names = [i.name for i in context.interfaces]
            context.addresses = AddressPlan(context.structure, blocks, names)
        # the structure module's addresses and interfaces come from the configuration
        if uses("config") or uses("structure") or uses_job:
            target = context.structure if job.foundation_id is None else context.foundation
            if target is not None:
                context.config = await composed_config(
                    session, target, settings=settings, cache=cache
                )
        if uses("dhcp", "set_pxe") or uses("signaling", "reset"):
            rows = await session.execute(select(PXE.name, PXE.id))
            context.pxe_ids = {name: pxe_id for name, pxe_id in rows}
        return context

    async def _load_member(self, session: AsyncSession) -> None:
        """A hosted type's foundation (in its own job or its structure's): the member
        carrying it."""
        foundation = self.foundation
        if foundation is None:
            return
        plugin = foundation_types().get(foundation.type)
        if plugin is not None and plugin.complex_type is not None:
            self.member = await placement.member_access(session, foundation)

    # -- the modules ---------------------------------------------------------------------

    def modules(self) -> list[Module]:
        return [
            self._foundation(),
            self._structure(),
            self._config(),
            _Table("dhcp", functions={"set_pxe": lambda: self._set_pxe}),
            _Table("iputils", functions=iputils_functions()),
            self._signaling(),
            _Table("ssh", functions=ssh_functions()),
            self._complex(),
        ]

    def _complex(self) -> Module:
        def record(capacity: dict[str, int]) -> None:
            self.capacity = capacity

        hostname = self.structure.hostname if self.structure is not None else None
        refresh = refresh_capacity_function(hostname, self.complex, self.complex_member, record)
        return _Table("complex", functions={"refresh_capacity": refresh})

    def _foundation(self) -> Module:
        foundation = self.foundation
        if foundation is None:
            return _Table("foundation")
        provisioning = next((i for i in self.interfaces if i.is_provisioning), None)
        constants: dict[str, Any] = {
            "id": foundation.id,
            "locator": foundation.locator,
            "type": foundation.type,
            "state": foundation.state,
            "site": self.site_name,
            "blueprint": self.blueprint_name,
            "provisioning_interface": provisioning.name if provisioning else None,
        }
        values = {name: _constant(v) for name, v in constants.items()}
        values["interfaces"] = Value(self._interface_list)
        values["interface_list"] = Value(self._interface_list)  # the original's name
        functions: dict[str, FunctionFactory] = {}
        if self.writable_foundation:
            functions["set_interface_macs"] = lambda: self._set_interface_macs
            functions["set_ip_addresses"] = lambda: self._set_ip_addresses
        plugin = foundation_types().get(foundation.type)
        if plugin is not None and plugin.interface_map_reader(foundation, []) is not None:
            functions["get_interface_map"] = self._interface_map_reader(plugin)
        if plugin is not None:
            for name in plugin.tscript_values(foundation):
                values[name] = Value(self._plugin_value(plugin, name))
            for name in plugin.settable_fields:
                values[name] = Value(
                    self._field_value(name),
                    self._field_setter(plugin, name) if self.writable_foundation else None,
                )
            for name in plugin.secret_fields:
                # never readable; assigning one says why it is refused
                setter = self._field_setter(plugin, name) if self.writable_foundation else None
                values[name] = Value(None, setter)
            for name in plugin.job_functions(foundation, self._job_access(plugin)):
                functions[name] = self._plugin_function(plugin, name)
        return _Table("foundation", values, functions)

    def _current_foundation(self) -> Foundation:
        """The foundation as the script has changed it in this step: the row itself, or an
        unsaved copy with the assigned fields (never added to the session)."""
        foundation = self.foundation
        assert foundation is not None
        if not self.foundation_changes and not self.recorded:
            return foundation
        if self._changed_foundation is None:
            mapper = inspect(foundation).mapper
            fields = {attr.key: getattr(foundation, attr.key) for attr in mapper.column_attrs}
            fields.update(self.recorded)
            fields.update(self.foundation_changes)
            self._changed_foundation = mapper.class_(**fields)
        return self._changed_foundation

    def _plugin_value(self, plugin: FoundationType, name: str) -> Callable[[], Any]:
        return lambda: copy.deepcopy(plugin.tscript_values(self._current_foundation())[name])

    def _field_value(self, name: str) -> Callable[[], Any]:
        return lambda: copy.deepcopy(getattr(self._current_foundation(), name))

    def _field_setter(self, plugin: FoundationType, name: str) -> Callable[[Any], None]:
        def setter(value: Any) -> None:
            try:
                checked = plugin.validate_setting(name, value)
            except InvalidInput as error:
                raise ParameterError(name, error.message) from None
            self.foundation_changes[name] = checked
            self._changed_foundation = None

        return setter

    def _plugin_function(self, plugin: FoundationType, name: str) -> FunctionFactory:
        # Made at each call from the foundation as changed so far (a BMC address assigned
        # earlier in the step is the one the task goes to).
        def factory() -> Handler | tuple[str, Handler]:
            current = self._current_foundation()
            return plugin.job_functions(current, self._job_access(plugin))[name]()

        return factory

    def _job_access(self, plugin: FoundationType) -> JobAccess:
        def record(fields: Mapping[str, Any]) -> None:
            secret = [name for name in fields if name in plugin.secret_fields]
            if secret:
                raise ValueError(f"a function may not record the secret {secret[0]!r}")
            self.recorded.update(plugin.validate_fields(fields))
            self._changed_foundation = None

        return JobAccess(
            job_id=self.job.id,
            config=self.config or {},
            interface_names=[i.name for i in self.interfaces],
            record=record if self.writable_foundation else _no_record,
            interface_locations=[i.physical_location for i in self.interfaces],
            member=self.member,
        )

    def _interface_map_reader(self, plugin: FoundationType) -> FunctionFactory:
        def factory() -> Handler | tuple[str, Handler]:
            locations = [i.physical_location for i in self.interfaces]
            reader = plugin.interface_map_reader(self._current_foundation(), locations)
            assert reader is not None
            return reader()

        return factory

    def _interface_list(self) -> list[dict[str, Any]]:
        return [
            {
                "name": i.name,
                "physical_location": i.physical_location,
                "mac": self.mac_changes.get(i.id, i.mac),
                "is_provisioning": i.is_provisioning,
            }
            for i in self.interfaces
        ]

    def _structure(self) -> Module:
        structure = self.structure
        if structure is None:
            return _Table("structure")
        config = self.config or {}
        provisioning = config.get("_provisioning_address") or {}
        primary = config.get("_primary_address") or {}
        values = {
            "id": structure.id,
            "hostname": structure.hostname,
            "state": structure.state,
            "config_uuid": structure.config_uuid,
            "provisioning_interface": config.get("_provisioning_interface"),
            "provisioning_ip": provisioning.get("address"),
            "primary_interface": config.get("_primary_interface"),
            "primary_ip": primary.get("address"),
        }
        functions: dict[str, FunctionFactory] = {}
        if self.writable_structure:
            functions["set_config"] = lambda: self._set_config
        return _Table("structure", {name: _constant(v) for name, v in values.items()}, functions)

    def _config(self) -> Module:
        config = self.config or {}
        return _Table(
            "config",
            {key: _constant(value) for key, value in config.items() if _LABEL.match(key)},
        )

    def _signaling(self) -> Module:
        job = self.job

        def reset(*, pxe_name: Any = None) -> bool:
            if pxe_name is not None:
                if not isinstance(pxe_name, str) or not pxe_name:
                    raise ParameterError(
                        "pxe_name", "signaling.reset(): must be the name of a PXE target"
                    )
                if self.pxe_ids is not None and pxe_name not in self.pxe_ids:
                    raise ParameterError(
                        "pxe_name", f'signaling.reset(): no PXE named "{pxe_name}"'
                    )
            jobs.expect_signal(job, pxe_name)
            return True

        def wait_for_completion() -> bool:
            awaited = jobs.awaited_signal(job)
            if not awaited.complete:
                if awaited.pxe_name is None:
                    raise Interrupt("Waiting for the complete signal")
                raise Interrupt(
                    f"Waiting for the complete signal of the boot of PXE {awaited.pxe_name!r}"
                )
            return True

        return _Table(
            "signaling",
            {"complete": Value(lambda: jobs.awaited_signal(job).complete)},
            {"reset": lambda: reset, "wait_for_completion": lambda: wait_for_completion},
        )

    # -- local functions -------------------------------------------------------------

    def _set_pxe(self, *, interface: Any, pxe: Any) -> bool:
        if not isinstance(interface, str):
            raise ParameterError("interface", "must be the name of an interface")
        found = next((i for i in self.interfaces if i.name == interface), None)
        if found is None:
            names = ", ".join(i.name for i in self.interfaces) or "none"
            raise ParameterError("interface", f'no interface "{interface}" (have: {names})')
        pxe_id: int | None = None
        if pxe is not None:
            if not isinstance(pxe, str) or pxe not in (self.pxe_ids or {}):
                raise ParameterError("pxe", f'no PXE named "{pxe}"')
            pxe_id = (self.pxe_ids or {})[pxe]
        self.pxe_changes[found.id] = pxe_id
        return True

    def _set_interface_macs(
        self, *, macs: Any = None, interface_map: Any = None, interface_list: Any = None
    ) -> bool:
        """Set the MACs of the foundation's interfaces from a map of physical location to
        MAC, given as ``macs`` or, as the original's scripts name it, ``interface_map``; or
        from ``interface_list`` (``[{name, mac}]``, by interface name, as a cloud reports)."""
        given = [p for p, v in (("interface_map", interface_map), ("macs", macs)) if v is not None]
        if interface_list is not None:
            given.append("interface_list")
        if len(given) != 1:
            raise ParameterError(
                given[-1] if given else "interface_map",
                "foundation.set_interface_macs(): give either interface_map or macs "
                "(a map of physical location to MAC address), or interface_list",
            )
        param = given[0]
        if interface_map is not None:
            macs = interface_map
        if interface_list is not None:
            macs = macs_of_interface_list(interface_list, self.interfaces)
        changes = checked_macs(macs, param, self.interfaces, self.mac_changes)
        self.mac_changes.update(changes)
        return True

    def _set_ip_addresses(self, *, ip_address_map: Any) -> bool:
        assert self.addresses is not None  # loaded for scripts that call it
        return self.addresses.set_ip_addresses(ip_address_map=ip_address_map)

    def _set_config(self, *, name: Any, value: Any) -> bool:
        """Set ``name`` (dotted path; digits index lists) in the structure's own config
        values (``config_setting.set_config_value``)."""
        assert self.config_values is not None
        set_config_value(self.config_values, name=name, value=value)
        return True

    # -- writing back ------------------------------------------------------------------

    async def check(self, session: AsyncSession) -> ParameterError | None:
        """What the script changed that the database refuses (a MAC another foundation has);
        the step then aborts the job and writes nothing."""
        if not self.mac_changes or self.foundation is None:
            return None
        rows = await session.execute(
            select(
                RealNetworkInterface.mac, RealNetworkInterface.physical_location, Foundation.locator
            )
            .join(Foundation, Foundation.id == RealNetworkInterface.foundation_id)
            .where(
                RealNetworkInterface.mac.in_(sorted(set(self.mac_changes.values()))),
                RealNetworkInterface.foundation_id != self.foundation.id,
            )
        )
        for mac, location, locator in rows:
            ours = next(i for i in self.interfaces if self.mac_changes.get(i.id) == mac)
            return ParameterError(
                "macs",
                f"{ours.physical_location!r}: MAC {mac} is already on interface {location!r} of "
                f"foundation {locator!r}",
            )
        return None

    async def apply_recorded(self, session: AsyncSession) -> bool:
        """Write the fields functions recorded from answers (also when the step aborts the
        job); whether there were any."""
        foundation = self.foundation
        if foundation is None or not self.recorded:
            return False
        for name, value in self.recorded.items():
            setattr(foundation, name, value)
        config_sources_changed(session)
        await session.flush()
        return True

    async def apply(self, session: AsyncSession) -> None:
        """Write what the script changed during the step."""
        changed = await self.apply_recorded(session)
        for interface in self.interfaces:
            if interface.id in self.pxe_changes:
                interface.pxe_id = self.pxe_changes[interface.id]
                changed = True
        foundation = self.foundation
        if foundation is not None and self.foundation_changes:
            for name, value in self.foundation_changes.items():
                setattr(foundation, name, value)
            changed = True  # its fields feed config attributes (``_ipmi_address``)
        moving = [i for i in self.interfaces if self.mac_changes.get(i.id, i.mac) != i.mac]
        if moving:
            # The unique index on MACs is checked per statement: clear first, so MACs may
            # move between this foundation's interfaces.
            for interface in moving:
                interface.mac = None
            await session.flush()
            for interface in moving:
                interface.mac = self.mac_changes[interface.id]
            changed = True
        structure = self.structure
        if (
            self.writable_structure
            and structure is not None
            and self.config_values is not None
            and self.config_values != structure.config_values
        ):
            structure.config_values = copy.deepcopy(self.config_values)
            changed = True
        if self.addresses is not None and await self.addresses.apply(session):
            changed = True
        if self.capacity is not None and self.complex_member is not None:
            await record_capacity(session, self.complex_member, self.capacity)
        if changed:
            config_sources_changed(session)
            await session.flush()


def module_signatures() -> list[ModuleSignature]:
    """What a job's script may call and read in the modules above, for ``tscript check``
    (the ``tscript.modules`` entry point): a Structure job's modules and a Foundation job's
    for every installed foundation type. A function that two types both have takes what
    either takes; ``config`` shows any value (its keys depend on the target)."""
    job = Job()
    contexts = [JobContext(job=job, structure=Structure(), writable_structure=True)]
    for plugin in foundation_types().values():
        foundation = plugin.model()
        foundation.type = plugin.name
        contexts.append(JobContext(job=job, foundation=foundation, writable_foundation=True))
    merged: dict[str, ModuleSignature] = {}
    for context in contexts:
        for module in context.modules():
            found = describe(module, values=module.name != "config")
            known = merged.get(found.name)
            merged[found.name] = found if known is None else known.merged(found)
    return [merged[name] for name in MODULE_NAMES]
