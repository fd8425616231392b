"""The GraphQL schema, one module per domain: each holds its types, its part of ``Query`` and
its part of ``Mutation``, merged here in the order the committed ``schema.graphql`` shows."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from contractor.schema import (
    auth,
    blueprint,
    boot,
    building,
    complexes,
    directory,
    discovery,
    dns,
    dns_push,
    errors,
    events,
    inventory,
    jobs,
    network,
    site,
)
from contractor.schema.anonymous import AnonymousOnlyLogin
from contractor.schema.bounded import BoundedMessages
from contractor.schema.execution import Executor
from contractor.schema.measured import measured_operations
from contractor.schema.prefetch import attribute
from contractor.schema.reporting import ContractorSchema, MaskUnexpected
from contractor.schema.scalars import SCALARS
from contractor.settings import Settings

__all__ = ["build_schema"]

QUERIES = (
    auth.CallerQuery,
    site.SiteQuery,
    blueprint.BlueprintQuery,
    building.BuildingQuery,
    complexes.ComplexQuery,
    network.NetworkQuery,
    boot.BootQuery,
    discovery.DiscoveryQuery,
    directory.DirectoryQuery,
    dns.DnsQuery,
    dns_push.DnsPushQuery,
    auth.UserQuery,
    inventory.InventoryQuery,
    jobs.JobQuery,
    events.EventQuery,
)
MUTATIONS = (
    site.SiteMutation,
    directory.DirectoryMutation,
    blueprint.BlueprintMutation,
    building.BuildingMutation,
    complexes.ComplexMutation,
    network.NetworkMutation,
    boot.BootMutation,
    discovery.DiscoveryMutation,
    auth.AuthMutation,
    jobs.JobMutation,
    events.EventMutation,
    dns_push.DnsPushMutation,
)
SUBSCRIPTIONS = (events.EventSubscription, jobs.JobSubscription)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    extensions: list[object] = [
        measured_operations(settings.metrics_graphql_operations),
        AnonymousOnlyLogin,
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        BoundedMessages,
    ]
    if not settings.debug:
        extensions.append(MaskUnexpected)
    return ContractorSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS),
        types=[
            blueprint.FoundationBluePrint,
            blueprint.StructureBluePrint,
            network.Address,
            network.ReservedAddress,
            network.DynamicAddress,
            *errors.ERROR_TYPES,
        ],
        extensions=extensions,  # type: ignore[arg-type]
        exception_handlers=errors.ERROR_HANDLERS,
        config=StrawberryConfig(default_resolver=attribute, scalar_map=SCALARS),
        execution_context_class=Executor,
    )
