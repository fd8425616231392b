"""``iputils.snmp_get`` and ``snmp_set`` against a real Net-SNMP agent on loopback: SNMPv2c
with a read and a write community, SNMPv3 with SHA and AES, and the failures (a wrong
community, an unknown object, bad parameters), none of which shows a secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subcontractor.module import TaskFailed
from tests.subcontractor.peers import Snmpd, snmpd
from tests.subcontractor.test_modules import module

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Snmpd]:
    with snmpd(tmp_path / "snmpd") as running:
        yield running


def v2c(agent: Snmpd, community: str) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": agent.port, "protocol": "SNMPv2c", "community": community}


async def test_get_and_set_with_communities(agent: Snmpd) -> None:
    iputils = module("iputils", snmp_timeout=2).functions()
    answer = await iputils["snmp_get"](
        {"connection": v2c(agent, agent.read_community), "oid": SYS_DESCR}
    )
    assert answer == {"value": "contractor test agent"}
    done = await iputils["snmp_set"](
        {"connection": v2c(agent, agent.write_community), "oid": SYS_CONTACT, "value": "ops@x"}
    )
    assert done == {"done": True}
    assert agent.get(SYS_CONTACT) == "ops@x"
    # the read community may not write: the agent refuses, and nothing changed
    with pytest.raises(TaskFailed) as refused:
        await iputils["snmp_set"](
            {"connection": v2c(agent, agent.read_community), "oid": SYS_CONTACT, "value": "no"}
        )
    assert "refused" in refused.value.message
    assert agent.read_community not in refused.value.message
    assert agent.get(SYS_CONTACT) == "ops@x"


async def test_snmpv3_with_authentication_and_privacy(agent: Snmpd) -> None:
    iputils = module("iputils", snmp_timeout=2).functions()
    connection = {
        "host": "127.0.0.1",
        "port": agent.port,
        "protocol": "SNMPv3",
        "user": agent.user,
        "auth_key": agent.auth_key,
        "priv_key": agent.priv_key,
    }
    await iputils["snmp_set"]({"connection": connection, "oid": SYS_CONTACT, "value": "v3@x"})
    assert agent.get(SYS_CONTACT) == "v3@x"
    answer = await iputils["snmp_get"]({"connection": connection, "oid": SYS_CONTACT})
    assert answer == {"value": "v3@x"}
    wrong = dict(connection, auth_key="not-the-auth-key")
    with pytest.raises(TaskFailed) as failure:
        await iputils["snmp_get"]({"connection": wrong, "oid": SYS_CONTACT})
    assert "not-the-auth-key" not in failure.value.message
    assert agent.priv_key not in failure.value.message


async def test_failures_name_the_problem_and_never_the_community(agent: Snmpd) -> None:
    iputils = module("iputils", snmp_timeout=0.5).functions()
    silent = await _failure(
        iputils, {"connection": v2c(agent, "wrong-community-123"), "oid": SYS_DESCR}
    )
    # an agent ignores a wrong community: it looks like a timeout, which may pass
    assert silent.retryable
    assert f"SNMP 127.0.0.1:{agent.port} {SYS_DESCR}" in silent.message
    assert "wrong-community-123" not in silent.message
    missing = await _failure(
        iputils, {"connection": v2c(agent, agent.read_community), "oid": "1.3.6.1.4.1.99999.1.0"}
    )
    assert "no such object" in missing.message
    for parameters, expected in [
        ({"connection": v2c(agent, "x"), "oid": "sysDescr"}, "numeric OID"),
        ({"connection": {**v2c(agent, "x"), "protocol": "SNMPv4"}, "oid": SYS_DESCR}, "SNMPv4"),
        ({"connection": {**v2c(agent, "x"), "port": 0}, "oid": SYS_DESCR}, "connection 'port'"),
        ({"connection": {"host": "127.0.0.1", "protocol": "SNMPv3"}, "oid": SYS_DESCR}, "'user'"),
    ]:
        failure = await _failure(iputils, parameters)
        assert expected in failure.message
        assert not failure.retryable


async def _failure(functions: Any, parameters: dict[str, Any]) -> TaskFailed:
    with pytest.raises(TaskFailed) as failure:
        await functions["snmp_get"](parameters)
    return failure.value
