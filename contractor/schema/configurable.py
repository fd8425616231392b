"""The ``Configurable`` interface: an object's configuration composed from its layers, and
where each of its keys comes from."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from strawberry.scalars import JSON

from contractor.schema.common import Row
from contractor.schema.context import Info
from contractor.services import config as config_service


@strawberry.interface(description="Anything with a configuration composed from its layers.")
class Configurable(Row):
    row: strawberry.Private[Any]

    @strawberry.field(
        description="The composed configuration (rendered for foundations, structures and "
        "complexes; pass rendered to choose)."
    )
    async def config(self, info: Info, rendered: bool | None = None) -> JSON:
        # batched over every object of the request

        async def batch(session: Any, rows: list[Any]) -> list[Any]:
            return await config_service.composed_configs(
                session,
                rows,
                settings=info.context.settings,
                rendered=rendered,
                cache=info.context.config_cache,
                for_json=True,
            )

        loader = info.context.loaders.custom(f"config-{rendered}", batch)
        return JSON(await loader.load(self.row))

    @strawberry.field(
        description="Where every key of the configuration comes from: the layer that set it "
        "and the later layers that changed, masked or filtered it."
    )
    async def config_explain(self, info: Info) -> JSON:
        async with info.context.sessions() as session:
            explanation = await config_service.explain_config(
                session, self.row, settings=info.context.settings
            )
        # Values keep their Python types in an explanation (datetimes among them): JSON-ready.
        return JSON(json.loads(json.dumps(explanation.to_dict(), default=str)))
