"""``libvirt``: virtual machines for Contractor's ``libvirt`` foundations, with libvirt-python.

Every function but ``host_capacity`` takes ``connection {foundation, member?, endpoint,
username?, password?, uuid}``: the libvirt URI of the host (``qemu:///system``,
``qemu+tcp://host/system``, ``test:///default``), the credentials libvirt asks for (SASL), the
foundation's locator and the complex member (a structure) for messages, and the domain's
uuid, which Contractor chooses (one per foundation and create job) so that a create sent again
finds the domain it defined before instead of defining a second one.

* ``create {domain {name, cpu_count, memory_mb, disks [GB...], pool, network? | bridge?,
  interfaces [physical location...], boot_order [network | disk...]}}`` → ``{uuid, state,
  interface_map {location: MAC}}``: the disks are made as volumes in the storage pool (named
  after the domain and its uuid), the NICs on the libvirt network or host bridge (their MACs
  chosen by libvirt), and the domain is defined, not started. When libvirt refuses any of
  it, whatever this call made is removed again before the failure is reported.
* ``start`` → ``{state: on}``; ``stop {timeout?}`` → ``{state: off}``: an ACPI shutdown, then
  a forced destroy when the guest has not gone off after ``timeout`` seconds (the module's
  ``shutdown_timeout`` by default), confirmed by the domain's state; ``set_power {state: on |
  off | soft_off}`` (what Contractor's power functions send; ``soft_off`` only asks the
  guest) → ``{state}``; ``power_state`` → ``{state: on | off | paused | ...}``; ``state`` →
  ``{state: <libvirt's name>, defined}``.
* ``destroy`` → ``{uuid, state: gone}``: stopped, undefined, and its volumes deleted (also
  the ones a failed create may have left); a domain libvirt no longer knows counts as gone.
* ``set_boot_device {device: network | disk}`` redefines the boot order (network first, or
  disk only); ``get_interface_map {physical_locations}`` → ``{interface_map}`` pairs the
  domain's NICs in order with the locations.
* ``host_capacity {endpoint, username?, password?, pool?}`` → ``{cpus, memory_mb, disk_gb}``:
  the host's CPUs and memory, and the space left in the pool (in all active pools when none
  is named), for Contractor's placement.

A host that does not answer fails retryable; a definition libvirt refuses, a missing pool or
network and malformed parameters fail for good. Every message names the foundation and the
member, never a password.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import libvirt
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import Function, Module, TaskFailed, require
from subcontractor.modules.libvirt_domain import (
    NAME,
    Shape,
    Target,
    disk_paths,
    domain_xml,
    interface_map,
    set_boot_order,
    volume_name,
)

__all__ = ["LibvirtModule", "LibvirtOptions"]

T = TypeVar("T")

URI = re.compile(r"[a-z][a-z0-9+]*://[^\s]*\Z")
# virDomainState → what Contractor's power functions compare with
STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
POWER = {"running": "on", "blocked": "on", "shutdown": "on", "shutoff": "off", "crashed": "off"}
UNREACHABLE = {
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_INTERNAL_ERROR,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
}

_quiet = threading.Lock()
_quieted = False


def _quiet_libvirt() -> None:
    """libvirt prints every error to stderr unless a handler takes them: the errors are
    raised and reported instead."""
    global _quieted
    with _quiet:
        if not _quieted:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _quieted = True


class LibvirtOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_endpoint: str = Field(
        default="qemu:///system", description="For members whose endpoint is empty."
    )
    domain_type: str = Field(
        default="qemu",
        pattern=r"^(qemu|kvm)$",
        description="qemu (software emulation) or kvm, for hypervisors other than the test driver.",
    )
    shutdown_timeout: float = Field(
        default=60.0, ge=0, description="How long a guest has to go off before it is destroyed."
    )
    confirm_timeout: float = Field(default=30.0, gt=0, description="For a state to show.")
    confirm_interval: float = Field(default=0.5, gt=0)
    volume_format: str = Field(default="raw", pattern=r"^(raw|qcow2)$")


class _Unreachable(Exception):
    """The host did not answer."""


class LibvirtModule(Module):
    Options = LibvirtOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, LibvirtOptions)
        self.settings = options
        self.limiter = anyio.CapacityLimiter(concurrency)
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str | None, str | None], Any] = {}
        _quiet_libvirt()

    def functions(self) -> Mapping[str, Function]:
        return {
            "create": self.create,
            "start": self.start,
            "stop": self.stop,
            "set_power": self.set_power,
            "power_state": self.power_state,
            "state": self.state,
            "destroy": self.destroy,
            "set_boot_device": self.set_boot_device,
            "get_interface_map": self.get_interface_map,
            "host_capacity": self.host_capacity,
        }

    # -- reaching the host ---------------------------------------------------------------

    async def _run(self, target: Target, action: str, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in a worker thread; libvirt's errors become ``TaskFailed``
        naming the foundation, the member and ``action``."""

        def call() -> T:
            conn = self._connection(target)
            try:
                return work(conn)
            except libvirt.libvirtError as error:
                if error.get_error_code() in UNREACHABLE and not _alive(conn):
                    self._forget(target, conn)
                    raise _Unreachable(str(error)) from None
                raise TaskFailed(
                    f"{target.where(action)}: libvirt refused: {_text(error)}"
                ) from None

        try:
            return await anyio.to_thread.run_sync(call, limiter=self.limiter)
        except _Unreachable as error:
            raise TaskFailed(
                f"{target.where('endpoint')}: the libvirt host {target.endpoint} does not "
                f"answer: {error}",
                retryable=True,
            ) from None

    def _connection(self, target: Target) -> Any:
        """The open connection to the host with these credentials, or a new one. Connections
        are kept: a handshake per task is slow, and a test driver's state lives only while
        a connection to it is open."""
        key = (target.endpoint, target.username, target.password)
        with self._lock:
            conn = self._connections.get(key)
        if conn is not None and _alive(conn):
            return conn
        if conn is not None:
            self._forget(target, conn)
        fresh = _open(target)
        with self._lock:
            other = self._connections.get(key)
            if other is None or other is conn:
                self._connections[key] = fresh
                return fresh
        # another thread opened one meanwhile: use that, close this
        with contextlib.suppress(libvirt.libvirtError):
            fresh.close()
        return other

    def _forget(self, target: Target, conn: Any) -> None:
        key = (target.endpoint, target.username, target.password)
        with self._lock:
            if self._connections.get(key) is conn:
                del self._connections[key]
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    async def aclose(self) -> None:
        with self._lock:
            held, self._connections = list(self._connections.values()), {}
        for conn in held:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _target(self, parameters: Mapping[str, Any], *, flat: bool = False) -> Target:
        holder = parameters if flat else require(parameters, "connection", dict)
        locator = holder.get("foundation", "") if flat else require(holder, "foundation", str)
        member = holder.get("member") or ""
        if not isinstance(locator, str) or not isinstance(member, str):
            raise TaskFailed("parameters 'foundation' and 'member' must be strings")
        endpoint = holder.get("endpoint") or self.settings.default_endpoint
        if not isinstance(endpoint, str):
            raise TaskFailed("parameter 'endpoint' must be str")
        where = Target(locator, member, endpoint, None, None).where("endpoint")
        if not URI.match(endpoint):
            raise TaskFailed(f"{where}: {endpoint!r} is not a libvirt URI (like qemu:///system)")
        username, password = holder.get("username") or None, holder.get("password") or None
        if not all(isinstance(v, str | None) for v in (username, password)):
            raise TaskFailed(f"{where}: username and password must be strings")
        return Target(locator, member, endpoint, username, password)

    def _uuid(self, target: Target, parameters: Mapping[str, Any]) -> str:
        connection = require(parameters, "connection", dict)
        text = require(connection, "uuid", str)
        try:
            return str(uuidlib.UUID(text))
        except ValueError:
            raise TaskFailed(f"{target.where('uuid')}: {text!r} is not a uuid") from None

    # -- the functions -------------------------------------------------------------------

    async def create(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)
        shape = Shape.of(target, require(parameters, "domain", dict))
        settings = self.settings

        def work(conn: Any) -> dict[str, Any]:
            found = _lookup(conn, domain_uuid)
            if found is None:
                found = _define(target, conn, domain_uuid, shape, settings)
            elif found.name() != shape.name:
                raise TaskFailed(
                    f"{target.where('uuid')}: domain {domain_uuid} is named "
                    f"{found.name()!r}, not {shape.name!r}"
                )
            return {
                "uuid": domain_uuid,
                "state": _power(found),
                "interface_map": interface_map(target, found, shape.interfaces),
            }

        return await self._run(target, "define", work)

    async def start(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return await self._power_on(parameters)

    async def _power_on(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)

        def work(conn: Any) -> None:
            domain = _domain(target, conn, domain_uuid)
            if not domain.isActive():
                domain.create()

        await self._run(target, "start", work)
        await self._settle(target, domain_uuid, "on", self.settings.confirm_timeout)
        return {"state": "on"}

    async def stop(self, parameters: dict[str, Any]) -> dict[str, Any]:
        timeout = parameters.get("timeout", self.settings.shutdown_timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise TaskFailed(f"parameter 'timeout' must be seconds (0 or more), got {timeout!r}")
        return await self._power_off(parameters, float(timeout), force=True)

    async def _power_off(
        self, parameters: dict[str, Any], seconds: float, *, force: bool
    ) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)

        def shutdown(conn: Any) -> bool:
            domain = _domain(target, conn, domain_uuid)
            if not domain.isActive():
                return False
            domain.shutdown()  # ACPI: the guest decides
            return True

        if await self._run(target, "shutdown", shutdown):
            state = await self._wait(target, domain_uuid, "off", seconds)
            if state != "off" and force:

                def destroy(conn: Any) -> None:
                    domain = _domain(target, conn, domain_uuid)
                    if domain.isActive():
                        domain.destroy()

                await self._run(target, "destroy", destroy)
            elif state != "off":
                return {"state": state}
        await self._settle(target, domain_uuid, "off", self.settings.confirm_timeout)
        return {"state": "off"}

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        want = require(parameters, "state", str)
        if want == "on":
            return await self._power_on(parameters)
        if want == "off":
            return await self._power_off(parameters, self.settings.shutdown_timeout, force=True)
        if want == "soft_off":
            return await self._power_off(parameters, self.settings.shutdown_timeout, force=False)
        target = self._target(parameters)
        raise TaskFailed(f"{target.where('state')}: {want!r} is not on, off or soft_off")

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)
        return {
            "state": await self._run(
                target, "state", lambda c: _power(_domain(target, c, domain_uuid))
            )
        }

    async def state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)

        def work(conn: Any) -> dict[str, Any]:
            domain = _lookup(conn, domain_uuid)
            if domain is None:
                return {"state": "undefined", "defined": False}
            return {"state": _state_name(domain), "defined": True}

        return await self._run(target, "state", work)

    async def destroy(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)

        def work(conn: Any) -> None:
            domain = _lookup(conn, domain_uuid)
            if domain is not None:
                paths = disk_paths(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                if domain.isActive():
                    domain.destroy()
                _undefine(domain)
                for path in paths:
                    _delete_volume_at(conn, path)
            _delete_left_volumes(conn, domain_uuid)

        await self._run(target, "undefine", work)
        return {"uuid": domain_uuid, "state": "gone"}

    async def set_boot_device(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)
        device = require(parameters, "device", str)
        order = {"network": ["network", "disk"], "pxe": ["network", "disk"], "disk": ["disk"]}
        if device.lower() not in order:
            raise TaskFailed(f"{target.where('device')}: {device!r} is not network or disk")

        def work(conn: Any) -> None:
            domain = _domain(target, conn, domain_uuid)
            tree = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            set_boot_order(tree.find("os"), order[device.lower()])
            conn.defineXML(ET.tostring(tree, encoding="unicode"))

        await self._run(target, "set boot device", work)
        return {"device": device.lower()}

    async def get_interface_map(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters)
        domain_uuid = self._uuid(target, parameters)
        locations = require(parameters, "physical_locations", list)
        if not all(isinstance(location, str) for location in locations):
            raise TaskFailed(f"{target.where('physical_locations')}: must be strings")

        def work(conn: Any) -> dict[str, Any]:
            domain = _domain(target, conn, domain_uuid)
            return {"interface_map": interface_map(target, domain, locations)}

        return await self._run(target, "interface map", work)

    async def host_capacity(self, parameters: dict[str, Any]) -> dict[str, Any]:
        target = self._target(parameters, flat=True)
        pool_name = parameters.get("pool")
        if pool_name is not None and (not isinstance(pool_name, str) or not NAME.match(pool_name)):
            raise TaskFailed(f"{target.where('pool')}: {pool_name!r} is not a pool name")

        def work(conn: Any) -> dict[str, Any]:
            info = conn.getInfo()
            if pool_name is not None:
                pools = [_pool(target, conn, pool_name)]
            else:
                pools = [p for p in conn.listAllStoragePools() if p.isActive()]
            free = 0
            for pool in pools:
                pool.refresh(0)
                free += int(pool.info()[3])
            return {"cpus": int(info[2]), "memory_mb": int(info[1]), "disk_gb": free // 2**30}

        return await self._run(target, "host capacity", work)

    # -- waiting for a state --------------------------------------------------------------

    async def _wait(self, target: Target, domain_uuid: str, wanted: str, seconds: float) -> str:
        """The power state once it is ``wanted``, or the last one seen after ``seconds``."""
        deadline = anyio.current_time() + seconds
        while True:
            state = await self._run(
                target, "state", lambda c: _power(_domain(target, c, domain_uuid))
            )
            if state == wanted or anyio.current_time() >= deadline:
                return state
            await anyio.sleep(min(self.settings.confirm_interval, max(seconds, 0.01)))

    async def _settle(self, target: Target, domain_uuid: str, wanted: str, seconds: float) -> None:
        state = await self._wait(target, domain_uuid, wanted, seconds)
        if state != wanted:
            raise TaskFailed(
                f"{target.where('state')}: domain {domain_uuid} is {state}, not {wanted}, "
                f"after {seconds:g} s",
                retryable=True,
            )


def _open(target: Target) -> Any:
    """A connection to the host, answering libvirt's questions for credentials with the
    task's (never any other)."""

    def answer(credentials: list[list[Any]], _: Any) -> int:
        for credential in credentials:
            if credential[0] == libvirt.VIR_CRED_AUTHNAME:
                credential[4] = target.username or ""
            elif credential[0] == libvirt.VIR_CRED_PASSPHRASE:
                credential[4] = target.password or ""
            else:
                return -1
        return 0

    auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
    try:
        return libvirt.openAuth(target.endpoint, auth, 0)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_AUTH_FAILED:
            raise TaskFailed(
                f"{target.where('username, password')}: the libvirt host {target.endpoint} "
                "refused the credentials"
            ) from None
        raise _Unreachable(_text(error)) from None


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive()) and conn.getLibVersion() > 0
    except libvirt.libvirtError:
        return False


def _text(error: libvirt.libvirtError) -> str:
    return str(error.get_error_message() or error).strip()


def _lookup(conn: Any, domain_uuid: str) -> Any:
    try:
        return conn.lookupByUUIDString(domain_uuid)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _domain(target: Target, conn: Any, domain_uuid: str) -> Any:
    found = _lookup(conn, domain_uuid)
    if found is None:
        raise TaskFailed(f"{target.where('uuid')}: the host has no domain {domain_uuid}")
    return found


def _pool(target: Target, conn: Any, name: str) -> Any:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise TaskFailed(
                f"{target.where('pool')}: the host has no storage pool {name!r}"
            ) from None
        raise
    if not pool.isActive():
        raise TaskFailed(f"{target.where('pool')}: storage pool {name!r} is not active")
    return pool


def _state_name(domain: Any) -> str:
    state = domain.state()[0]
    return STATE_NAMES.get(state, f"unknown {state}")


def _power(domain: Any) -> str:
    name = _state_name(domain)
    return POWER.get(name, name)


def _define(
    target: Target, conn: Any, domain_uuid: str, shape: Shape, settings: LibvirtOptions
) -> Any:
    """Volumes made and the domain defined; on any refusal, what was made is removed."""
    pool = _pool(target, conn, shape.pool)
    if shape.network is not None:
        try:
            conn.networkLookupByName(shape.network)
        except libvirt.libvirtError:
            raise TaskFailed(
                f"{target.where('network')}: the host has no network {shape.network!r}"
            ) from None
    try:
        other = conn.lookupByName(shape.name)
    except libvirt.libvirtError:
        other = None
    if other is not None:
        raise TaskFailed(
            f"{target.where('name')}: the host already has a domain named {shape.name!r} "
            f"(uuid {other.UUIDString()}), not this foundation's {domain_uuid}"
        )
    made: list[Any] = []
    try:
        paths = []
        for index, size in enumerate(shape.disks):
            volume = _volume(pool, volume_name(shape, domain_uuid, index), size, settings)
            made.append(volume)
            paths.append(volume.path())
        kind = "test" if conn.getType().lower() == "test" else settings.domain_type
        domain = conn.defineXML(domain_xml(kind, domain_uuid, shape, paths, settings.volume_format))
    except BaseException:
        for volume in made:
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
        raise
    return domain


def _volume(pool: Any, name: str, size_gb: int, settings: LibvirtOptions) -> Any:
    try:
        return pool.storageVolLookupByName(name)  # made by an earlier try of this create
    except libvirt.libvirtError:
        pass
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="G").text = str(size_gb)
    ET.SubElement(volume, "allocation").text = "0"
    ET.SubElement(ET.SubElement(volume, "target"), "format", type=settings.volume_format)
    return pool.createXML(ET.tostring(volume, encoding="unicode"), 0)


def _undefine(domain: Any) -> None:
    flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    try:
        domain.undefineFlags(flags)
    except libvirt.libvirtError:
        domain.undefine()


def _delete_volume_at(conn: Any, path: str) -> None:
    try:
        volume = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return  # not a pool's volume (or gone): not ours to delete
    volume.delete(0)


def _delete_left_volumes(conn: Any, domain_uuid: str) -> None:
    """The volumes of this domain's uuid still in any active pool (a create that failed
    half-way, a domain undefined by hand)."""
    for pool in conn.listAllStoragePools():
        if not pool.isActive():
            continue
        for volume in pool.listAllVolumes():
            if f"-{domain_uuid}-disk" in volume.name():
                volume.delete(0)
