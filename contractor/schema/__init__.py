"""The GraphQL schema: the inventory graph, its mutations and inventory questions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from contractor.schema import errors, types
from contractor.schema.errors import ERROR_HANDLERS
from contractor.schema.events import EventMutation, EventQuery, EventSubscription
from contractor.schema.inventory import InventoryQuery
from contractor.schema.jobs import JobMutation, JobQuery, JobSubscription
from contractor.schema.mutations import Mutation
from contractor.schema.prefetch import attribute
from contractor.schema.queries import Query
from contractor.schema.view import should_mask
from contractor.settings import Settings

__all__ = ["build_schema"]


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    extensions: list[object] = [
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
    ]
    if not settings.debug:
        extensions.append(lambda: MaskErrors(should_mask_error=should_mask))
    return strawberry.Schema(
        query=merge_types("Query", (Query, InventoryQuery, JobQuery, EventQuery)),
        mutation=merge_types("Mutation", (Mutation, JobMutation, EventMutation)),
        subscription=merge_types("Subscription", (EventSubscription, JobSubscription)),
        types=[
            types.FoundationBluePrint,
            types.StructureBluePrint,
            types.Address,
            types.ReservedAddress,
            types.DynamicAddress,
            *errors.ERROR_TYPES,
        ],
        extensions=extensions,  # type: ignore[arg-type]
        exception_handlers=ERROR_HANDLERS,
        config=StrawberryConfig(default_resolver=attribute),
    )
