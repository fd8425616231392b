"""The TScript modules a job's script sees: ``foundation``, ``structure``, ``config``,
``dhcp``, ``iputils`` and ``signaling``.

A runner runs synchronously, so a ``JobContext`` reads everything the modules show before a
step (``JobContext.load``) and writes what the script changed after it (``apply``), inside
the step's transaction. Every job registers the same six modules, whatever its target, so a
saved runner always finds its modules again.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman.remote import RemoteCall
from contractor.models import (
    PXE,
    BluePrint,
    Dependency,
    Foundation,
    Job,
    RealNetworkInterface,
    Site,
    Structure,
)
from contractor.plugins import foundation_types
from contractor.services.config import ConfigCache, composed_config, config_sources_changed
from contractor.settings import Settings
from tscript import (
    ExternalFunction,
    FunctionFactory,
    Interrupt,
    Module,
    NotDefinedError,
    ParameterError,
    Value,
)

__all__ = ["MODULE_NAMES", "JobContext"]

MODULE_NAMES = ("foundation", "structure", "config", "dhcp", "iputils", "signaling")
_LABEL = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")
PORT_POLL_SECONDS = 5.0


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


def _constant(value: Any) -> Value:
    return Value(lambda: copy.deepcopy(value))


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
    pxe_changes: dict[int, int | None] = field(default_factory=dict)
    config_values: dict[str, Any] | None = None

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
        context = cls(job=job)
        if not for_step:
            # Only a foundation type's functions need a row to be rebuilt; values and the
            # other modules are read by running scripts only.
            foundation_id = job.foundation_id
            structure_id = job.structure_id
            if job.dependency_id is not None:
                dependency = await session.get_one(Dependency, job.dependency_id)
                structure_id = dependency.script_structure_id or dependency.structure_id
            if foundation_id is None and structure_id is not None:
                structure = await session.get_one(Structure, structure_id)
                foundation_id = structure.foundation_id
            if foundation_id is not None:
                context.foundation = await session.get_one(Foundation, foundation_id)
            return context
        # What a script cannot name it does not need: a foundation job reads its structure,
        # and any job its interfaces, only when the script's text mentions them.
        source = job.script_source
        foundation_ref: int | None = job.foundation_id
        if job.foundation_id is not None:
            if "structure" in source:
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
            row = (
                await session.execute(
                    select(Foundation, Site.name, BluePrint.name)
                    .join(Site, Site.id == Foundation.site_id)
                    .join(BluePrint, BluePrint.id == Foundation.blueprint_id)
                    .where(Foundation.id == foundation_ref)
                )
            ).one()
            context.foundation, context.site_name, context.blueprint_name = row
            if "interface" in source or "set_pxe" in source:
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
        if "config." in source or "structure." in source:
            target = context.structure if job.foundation_id is None else context.foundation
            if target is not None:
                context.config = await composed_config(
                    session, target, settings=settings, cache=cache
                )
        if "set_pxe" in source:
            rows = await session.execute(select(PXE.name, PXE.id))
            context.pxe_ids = {name: pxe_id for name, pxe_id in rows}
        return context

    # -- the modules ---------------------------------------------------------------------

    def modules(self) -> list[Module]:
        return [
            self._foundation(),
            self._structure(),
            self._config(),
            _Table("dhcp", functions={"set_pxe": lambda: self._set_pxe}),
            _iputils(),
            self._signaling(),
        ]

    def _foundation(self) -> Module:
        foundation = self.foundation
        if foundation is None:
            return _Table("foundation")
        provisioning = next((i for i in self.interfaces if i.is_provisioning), None)
        values: dict[str, Any] = {
            "id": foundation.id,
            "locator": foundation.locator,
            "type": foundation.type,
            "state": foundation.state,
            "site": self.site_name,
            "blueprint": self.blueprint_name,
            "interfaces": [
                {
                    "name": i.name,
                    "physical_location": i.physical_location,
                    "mac": i.mac,
                    "is_provisioning": i.is_provisioning,
                }
                for i in self.interfaces
            ],
            "provisioning_interface": provisioning.name if provisioning else None,
        }
        functions: Mapping[str, FunctionFactory] = {}
        plugin = foundation_types().get(foundation.type)
        if plugin is not None:
            values.update(plugin.tscript_values(foundation))
            functions = plugin.tscript_functions(foundation)
        return _Table("foundation", {name: _constant(v) for name, v in values.items()}, functions)

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

        def reset() -> bool:
            job.signalled = False
            return True

        def wait_for_completion() -> bool:
            if not job.signalled:
                raise Interrupt("Waiting for the complete signal")
            return True

        return _Table(
            "signaling",
            {"complete": Value(lambda: bool(job.signalled))},
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

    def _set_config(self, *, name: Any, value: Any) -> bool:
        if not isinstance(name, str) or not name:
            raise ParameterError("name", "must be a config key (dotted for nested values)")
        values = self.config_values
        assert values is not None
        parts = name.split(".")
        holder: Any = values
        for index, part in enumerate(parts):
            key: Any = int(part) if part.isdigit() and isinstance(holder, list) else part
            try:
                current = holder[key]
            except (KeyError, IndexError, TypeError):
                raise NotDefinedError(".".join(parts[: index + 1])) from None
            if index == len(parts) - 1:
                holder[key] = copy.deepcopy(value)
            else:
                holder = current
        return True

    # -- writing back ------------------------------------------------------------------

    async def apply(self, session: AsyncSession) -> None:
        """Write what the script changed during the step."""
        changed = False
        for interface in self.interfaces:
            if interface.id in self.pxe_changes:
                interface.pxe_id = self.pxe_changes[interface.id]
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
        if changed:
            config_sources_changed(session)
            await session.flush()


def _iputils() -> Module:
    def ping() -> ExternalFunction:
        return RemoteCall(
            "ping",
            lambda parameters: parameters,
            label="ping",
            accepts={"target": ..., "count": 5},
            value=lambda result: result["result"],
        )

    def port_state() -> ExternalFunction:
        return RemoteCall(
            "port_state",
            lambda parameters: parameters,
            label="port state",
            accepts={"target": ..., "port": ...},
            value=lambda result: result["state"],
        )

    def wait_for_port() -> ExternalFunction:
        return RemoteCall(
            "port_state",
            lambda parameters: parameters,
            label="wait for port",
            accepts={"target": ..., "port": ...},
            until=lambda result: result.get("state") == "open",
            interval=PORT_POLL_SECONDS,
            value=lambda _: True,
        )

    return _Table(
        "iputils",
        functions={"ping": ping, "port_state": port_state, "wait_for_port": wait_for_port},
    )
