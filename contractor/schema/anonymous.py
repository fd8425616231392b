"""What a caller without a token may run: ``login`` and ``__typename``, nothing else.

The rule is decided on the operation GraphQL is about to validate and execute (the parsed
document, in ``AnonymousOnlyLogin``, a schema extension), not on the request's text: the
root fields an operation reaches are collected with every fragment expanded, inline and
named, nested at any depth. ``@skip`` and ``@include`` are not evaluated: a field counts
whether or not a directive would leave it out, so the rule never depends on variables and
never admits more than runs. An operation that reaches any other field, a fragment that does
not exist, or a document in which no single operation is selected, is refused with the
usual authentication error (HTTP 401 on ``/graphql``, see ``schema.view``); nothing of it
runs and its validation errors are not shown (they would describe the schema).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from contractor.errors import Unauthorized

__all__ = [
    "ANONYMOUS_FIELDS",
    "AUTHENTICATION_REQUIRED",
    "AnonymousOnlyLogin",
    "anonymous_may_run",
    "root_fields",
]

ANONYMOUS_FIELDS = frozenset({"login", "__typename"})
AUTHENTICATION_REQUIRED = (
    "authentication required: send 'Authorization: Bearer <token>' "
    "(a token from 'contractor token create' or the login mutation)"
)


def _selected(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation GraphQL executes for ``operation_name``, as graphql-core picks it."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


def root_fields(document: DocumentNode, operation_name: str | None) -> frozenset[str] | None:
    """Every root field the selected operation may reach, fragments expanded (a spread of a
    fragment that does not exist counts as the field ``...name``, which no rule admits);
    None when no single operation is selected."""
    operation = _selected(document, operation_name)
    if operation is None:
        return None
    fragments: dict[str, list[FragmentDefinitionNode]] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments.setdefault(definition.name.value, []).append(definition)
    names: set[str] = set()
    expanded: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)  # the field, whatever its alias
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in fragments:
                    names.add(f"...{name}")
                elif name not in expanded:  # a cycle is invalid anyway; expand each once
                    expanded.add(name)
                    pending.extend(fragment.selection_set for fragment in fragments[name])
    return frozenset(names)


def anonymous_may_run(document: DocumentNode, operation_name: str | None) -> bool:
    """Whether a caller without a token may run the selected operation of ``document``."""
    fields = root_fields(document, operation_name)
    return fields is not None and fields <= ANONYMOUS_FIELDS


class AnonymousOnlyLogin(SchemaExtension):
    """Refuses any operation of an anonymous caller that reaches more than
    ``ANONYMOUS_FIELDS``: its only error is ``Unauthorized``, and nothing is validated or
    executed. The document is the one GraphQL parsed and goes on to validate and execute;
    the rule is checked as validation begins, so that an anonymous caller's invalid
    document is refused too rather than answered with errors that describe the schema."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context.context
        document = self.execution_context.graphql_document
        if (
            getattr(context, "principal", None) is None
            and document is not None
            and not anonymous_may_run(document, self.execution_context.operation_name)
        ):
            # Set before validation runs, this is what the operation answers (strawberry
            # validates only when no extension has given errors already).
            self.execution_context.pre_execution_errors = [
                GraphQLError(
                    AUTHENTICATION_REQUIRED,
                    original_error=Unauthorized(AUTHENTICATION_REQUIRED),
                    extensions={"code": Unauthorized.code},
                )
            ]
        yield
