"""The follower checks only the entries a change brings (``Follower._built``): what it builds
is what ``BootData.from_json`` builds from the same entries, entries a change did not touch
are the objects checked before, and a bad entry in a change is refused naming it, leaving
the data held as it was. (Against a real Contractor: test_follower.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from subcontractor.boot.backend import BootData
from subcontractor.boot.follower import Follower
from subcontractor.client import Client


def reservation(number: int, **changes: Any) -> dict[str, Any]:
    entry = {
        "id": f"reservation:{number}",
        "mac": f"52:54:00:00:00:{number:02x}",
        "address": f"198.18.9.{10 + number}",
        "subnet": "198.18.9.0/24",
        "prefix": 24,
        "netmask": "255.255.255.0",
        "gateway": "198.18.9.1",
        "hostname": f"h{number}",
        "domain": None,
        "dns_servers": ["198.18.9.53"],
        "dns_search": [],
        "config_uuid": f"5b0c0000-0000-0000-0000-{number:012d}",
        "boot_file": None,
        "boot_script": f"/boot/5b0c0000-0000-0000-0000-{number:012d}",
    }
    return entry | changes


POOL = {
    "id": "pool:1",
    "start": "198.18.9.100",
    "end": "198.18.9.199",
    "subnet": "198.18.9.0/24",
    "prefix": 24,
    "netmask": "255.255.255.0",
    "gateway": "198.18.9.1",
    "domain": None,
    "dns_servers": [],
    "dns_search": [],
}


class Answers:
    """What Contractor's boot data API answers, one after the other."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)

    async def boot(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.answers.pop(0)


def answer(version: int, reservations: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"site": "s", "version": version, "snapshot": False, "reservations": reservations} | {
        "pools": [],
        "removed": [],
        "cursor": None,
        **more,
    }


async def noop(data: BootData) -> None:
    pass


async def test_a_change_is_checked_alone_and_builds_what_from_json_builds(tmp_path: Path) -> None:
    first = [reservation(n) for n in range(1, 6)]
    changed = reservation(3, mac="52:54:00:aa:00:03")
    answers = Answers(
        answer(1, first, snapshot=True, pools=[POOL]),
        answer(2, [changed, reservation(9)], removed=["reservation:5"]),
    )
    follower = Follower(cast(Client, answers), "s", tmp_path, noop)
    snapshot = await follower.snapshot()
    assert snapshot == BootData.from_json(
        {"site": "s", "version": 1, "reservations": first, "pools": [POOL]}
    )

    data = await follower.changes(1)
    expected = [first[0], first[1], changed, first[3], reservation(9)]
    assert data == BootData.from_json(
        {"site": "s", "version": 2, "reservations": expected, "pools": [POOL]}
    )
    # the untouched entries are the ones checked before, not checked again
    assert data.reservations[0] is snapshot.reservations[0]
    assert data.reservations[3] is snapshot.reservations[3]
    assert data.pools[0] is snapshot.pools[0]
    assert data.reservations[2].mac == "52:54:00:aa:00:03"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"address": "198.18.10.5"}, "reservations[1].address"),
        ({"mac": "not a mac"}, "reservations[1].mac"),
        ({"hostname": 7}, "reservations[1].hostname"),
    ],
)
async def test_a_bad_entry_in_a_change_is_refused_naming_it_and_the_data_stays(
    tmp_path: Path, bad: dict[str, Any], field: str
) -> None:
    first = [reservation(1), reservation(2)]
    answers = Answers(
        answer(1, first, snapshot=True),
        answer(2, [reservation(2, **bad)]),
        answer(3, [reservation(1, hostname="again")]),
    )
    follower = Follower(cast(Client, answers), "s", tmp_path, noop)
    before = await follower.snapshot()
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        await follower.changes(1)
    after = await follower.changes(1)  # the held data is as before the refused change
    assert after.reservations[1] == before.reservations[1]
    assert after.reservations[0].hostname == "again"


async def test_the_same_id_twice_is_refused_as_from_json_refuses_it(tmp_path: Path) -> None:
    duplicate = reservation(2, mac="52:54:00:00:00:01")  # reservation 1's MAC
    answers = Answers(answer(1, [reservation(1), duplicate], snapshot=True))
    follower = Follower(cast(Client, answers), "s", tmp_path, noop)
    with pytest.raises(ValueError, match="reservations") as refused:
        await follower.snapshot()
    with pytest.raises(ValueError, match="reservations") as expected:
        BootData.from_json({"site": "s", "version": 1, "reservations": [reservation(1), duplicate]})
    assert str(refused.value) == str(expected.value)
