"""SNMP get and set for ``iputils`` (pysnmp's asyncio client).

A task's ``connection`` is ``{host, port=161, protocol, community}`` for SNMPv1 and SNMPv2c,
or ``{host, port, protocol: SNMPv3, user, auth_key?, priv_key?}`` (SHA authentication and
AES-128 privacy, the security level following the keys given). Communities and keys are
secrets: they are never put in an answer or a failure message.
"""

from __future__ import annotations

import re
from typing import Any

from subcontractor.module import TaskFailed, require, require_host, require_port

__all__ = ["PROTOCOLS", "snmp_get", "snmp_set"]

PROTOCOLS = ("SNMPv1", "SNMPv2c", "SNMPv3")
_OID = re.compile(r"\.?\d+(?:\.\d+)*\Z")


def _oid(parameters: dict[str, Any]) -> str:
    oid: str = require(parameters, "oid", str)
    if not _OID.match(oid):
        raise TaskFailed(
            f"parameter 'oid' must be a numeric OID such as 1.3.6.1.2.1.1.5.0: {oid!r}"
        )
    return oid.lstrip(".")


def _authentication(connection: dict[str, Any]) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        UsmUserData,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
        usmNoAuthProtocol,
        usmNoPrivProtocol,
    )

    protocol = require(connection, "protocol", str)
    if protocol not in PROTOCOLS:
        raise TaskFailed(f"connection.protocol must be one of {', '.join(PROTOCOLS)}: {protocol!r}")
    if protocol != "SNMPv3":
        community = require(connection, "community", str)
        return CommunityData(community, mpModel=0 if protocol == "SNMPv1" else 1)
    user = require(connection, "user", str)
    auth_key = connection.get("auth_key")
    priv_key = connection.get("priv_key")
    for name, key in (("auth_key", auth_key), ("priv_key", priv_key)):
        if key is not None and (not isinstance(key, str) or len(key) < 8):
            raise TaskFailed(f"connection.{name} must be a string of at least 8 characters")
    if priv_key is not None and auth_key is None:
        raise TaskFailed("connection.priv_key needs an auth_key (SNMPv3 has no privacy alone)")
    return UsmUserData(
        user,
        authKey=auth_key,
        privKey=priv_key,
        authProtocol=usmHMACSHAAuthProtocol if auth_key else usmNoAuthProtocol,
        privProtocol=usmAesCfb128Protocol if priv_key else usmNoPrivProtocol,
    )


async def _request(
    parameters: dict[str, Any], *, wait_seconds: float, value: Any = None, setting: bool = False
) -> str:
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        Integer32,
        ObjectIdentity,
        ObjectType,
        OctetString,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
        set_cmd,
    )

    connection = require(parameters, "connection", dict)
    host = require_host(connection, "host", where="connection")
    port = require_port(connection, "port", default=161, where="connection")
    oid = _oid(parameters)
    authentication = _authentication(connection)
    where = f"SNMP {host}:{port} {oid}"
    engine = SnmpEngine()
    try:
        try:
            target = await UdpTransportTarget.create((host, port), timeout=wait_seconds, retries=1)
        except Exception as error:  # pysnmp's own error for a name it cannot resolve
            raise TaskFailed(f"{where}: cannot reach the host ({error})", retryable=True) from None
        if setting:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TaskFailed("parameter 'value' must be a string or a whole number")
            typed = Integer32(value) if isinstance(value, int) else OctetString(value)
            command = set_cmd(
                engine,
                authentication,
                target,
                ContextData(),
                ObjectType(ObjectIdentity(oid), typed),
            )
        else:
            command = get_cmd(
                engine, authentication, target, ContextData(), ObjectType(ObjectIdentity(oid))
            )
        indication, status, _, bindings = await command
    finally:
        engine.close_dispatcher()
    if indication:
        # a timeout is also what a wrong community looks like: the agent stays silent
        raise TaskFailed(f"{where}: {indication}", retryable=True)
    if status:
        raise TaskFailed(f"{where}: the agent refused it ({status.prettyPrint()})")
    (binding,) = bindings
    answer = binding[1]
    if answer.__class__.__name__ in ("NoSuchObject", "NoSuchInstance", "EndOfMibView"):
        raise TaskFailed(f"{where}: the agent has no such object")
    return str(answer.prettyPrint())


async def snmp_get(parameters: dict[str, Any], *, wait_seconds: float) -> dict[str, Any]:
    return {"value": await _request(parameters, wait_seconds=wait_seconds)}


async def snmp_set(parameters: dict[str, Any], *, wait_seconds: float) -> dict[str, Any]:
    if "value" not in parameters:
        raise TaskFailed("parameter 'value' is missing")
    await _request(parameters, wait_seconds=wait_seconds, value=parameters["value"], setting=True)
    return {"done": True}
