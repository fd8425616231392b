"""``redfish``: power, boot, virtual media and NIC MACs through a BMC's Redfish service.

Plain HTTPS + JSON with httpx (async, already a dependency; docs/foundations.md says why not
sushy). Every function takes ``connection {host, port=443, username, password, system_id,
verify=true, ca_bundle}``; ``system_id`` empty: the BMC's only system (several: an error
listing them). Requests use HTTP Basic authentication.

* ``set_power {state}`` with ``on``, ``off`` (ForceOff), ``soft_off`` (GracefulShutdown, wait
  up to ``soft_off_wait``), ``reset`` (ForceRestart) or ``soft_reset`` (GracefulRestart) →
  ``{state}`` as read back. A BMC applies a reset some seconds after accepting it (the
  emulator 1 to 11 s), so the state is read every ``confirm_interval`` until it is the one
  asked for; not there within ``confirm_timeout`` is a retryable failure. A soft off that the
  OS ignores answers the state it found (``on``), and Contractor's ``power_off`` goes on to a
  forced off.
* ``power_state`` → ``{state}``: ``on``, ``off``, ``powering on``, ``powering off``,
  ``paused``.
* ``set_boot_device {device, continuous=false}`` → ``{device, target, enabled}`` (the
  ``BootSourceOverride`` the BMC shows afterwards).
* ``insert_media {url}`` → ``{inserted: true, image, device}`` into the first virtual CD/DVD;
  ``eject_media`` → ``{inserted: false}``.
* ``get_interface_map {physical_locations}`` → ``{interface_map, interfaces}``: the MACs of
  the system's EthernetInterfaces, paired with the locations by Id, the rest in order.
* ``link_test {count, delay}`` → ``{success, answered}``.

One operation at a time per BMC. Wrong credentials (401/403), a certificate not trusted, a
system that is not there and answers that are not Redfish are final failures naming the BMC
(and the field); a BMC that does not answer, or answers 5xx, is retryable. The password never
reaches a message.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from subcontractor.module import (
    Function,
    Module,
    TaskFailed,
    probes,
    require,
    require_host,
    require_numbers,
    require_port,
)

__all__ = ["RedfishModule"]

RESET = {
    "on": "On",
    "off": "ForceOff",
    "soft_off": "GracefulShutdown",
    "reset": "ForceRestart",
    "soft_reset": "GracefulRestart",
}
POWER_STATES = {
    "On": "on",
    "Off": "off",
    "PoweringOn": "powering on",
    "PoweringOff": "powering off",
    "Paused": "paused",
}
TARGETS = {
    "pxe": "Pxe",
    "network": "Pxe",
    "disk": "Hdd",
    "hd": "Hdd",
    "hdd": "Hdd",
    "cd": "Cd",
    "cdrom": "Cd",
    "dvd": "Cd",
    "usb": "Usb",
    "bios": "BiosSetup",
    "none": "None",
}
SYSTEMS = "/redfish/v1/Systems"
_MAC = re.compile(r"(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\Z")


class RedfishOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_timeout: float = Field(default=15.0, gt=0, description="One HTTP request.")
    media_timeout: float = Field(
        default=300.0, gt=0, description="InsertMedia (some BMCs fetch the image first)."
    )
    confirm_timeout: float = Field(default=60.0, gt=0, description="For a power change to show.")
    confirm_interval: float = Field(default=1.0, gt=0)
    soft_off_wait: float = Field(default=30.0, ge=0)
    ca_bundle: str | None = Field(
        default=None, description="A PEM file trusted for BMCs without a ca_bundle of their own."
    )


@dataclass(frozen=True)
class _Bmc:
    host: str
    port: int
    username: str
    password: str
    system_id: str | None
    verify: bool
    ca_bundle: str | None

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _bmc(parameters: dict[str, Any]) -> _Bmc:
    connection = require(parameters, "connection", dict)
    system_id = connection.get("system_id")
    if system_id is not None and (not isinstance(system_id, str) or "/" in system_id):
        raise TaskFailed(f"connection 'system_id' must be a Redfish id, got {system_id!r}")
    verify = connection.get("verify", True)
    if not isinstance(verify, bool):
        raise TaskFailed("connection 'verify' must be true or false")
    bundle = connection.get("ca_bundle")
    if bundle is not None and not isinstance(bundle, str):
        raise TaskFailed("connection 'ca_bundle' must be PEM text")
    return _Bmc(
        host=require_host(connection, "host", where="connection"),
        port=require_port(connection, "port", default=443, where="connection"),
        username=require(connection, "username", str),
        password=require(connection, "password", str),
        system_id=system_id or None,
        verify=verify,
        ca_bundle=bundle or None,
    )


def _ssl_context(bmc: _Bmc, default_bundle: str | None) -> ssl.SSLContext:
    if not bmc.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        if bmc.ca_bundle:
            return ssl.create_default_context(cadata=bmc.ca_bundle)
        return ssl.create_default_context(cafile=default_bundle)
    except (ssl.SSLError, OSError, ValueError) as error:
        where = "the foundation's ca_bundle" if bmc.ca_bundle else f"ca_bundle {default_bundle}"
        raise TaskFailed(f"BMC {bmc.label}: {where} cannot be used: {error}") from None


def _untrusted(error: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _detail(response: httpx.Response) -> str:
    """The Redfish error message of an answer, if it has one."""
    try:
        body = response.json()
        message = body["error"].get("message") or body["error"].get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return f": {str(message)[:300]}" if message else ""


def _link(body: dict[str, Any], *path: str) -> str | None:
    value: Any = body
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    link = value.get("@odata.id") if isinstance(value, dict) else None
    return link if isinstance(link, str) and link.startswith("/") else None


def _members(bmc: _Bmc, body: dict[str, Any], where: str) -> list[str]:
    members = body.get("Members")
    links = [m.get("@odata.id") for m in members] if isinstance(members, list) else None
    if links is None or not all(isinstance(link, str) and link.startswith("/") for link in links):
        raise TaskFailed(f"BMC {bmc.label}: {where} has no Members list of @odata.id links")
    return [str(link) for link in links]


class _Resource:
    """A Redfish resource as read: its path, its JSON and its ETag."""

    def __init__(self, path: str, body: dict[str, Any], etag: str | None) -> None:
        self.path = path
        self.body = body
        self.etag = etag

    def action(self, name: str, default: str) -> str:
        target = self.body.get("Actions", {}).get(name, {})
        found = target.get("target") if isinstance(target, dict) else None
        return found if isinstance(found, str) and found.startswith("/") else default


class RedfishModule(Module):
    Options = RedfishOptions

    def __init__(self, name: str, options: BaseModel, *, concurrency: int) -> None:
        super().__init__(name, options, concurrency=concurrency)
        assert isinstance(options, RedfishOptions)
        self.settings = options
        self.clients: dict[tuple[str, int, bool, str | None], httpx.AsyncClient] = {}
        self.locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.system_paths: dict[tuple[str, int, str | None], str] = {}

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.aclose()

    def functions(self) -> Mapping[str, Function]:
        return {
            "set_power": self.set_power,
            "power_state": self.power_state,
            "set_boot_device": self.set_boot_device,
            "insert_media": self.insert_media,
            "eject_media": self.eject_media,
            "get_interface_map": self.get_interface_map,
            "link_test": self.link_test,
        }

    # -- HTTP ----------------------------------------------------------------------------

    def _client(self, bmc: _Bmc) -> httpx.AsyncClient:
        key = (bmc.host, bmc.port, bmc.verify, bmc.ca_bundle)
        client = self.clients.get(key)
        if client is None:
            host = f"[{bmc.host}]" if ":" in bmc.host else bmc.host
            client = httpx.AsyncClient(
                base_url=f"https://{host}:{bmc.port}",
                verify=_ssl_context(bmc, self.settings.ca_bundle),
                timeout=self.settings.request_timeout,
                trust_env=False,  # BMC networks are private: no proxy from the environment
                headers={"Accept": "application/json", "OData-Version": "4.0"},
            )
            self.clients[key] = client
        return client

    async def _request(
        self,
        bmc: _Bmc,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        etag: str | None = None,
        seconds: float | None = None,
    ) -> tuple[dict[str, Any] | None, str | None]:
        client = self._client(bmc)
        headers = {"If-Match": etag} if etag else {}
        try:
            response = await client.request(
                method,
                path,
                json=body,
                headers=headers,
                auth=httpx.BasicAuth(bmc.username, bmc.password),
                timeout=seconds if seconds is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            limit = seconds or self.settings.request_timeout
            raise TaskFailed(
                f"BMC {bmc.label} did not answer {method} {path} within {limit:g}s",
                retryable=True,
            ) from None
        except httpx.TransportError as error:
            untrusted = _untrusted(error)
            if untrusted is not None:
                raise TaskFailed(
                    f"BMC {bmc.label}: its TLS certificate is not trusted "
                    f"({untrusted.verify_message}); give the foundation the BMC's certificate "
                    "or its CA as ca_bundle (or set verify_tls to false)"
                ) from None
            raise TaskFailed(
                f"BMC {bmc.label} did not answer ({type(error).__name__}: {error})",
                retryable=True,
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise TaskFailed(
                f"BMC {bmc.label} refused the credentials of user {bmc.username!r} "
                f"(HTTP {status}{_detail(response)}); fix the foundation's username/password, "
                "then reset the job"
            )
        if status >= 400:
            raise TaskFailed(
                f"BMC {bmc.label}: {method} {path} answered HTTP {status}{_detail(response)}",
                retryable=status >= 500 or status == 429,
            )
        if status == 204 or not response.content:
            return None, response.headers.get("ETag")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TaskFailed(
                f"BMC {bmc.label}: {method} {path} answered HTTP {status} with something that "
                "is not a Redfish JSON object"
            )
        return answer, response.headers.get("ETag")

    async def _get(self, bmc: _Bmc, path: str) -> _Resource:
        body, etag = await self._request(bmc, "GET", path)
        if body is None:
            raise TaskFailed(f"BMC {bmc.label}: GET {path} answered no JSON object")
        return _Resource(path, body, etag)

    def _lock(self, bmc: _Bmc) -> asyncio.Lock:
        return self.locks.setdefault((bmc.host, bmc.port), asyncio.Lock())

    # -- the system ----------------------------------------------------------------------

    async def _system(self, bmc: _Bmc) -> _Resource:
        key = (bmc.host, bmc.port, bmc.system_id)
        path = self.system_paths.get(key)
        if path is None:
            if bmc.system_id is not None:
                path = f"{SYSTEMS}/{bmc.system_id}"
            else:
                collection = await self._get(bmc, SYSTEMS)
                members = _members(bmc, collection.body, SYSTEMS)
                if len(members) != 1:
                    ids = ", ".join(m.rsplit("/", 1)[-1] for m in members) or "none"
                    raise TaskFailed(
                        f"BMC {bmc.label} has {len(members)} systems ({ids}); set the "
                        "foundation's system_id to the one it is"
                    )
                path = members[0]
        try:
            system = await self._get(bmc, path)
        except TaskFailed as failure:
            if bmc.system_id is not None and "HTTP 404" in failure.message:
                raise TaskFailed(
                    f"BMC {bmc.label} has no system {bmc.system_id!r} (the foundation's "
                    "system_id; leave it empty when the BMC has one system)"
                ) from None
            raise
        self.system_paths[key] = path
        return system

    def _power_of(self, bmc: _Bmc, system: _Resource) -> str:
        state = system.body.get("PowerState")
        if state not in POWER_STATES:
            raise TaskFailed(
                f"BMC {bmc.label}: {system.path} has PowerState {state!r}, not one of "
                f"{', '.join(POWER_STATES)}"
            )
        return POWER_STATES[state]

    async def _wait_power(self, bmc: _Bmc, path: str, want: str, limit: float) -> str:
        """Read the power state until it is ``want`` or ``limit`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            state = self._power_of(bmc, await self._get(bmc, path))
            if state == want or loop.time() >= deadline:
                return state
            await asyncio.sleep(min(self.settings.confirm_interval, deadline - loop.time()))

    # -- functions -----------------------------------------------------------------------

    async def set_power(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        want = require(parameters, "state", str)
        if want not in RESET:
            raise TaskFailed(f"parameter 'state' must be one of {', '.join(RESET)}, got {want!r}")
        target = "off" if want in ("off", "soft_off") else "on"
        settings = self.settings
        async with self._lock(bmc):
            system = await self._system(bmc)
            current = self._power_of(bmc, system)
            if want in ("on", "off", "soft_off") and current == target:
                return {"state": current}
            action = system.body.get("Actions", {}).get("#ComputerSystem.Reset", {})
            offered = action.get("ResetType@Redfish.AllowableValues")
            if isinstance(offered, list) and RESET[want] not in offered:
                if want == "soft_off":
                    return {"state": current}  # no graceful shutdown: a forced off follows
                raise TaskFailed(
                    f"BMC {bmc.label} does not offer ResetType {RESET[want]} "
                    f"(offers {', '.join(map(str, offered))})"
                )
            reset = system.action(
                "#ComputerSystem.Reset", f"{system.path}/Actions/ComputerSystem.Reset"
            )
            await self._request(bmc, "POST", reset, {"ResetType": RESET[want]})
            limit = settings.soft_off_wait if want == "soft_off" else settings.confirm_timeout
            state = await self._wait_power(bmc, system.path, target, limit)
        if state != target and want != "soft_off":
            raise TaskFailed(
                f"BMC {bmc.label}: power still {state} {limit:g}s after asking for {want}",
                retryable=True,
            )
        return {"state": state}

    async def power_state(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        async with self._lock(bmc):
            return {"state": self._power_of(bmc, await self._system(bmc))}

    async def set_boot_device(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        device = require(parameters, "device", str)
        if device not in TARGETS:
            raise TaskFailed(
                f"parameter 'device' must be one of {', '.join(TARGETS)}, got {device!r}"
            )
        continuous = parameters.get("continuous", False)
        if not isinstance(continuous, bool):
            raise TaskFailed("parameter 'continuous' must be true or false")
        target = TARGETS[device]
        enabled = "Disabled" if target == "None" else "Continuous" if continuous else "Once"
        async with self._lock(bmc):
            system = await self._system(bmc)
            boot = system.body.get("Boot")
            if not isinstance(boot, dict):
                raise TaskFailed(f"BMC {bmc.label}: {system.path} has no Boot object")
            offered = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
            if isinstance(offered, list) and target != "None" and target not in offered:
                raise TaskFailed(
                    f"BMC {bmc.label} cannot boot {system.path} from {target} "
                    f"(BootSourceOverrideTarget offers {', '.join(map(str, offered))})"
                )
            change = {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}
            await self._request(bmc, "PATCH", system.path, {"Boot": change}, etag=system.etag)
            shown = (await self._get(bmc, system.path)).body.get("Boot") or {}
        if shown.get("BootSourceOverrideTarget") != target:
            raise TaskFailed(
                f"BMC {bmc.label}: BootSourceOverrideTarget is "
                f"{shown.get('BootSourceOverrideTarget')!r} after setting {target!r}",
                retryable=True,
            )
        return {
            "device": device,
            "target": target,
            "enabled": shown.get("BootSourceOverrideEnabled"),
        }

    async def _media_device(self, bmc: _Bmc, system: _Resource) -> _Resource:
        """The system's first virtual CD/DVD drive (VirtualMedia under the system, or under
        the manager that manages it)."""
        collection = _link(system.body, "VirtualMedia")
        if collection is None:
            managers = system.body.get("Links", {}).get("ManagedBy") or []
            for manager in managers if isinstance(managers, list) else []:
                link = manager.get("@odata.id") if isinstance(manager, dict) else None
                if isinstance(link, str):
                    collection = _link((await self._get(bmc, link)).body, "VirtualMedia")
                    if collection is not None:
                        break
        if collection is None:
            raise TaskFailed(f"BMC {bmc.label}: {system.path} has no VirtualMedia")
        seen = []
        for member in _members(bmc, (await self._get(bmc, collection)).body, collection):
            device = await self._get(bmc, member)
            types = device.body.get("MediaTypes") or []
            if isinstance(types, list) and ({"CD", "DVD"} & set(map(str, types))):
                return device
            seen.append(f"{device.body.get('Id', member)} {types}")
        raise TaskFailed(
            f"BMC {bmc.label} has no virtual CD/DVD drive (VirtualMedia: "
            f"{', '.join(seen) or 'none'})"
        )

    async def _eject(self, bmc: _Bmc, device: _Resource) -> None:
        eject = device.action("#VirtualMedia.EjectMedia", "")
        if eject:
            await self._request(bmc, "POST", eject, {})
        else:  # BMCs from before the actions (Redfish 2017) take a PATCH
            await self._request(
                bmc, "PATCH", device.path, {"Image": None, "Inserted": False}, etag=device.etag
            )

    async def insert_media(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        url = require(parameters, "url", str)
        async with self._lock(bmc):
            device = await self._media_device(bmc, await self._system(bmc))
            name = device.body.get("Id", device.path)
            if device.body.get("Inserted") is True and device.body.get("Image") == url:
                return {"inserted": True, "image": url, "device": name}
            if device.body.get("Inserted") is True:
                await self._eject(bmc, device)
            change = {"Image": url, "Inserted": True, "WriteProtected": True}
            insert = device.action("#VirtualMedia.InsertMedia", "")
            if insert:
                await self._request(
                    bmc, "POST", insert, change, seconds=self.settings.media_timeout
                )
            else:
                await self._request(
                    bmc, "PATCH", device.path, change, seconds=self.settings.media_timeout
                )
            shown = (await self._get(bmc, device.path)).body
        if shown.get("Inserted") is not True or shown.get("Image") != url:
            raise TaskFailed(
                f"BMC {bmc.label}: {device.path} shows Image {shown.get('Image')!r}, Inserted "
                f"{shown.get('Inserted')!r} after inserting {url}",
                retryable=True,
            )
        return {"inserted": True, "image": url, "device": name}

    async def eject_media(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        async with self._lock(bmc):
            device = await self._media_device(bmc, await self._system(bmc))
            if device.body.get("Inserted") is True or device.body.get("Image"):
                await self._eject(bmc, device)
                shown = (await self._get(bmc, device.path)).body
                if shown.get("Inserted") is True:
                    raise TaskFailed(
                        f"BMC {bmc.label}: {device.path} still shows media inserted",
                        retryable=True,
                    )
        return {"inserted": False, "device": device.body.get("Id", device.path)}

    async def get_interface_map(self, parameters: dict[str, Any]) -> dict[str, Any]:
        bmc = _bmc(parameters)
        locations = parameters.get("physical_locations", [])
        if not isinstance(locations, list) or not all(isinstance(x, str) for x in locations):
            raise TaskFailed("parameter 'physical_locations' must be a list of strings")
        async with self._lock(bmc):
            system = await self._system(bmc)
            collection = _link(system.body, "EthernetInterfaces")
            if collection is None:
                raise TaskFailed(f"BMC {bmc.label}: {system.path} has no EthernetInterfaces")
            nics: list[dict[str, str]] = []
            for member in _members(bmc, (await self._get(bmc, collection)).body, collection):
                body = (await self._get(bmc, member)).body
                mac = body.get("MACAddress") or body.get("PermanentMACAddress")
                if not isinstance(mac, str) or not _MAC.match(mac):
                    raise TaskFailed(f"BMC {bmc.label}: {member} has MACAddress {mac!r}")
                nics.append({"id": str(body.get("Id", member)), "mac": mac.lower()})
        if len(nics) < len(locations):
            raise TaskFailed(
                f"BMC {bmc.label}: {system.path} has {len(nics)} Ethernet interfaces "
                f"({', '.join(n['id'] for n in nics) or 'none'}); the foundation has "
                f"{len(locations)} ({', '.join(locations)})"
            )
        # an interface named like a physical location is that one; the rest in the BMC's order
        by_id = {nic["id"]: nic for nic in nics}
        mapping = {loc: by_id[loc]["mac"] for loc in locations if loc in by_id}
        rest = iter(nic for nic in nics if nic["mac"] not in mapping.values())
        for location in locations:
            if location not in mapping:
                mapping[location] = next(rest)["mac"]
        return {"interface_map": mapping, "interfaces": nics}

    async def link_test(self, parameters: dict[str, Any]) -> dict[str, Any]:
        _bmc(parameters)  # a malformed connection fails now, not as a failed link
        count, delay = require_numbers(parameters, {"count": 3, "delay": 1})
        answers = probes(lambda: self.power_state(parameters), int(count), float(delay))
        answered = sum([answer async for answer in answers])
        return {"success": answered == int(count) > 0, "answered": answered}
