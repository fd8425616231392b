"""List filters as GraphQL inputs, and the service filters they become."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry

from contractor.schema.types import BuildState, FoundationState
from contractor.services import filters

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


@strawberry.input(description="Where: a site, optionally with every site below it.")
class SiteScope:
    name: str
    include_descendants: bool = False


@strawberry.input(description="Which blueprint, optionally with every blueprint inheriting it.")
class BluePrintScope:
    name: str
    include_descendants: bool = False


@strawberry.input
class SiteFilter:
    name: str | None = strawberry.field(default=None, description="Glob, e.g. 'dc1-*'.")
    parent: str | None = strawberry.field(default=None, description="Direct children of this site.")
    within: SiteScope | None = None
    roots_only: bool = False


@strawberry.input
class FoundationFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    type: list[str] | None = None
    state: list[FoundationState] | None = None
    locator: str | None = strawberry.field(default=None, description="Glob, e.g. 'rack1-*'.")
    complex: str | None = strawberry.field(
        default=None, description="Hosted by structures of this complex."
    )
    network: int | None = strawberry.field(
        default=None, description="Has an interface on this network id."
    )
    has_structure: bool | None = None


@strawberry.input
class StructureFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    state: list[BuildState] | None = None
    hostname: str | None = strawberry.field(default=None, description="Glob, e.g. 'web*'.")
    foundation_type: list[str] | None = None
    complex: str | None = strawberry.field(default=None, description="Members of this complex.")
    network: int | None = strawberry.field(
        default=None, description="Whose foundation has an interface on this network id."
    )
    address_block: int | None = strawberry.field(
        default=None, description="Holding an address in this block id."
    )


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, SiteScope | BluePrintScope):
        return filters.Scope(value.name, value.include_descendants)
    return value


def plain(given: Any, into: type[T]) -> T | None:
    """The service filter ``into`` holding what the input ``given`` (None: no filter) says:
    the same fields, enums as their values."""
    if given is None:
        return None
    return into(**{f.name: _plain(getattr(given, f.name)) for f in dataclasses.fields(into)})
