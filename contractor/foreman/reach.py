"""The job-side modules whose functions reach machines from a subcontractor: ``iputils``
(ping, TCP ports, SNMP) and ``ssh`` (commands and files), with the original's names and
keyword parameters. Each function is one task for the subcontractor module of the same name.

Secrets (SNMP communities and SNMPv3 keys, SSH passwords) travel only in the task's
parameters, under keys that name them as secrets (``services.secrets``), so they are masked
wherever a task, an answer or a job is shown; SSH keys never leave the subcontractor (its
``ssh`` module's ``client_keys``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contractor.foreman.remote import RemoteCall
from tscript import ExecutionError, FunctionFactory, ParameterError

__all__ = ["PORT_POLL_SECONDS", "SNMP_PROTOCOLS", "iputils_functions", "ssh_functions"]

PORT_POLL_SECONDS = 5.0
SNMP_PROTOCOLS = ("SNMPv1", "SNMPv2c", "SNMPv3")
_SNMP = {
    "host": ...,
    "oid": ...,
    "protocol": "SNMPv2c",
    "community": None,
    "user": None,
    "auth_key": None,
    "priv_key": None,
    "port": 161,
}


def _remote(
    function: str,
    label: str,
    accepts: dict[str, Any],
    parameters: Callable[[dict[str, Any]], dict[str, Any]] = lambda given: given,
    **options: Any,
) -> FunctionFactory:
    return lambda: RemoteCall(function, parameters, label=label, accepts=accepts, **options)


def _text(parameters: dict[str, Any], name: str, function: str) -> str:
    value = parameters[name]
    if not isinstance(value, str) or not value:
        raise ParameterError(name, f"{function}(): must be a non-empty string")
    return value


def _snmp_connection(function: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def build(given: dict[str, Any]) -> dict[str, Any]:
        protocol = given["protocol"]
        if protocol not in SNMP_PROTOCOLS:
            raise ParameterError(
                "protocol", f"{function}(): must be one of {', '.join(SNMP_PROTOCOLS)}"
            )
        port = given["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ParameterError("port", f"{function}(): must be 1 to 65535")
        connection: dict[str, Any] = {
            "host": _text(given, "host", function),
            "port": port,
            "protocol": protocol,
        }
        if protocol == "SNMPv3":
            connection["user"] = _text(given, "user", function) if given["user"] else None
            if connection["user"] is None:
                raise ParameterError("user", f"{function}(): SNMPv3 needs a user")
            for key in ("auth_key", "priv_key"):
                if given[key] is not None:
                    connection[key] = _text(given, key, function)
        else:
            if given["community"] is None:
                raise ParameterError("community", f"{function}(): {protocol} needs a community")
            connection["community"] = _text(given, "community", function)
        task = {"connection": connection, "oid": _text(given, "oid", function)}
        if "value" in given:
            task["value"] = given["value"]
        return task

    return build


def iputils_functions() -> dict[str, FunctionFactory]:
    port = {"target": ..., "port": ...}
    return {
        "ping": _remote(
            "ping", "ping", {"target": ..., "count": 5}, value=lambda result: result["result"]
        ),
        "port_state": _remote(
            "port_state", "port state", port, value=lambda result: result["state"]
        ),
        "wait_for_port": _remote(
            "port_state",
            "wait for port",
            port,
            until=lambda result: result.get("state") == "open",
            interval=PORT_POLL_SECONDS,
            value=lambda _: True,
        ),
        "snmp_get": _remote(
            "snmp_get",
            "SNMP get",
            _SNMP,
            _snmp_connection("iputils.snmp_get"),
            value=lambda result: str(result["value"]),
        ),
        "snmp_set": _remote(
            "snmp_set",
            "SNMP set",
            {**_SNMP, "value": ...},
            _snmp_connection("iputils.snmp_set"),
            value=lambda _: True,
        ),
    }


def _ssh_task(function: str, names: tuple[str, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def build(given: dict[str, Any]) -> dict[str, Any]:
        task: dict[str, Any] = {"host": _text(given, "host", function), "port": given["port"]}
        for name in ("username", "password"):
            if given[name] is not None:
                task[name] = _text(given, name, function)
        for name in names:
            task[name] = given[name]
        return task

    return build


def ssh_functions() -> dict[str, FunctionFactory]:
    def execute() -> RemoteCall:
        call: RemoteCall

        def value(result: dict[str, Any]) -> Any:
            rc = result["rc"]
            if not isinstance(rc, int):
                raise ValueError('the answer needs an "rc" number')
            expected = call.parameters["expected_rc"]
            if rc == expected:
                return True
            output = str(result.get("output") or "").strip()[-200:]
            tail = f"; it ended: {output}" if output else ""
            return ExecutionError(
                f"ssh.execute on {call.parameters['host']}: the command exited {rc}, "
                f"expected {expected}{tail}"
            )

        call = RemoteCall(
            "execute",
            _ssh_task("ssh.execute", ("command", "timeout")),
            label="ssh execute",
            accepts={
                "host": ...,
                "command": ...,
                "username": None,
                "password": None,
                "timeout": 300,
                "expected_rc": 0,
                "port": 22,
            },
            value=value,
        )
        return call

    return {
        "execute": execute,
        "file": _remote(
            "file",
            "ssh file",
            {
                "host": ...,
                "source": ...,
                "destination": ...,
                "username": None,
                "password": None,
                "port": 22,
            },
            _ssh_task("ssh.file", ("source", "destination")),
            value=lambda _: True,
        ),
    }
