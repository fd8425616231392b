"""The committed schema.graphql is the product surface: it must match the code."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from contractor.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_committed_sdl_matches_the_code() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    committed = (ROOT / "schema.graphql").read_text()
    assert result.output == committed, (
        "schema.graphql is stale: run `contractor schema > schema.graphql` and commit it"
    )
