"""GraphQL operations counted and timed for ``/metrics`` (``contractor.metrics``).

Labels are bounded by the schema and the settings, never by what a client writes: the
operation's type, its first root field when the schema has that field (``invalid``
otherwise: a document that did not parse or names no such field), and its name only when
``metrics_graphql_operations`` lists it (``other`` for any other name, ``none`` without
one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator

from graphql import GraphQLSchema, OperationDefinitionNode
from graphql.language import FieldNode
from strawberry.extensions import SchemaExtension

from contractor import metrics

__all__ = ["measured_operations"]

INVALID = "invalid"
_INTROSPECTION = frozenset({"__schema", "__type", "__typename"})


def _root_fields(schema: GraphQLSchema) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for kind, root in (
        ("query", schema.query_type),
        ("mutation", schema.mutation_type),
        ("subscription", schema.subscription_type),
    ):
        if root is not None:
            found[kind] = frozenset(root.fields) | _INTROSPECTION
    return found


def measured_operations(listed: Collection[str]) -> Callable[[], SchemaExtension]:
    """The extension (a factory, as strawberry takes it) for a schema whose listed operation
    names are ``listed``."""
    names = frozenset(listed)
    known: dict[int, dict[str, frozenset[str]]] = {}

    class MeasuredOperations(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            meters = metrics.instruments()
            if not meters.enabled:
                yield
                return
            started = time.perf_counter()
            yield
            context = self.execution_context
            kind, root = INVALID, INVALID
            document = context.graphql_document
            operation: OperationDefinitionNode | None = None
            if document is not None:
                wanted = context.operation_name
                for definition in document.definitions:
                    if isinstance(definition, OperationDefinitionNode) and (
                        wanted is None or (definition.name and definition.name.value == wanted)
                    ):
                        operation = definition
                        break
            if operation is not None:
                graphql_schema = context.schema._schema
                fields = known.get(id(graphql_schema))
                if fields is None:
                    fields = known[id(graphql_schema)] = _root_fields(graphql_schema)
                kind = operation.operation.value
                first = next(
                    (s for s in operation.selection_set.selections if isinstance(s, FieldNode)),
                    None,
                )
                if first is not None and first.name.value in fields.get(kind, ()):
                    root = first.name.value
            name = context.operation_name
            label = "none" if name is None else name if name in names else metrics.OTHER
            result = context.result
            failed = bool(context.pre_execution_errors) or bool(result and result.errors)
            meters.graphql(
                kind, root, label, "error" if failed else "ok", time.perf_counter() - started
            )

    return MeasuredOperations
