"""Every TScript example of docs/scripts.md parses; the ones that need only the builtins run
to the end with the results the guide implies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tscript import Runner, parse

GUIDE = Path(__file__).parents[2] / "docs" / "scripts.md"
BLOCKS = re.findall(r"^```\n(.*?)^```$", GUIDE.read_text(encoding="utf-8"), re.M | re.S)
MODULES = ("foundation.", "dhcp.", "config.", "structure.")


def test_the_guide_has_its_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("source", BLOCKS)
def test_every_example_parses(source: str) -> None:
    parse(source)


@pytest.mark.parametrize("source", [b for b in BLOCKS if not any(m in b for m in MODULES)])
def test_builtin_examples_run(source: str) -> None:
    runner = Runner(source)
    messages = []
    for _ in range(20):
        result = runner.run(budget=10_000)
        if result.state == "done":
            break
        assert result.state == "message", result
        messages.append(result.message)
    assert result.state == "done"
    assert messages in (["round 1", "round 2", "round 3"], ["keeping [ 'web01', 'web02' ]"])
