"""Blueprints over GraphQL: foundation types that are not installed are kept by name,
listed as missing, kept by an update that names them again, and take effect once a plugin
of that name is installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from contractor.services import resources
from tests.schema.conftest import Client

COMPAT = Path(__file__).parents[1] / "services" / "compat"
TYPES = "... on FoundationBluePrint { foundationTypes missingFoundationTypes }"


async def test_types_that_are_not_installed(
    client: Client, install_amt: Callable[[], None]
) -> None:
    async with client.writer_sessions() as session, session.begin():
        await resources.load_resources(session, [COMPAT / "core.toml", COMPAT / "plugin-amt.toml"])

    async def run(document: str, role: str = "operator") -> Any:
        return (await client.data(document, role=role))["r"]

    query = f'{{ r: blueprint(name: "amt-base") {{ {TYPES} }} }}'
    assert await run(query, "reader") == {
        "foundationTypes": ["AMT"],
        "missingFoundationTypes": ["AMT"],
    }
    base = await run(f'{{ r: blueprint(name: "manual-foundation-base") {{ {TYPES} }} }}')
    assert base == {
        "foundationTypes": ["manual", "ManualComplex"],
        "missingFoundationTypes": ["ManualComplex"],
    }
    # an update may name a kept type again (what it read), not a new one
    kept = await run(
        f'mutation {{ r: updateBlueprint(name: "amt-base", foundationTypes: ["AMT", "Manual"]) '
        f"{{ __typename {TYPES} }} }}"
    )
    assert kept == {
        "__typename": "FoundationBluePrint",
        "foundationTypes": ["AMT", "manual"],
        "missingFoundationTypes": ["AMT"],
    }
    refused = await run(
        'mutation { r: updateBlueprint(name: "amt-base", foundationTypes: ["AMT", "VCenter"]) '
        "{ __typename ... on Error { message field } } }"
    )
    assert refused == {
        "__typename": "InvalidInputError",
        "message": "foundation_types names 'VCenter', which is not an installed foundation "
        "type (installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)",
        "field": "foundation_types",
    }
    install_amt()
    assert await run(query, "reader") == {
        "foundationTypes": ["AMT", "manual"],
        "missingFoundationTypes": [],
    }
    await run('mutation { r: createSite(name: "lab") { __typename } }')
    box = await run(
        'mutation { r: createFoundation(locator: "box", site: "lab", blueprint: "amt-base", '
        'type: "amt") { __typename ... on Foundation { type } } }'
    )
    assert box == {"__typename": "Foundation", "type": "manual"}  # the stand-in's table
