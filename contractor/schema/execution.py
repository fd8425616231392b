"""The executor: graphql-core's, with a short path for the commonest fields of a large page.

Most fields of a page are plain attributes read by strawberry's default resolver
(``prefetch.attribute``, which never needs the ``info`` it is handed) and already loaded by
the page's prefetch: on a page of 1,000 Structures, 15,000 of its 22,000 fields are leaves
(a hostname, a state, a MAC), 5,000 objects (site, foundation) and 3,000 lists of objects
(interfaces, addresses). graphql-core still builds a ``Path`` and a resolve info for each,
checks its value for an awaitable twice and completes it through ``complete_value``'s type
dispatch, which was most of the page's time (docs/performance-notes.md).

``Executor.execute_field`` reads such a field (whether it is one is looked up once per field
definition and request: the default resolver, no arguments, a leaf type, or an object type,
or a list of one, without a type check of its own or with strawberry's ``isinstance`` one)
and completes a plain value directly: a leaf by its type's own ``coerce_output_value``, as
``complete_leaf_value`` does; an object by executing its subfields, as
``complete_object_value`` does; a list item by item, as ``complete_iterable_value`` does.
Any other field goes through graphql-core's ``execute_field``; a value the short path does
not take (an awaitable, an exception, null where the type forbids it, a value of the wrong
type or one the type does not coerce, a list that is not a plain list or is streamed) is
completed as ``execute_field`` completes a resolver's result (with its resolve info then), so
every error is raised, located and reported as graphql-core does it. The short path is taken
only when no schema extension wraps resolvers (``resolve``), which would have to see every
field.

An object the short path completes runs its subfields by a plan made once per (object type,
selection) and request (``_plan``): each subfield with its definition and how it is read, a
plain leaf with strawberry's default resolver called directly (what strawberry's
``_get_basic_result`` calls) and no ``Path`` unless it is needed for an error; a ``String``
that is a ``str`` or a ``Boolean`` that is a ``bool`` is its own coerced value (as
``coerce_output_value`` returns it). The loop is ``execute_fields``'s: the same key order,
awaitables gathered as it gathers them, the same settling of pending ones when a required
field's error propagates. A selection with ``@defer`` below it, or one executed for
incremental delivery, goes through graphql-core's ``collect_and_execute_subfields``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.executor import to_nodes
from graphql.pyutils import AwaitableOrValue, Path, Undefined, UndefinedType, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ["Executor"]

# (resolver, leaf or object type, non-null) of a field the short path takes, or (resolver,
# list type, its object type, whether its items are non-null); None: it does not
_Plain = (
    tuple[Any, GraphQLLeafType | GraphQLObjectType, bool]
    | tuple[Any, GraphQLList[Any], GraphQLObjectType, bool]
    | None
)


class _Read(NamedTuple):
    """How a plan reads a plain field: strawberry's default resolver and the field's Python
    name, and, for a leaf, its type and whether it is non-null, and the Python type its
    type's coercion returns unchanged (None: coerce every value)."""

    read: Callable[[Any, str], Any]
    name: str
    leaf: GraphQLLeafType | None
    required: bool
    same: type | None


# a plan's step: response name, field details, definition (None: not the parent type's own
# field, __typename say), how the short path completes it (None: it does not), and how a plan
# reads its value (only where both are known: Any, so the loop need not check them again)
_Step = tuple[str, FieldDetailsList, Any, Any, _Read | None]

# strawberry's own type check of an object type (its info unused), by its qualified name
_STRAWBERRY_IS_TYPE_OF = "_get_is_type_of.<locals>.is_type_of"


def _plain_field(field: GraphQLField) -> _Plain:
    """How the short path reads ``field``, if it may: strawberry's default resolver of a
    field without arguments, of a leaf type or of an object type whose check, if it has
    one, is strawberry's own (non-null or not); or a leaf's own resolver of the object
    alone (``_own_resolver``)."""
    resolve = field.resolve
    if resolve is None or field.args:
        return None
    kind: Any = field.type
    required = isinstance(kind, GraphQLNonNull)
    if required:
        kind = kind.of_type
    if not getattr(resolve, "_is_default", False):
        own = _own_resolver(field) if is_leaf_type(kind) else None
        return None if own is None else (own, kind, required)
    if is_leaf_type(kind):
        return resolve, kind, required
    if _checked_plainly(kind):
        return resolve, kind, required
    if isinstance(kind, GraphQLList):
        item: Any = kind.of_type
        items_required = isinstance(item, GraphQLNonNull)
        if items_required:
            item = item.of_type
        if _checked_plainly(item):
            return resolve, kind, item, items_required
    return None


def _own_resolver(field: GraphQLField) -> Callable[[Any, Any], Any] | None:
    """A leaf field's own resolver as the short path calls it, ``(source, None)``, where
    strawberry's resolver would only call it with the object (what its ``get_arguments``
    passes a resolver of ``self`` alone): a synchronous function without ``info``, root,
    parent or arguments, and no field extensions. (No exception handler applies to a leaf:
    they turn errors into a union's error types.)"""
    definition: Any = field.extensions.get("strawberry-definition")
    resolver: Any = getattr(definition, "base_resolver", None)
    if (
        resolver is None
        or definition.extensions
        or definition.is_async
        or resolver.is_async
        or resolver.arguments
        or resolver.self_parameter is None
        or resolver.info_parameter is not None
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
    ):
        return None

    def call(source: Any, _: Any) -> Any:
        return resolver(source)

    return call


def _read_of(field: GraphQLField, how: _Plain) -> _Read | None:
    """How a plan reads a plain field: strawberry's default resolver (what its basic
    field's resolver calls, ``field.get_result`` without a resolver of its own)."""
    if how is None:
        return None
    definition: Any = field.extensions.get("strawberry-definition")
    read = getattr(definition, "default_resolver", None)
    if read is None or definition.base_resolver is not None:
        return None
    kind = how[1]
    same = str if kind is GraphQLString else bool if kind is GraphQLBoolean else None
    if len(how) == 3 and is_leaf_type(kind):
        return _Read(read, definition.python_name, kind, how[2], same)
    return _Read(read, definition.python_name, None, False, same)


def _checked_plainly(kind: Any) -> bool:
    """Whether ``kind`` is an object type without a check or with strawberry's own."""
    if not isinstance(kind, GraphQLObjectType):
        return False
    check = kind.is_type_of
    return check is None or getattr(check, "__qualname__", "").endswith(_STRAWBERRY_IS_TYPE_OF)


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, reading plain fields without their resolve info."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._short = manager is None or not manager.middlewares
        # per request (a sub-executor for @defer shares it): a few dozen definitions
        self._plain: dict[int, _Plain] = {}
        # per (object type, field details) as collect_subfields memoizes them (the details
        # kept alive with the plan, so their id is not reused during the request)
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, list[_Step] | None]] = {}

    def _how(self, field: GraphQLField) -> _Plain:
        known = self._plain
        key = id(field)  # the definitions live as long as the request's schema
        if key in known:
            return known[key]
        how = known[key] = _plain_field(field)
        return how

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        field = parent_type.fields.get(field_details_list[0].node.name.value)
        if field is None or not self._short:  # __typename, say
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        return self._field(
            parent_type, field, self._how(field), source, field_details_list, path, position_context
        )

    def _field(
        self,
        parent_type: GraphQLObjectType,
        field: GraphQLField,
        how: _Plain,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        """``execute_field`` for a field of the parent type whose short path, if any, is
        ``how``."""
        if how is None:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        try:
            value = how[0](source, None)
        except Exception as error:  # located and reported as execute_field does it
            self.handle_field_error(error, field.type, field_details_list, path)
            return None
        return self._value(
            parent_type, field, how, value, field_details_list, path, position_context
        )

    def _value(
        self,
        parent_type: GraphQLObjectType,
        field: GraphQLField,
        how: tuple[Any, ...],
        value: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """The rest of ``execute_field`` for the value the field's resolver returned."""
        if len(how) == 4:
            return self._list(
                parent_type, field, how, value, field_details_list, path, position_context
            )
        _, kind, required = how
        if isinstance(kind, GraphQLObjectType):
            if value is None:
                if not required:
                    return None
            elif not isinstance(value, Exception) and not self.is_awaitable(value):
                check = kind.is_type_of
                # strawberry's check, which does not read its info
                if check is None or check(value, None):  # type: ignore[arg-type]
                    return self._complete_object(
                        kind, field, field_details_list, path, value, position_context
                    )
            return self._complete(
                parent_type, field, field_details_list, path, value, position_context
            )
        return self._leaf(
            parent_type, field, kind, required, field_details_list, path, value, position_context
        )

    def _leaf(
        self,
        parent_type: GraphQLObjectType,
        field: GraphQLField,
        kind: GraphQLLeafType,
        required: bool,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """A plain leaf's value: coerced by its type, as ``complete_leaf_value`` does, or
        (null where the type forbids it, an exception, an awaitable, a value the type does
        not coerce) completed the whole way."""
        if value is None and not required:
            return None
        coerced = self._coerced(kind, value)
        if coerced is not Undefined:
            return coerced
        return self._complete(parent_type, field, field_details_list, path, value, position_context)

    def _coerced(self, kind: GraphQLLeafType, value: Any) -> Any:
        """A plain leaf value coerced by its type, as ``complete_leaf_value`` coerces it;
        Undefined for one the short path does not take (null, an exception, an awaitable,
        one the type refuses: completed again by ``_complete``, which reports it)."""
        if value is None or isinstance(value, Exception) or self.is_awaitable(value):
            return Undefined
        try:
            coerced = kind.coerce_output_value(value)
        except Exception:
            return Undefined
        return Undefined if coerced is None else coerced

    def _subfields(
        self,
        kind: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        source: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """``collect_and_execute_subfields``, by the selection's plan where it has one."""
        key = (kind, id(field_details_list))
        cached = self._plans.get(key)
        if cached is None:
            cached = self._plans[key] = (field_details_list, self._plan(kind, field_details_list))
        plan = cached[1]
        if plan is None or position_context is not None:
            return self.collect_and_execute_subfields(
                kind, field_details_list, path, source, position_context
            )
        return self._execute_plan(kind, source, path, plan)

    def _plan(
        self, kind: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> list[_Step] | None:
        """The subfields of ``kind`` selected below ``field_details_list``, each with how it
        is read; None where something is deferred below."""
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(kind, field_details_list)
        if new_defer_usages:
            return None
        plan: list[_Step] = []
        for name, details in grouped_field_set.items():
            field = kind.fields.get(details[0].node.name.value)
            how = None if field is None else self._how(field)
            plan.append((name, details, field, how, None if how is None else _read_of(field, how)))
        return plan

    def _execute_plan(
        self, kind: GraphQLObjectType, source: Any, path: Path, plan: list[_Step]
    ) -> AwaitableOrValue[dict[str, Any]]:
        """An object's subfields, as ``execute_fields`` executes them."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        type_name = kind.name
        try:
            for name, details, field, how, read in plan:
                if read is not None:
                    try:
                        value = read.read(source, read.name)
                    except Exception as error:  # as execute_field reports it
                        self.handle_field_error(
                            error, field.type, details, Path(path, name, type_name)
                        )
                        results[name] = None
                        continue
                    if type(value) is read.same:  # a leaf's own coerced value
                        results[name] = value
                        continue
                    leaf = read.leaf
                    if leaf is None:
                        result: Any = self._value(
                            kind, field, how, value, details, Path(path, name, type_name), None
                        )
                    elif value is None and not read.required:
                        results[name] = None
                        continue
                    else:  # as _leaf, with a Path only where it is completed the whole way
                        result = self._coerced(leaf, value)
                        if result is Undefined:
                            result = self._complete(
                                kind, field, details, Path(path, name, type_name), value, None
                            )
                elif field is None or not self._short:
                    result = self.execute_field(
                        kind, source, details, Path(path, name, type_name), None
                    )
                else:
                    result = self._field(
                        kind, field, how, source, details, Path(path, name, type_name), None
                    )
                if result is not Undefined:
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:  # settled, as execute_fields does: they may fail too
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _list(
        self,
        parent_type: GraphQLObjectType,
        field: GraphQLField,
        how: tuple[Any, GraphQLList[Any], GraphQLObjectType, bool],
        value: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """A plain list of objects: each item's subfields, as ``complete_iterable_value``
        and ``complete_list_item_value`` complete them; a value or an item the short path
        does not take (not a list, an awaitable, an error, null, the wrong type) and a
        streamed list are completed the whole way."""
        _, _, kind, required = how
        check = kind.is_type_of
        if (
            type(value) is not list
            or self.get_stream_usage(field_details_list, path) is not None
            or not all(
                item is not None
                and not isinstance(item, Exception)
                and not self.is_awaitable(item)
                and (check is None or check(item, None))  # type: ignore[arg-type]
                for item in value
            )
        ):
            if value is None and not isinstance(field.type, GraphQLNonNull):
                return None
            return self._complete(
                parent_type, field, field_details_list, path, value, position_context
            )
        item_type = GraphQLNonNull(kind) if required else kind
        results: list[Any] = []
        pending: list[int] = []
        is_awaitable = self.is_awaitable
        execute = self._subfields
        try:
            for index, item in enumerate(value):
                item_path = path.add_key(index, None)
                try:
                    completed = execute(kind, field_details_list, item_path, item, position_context)
                except Exception as error:  # as complete_list_item_value reports it
                    self.handle_field_error(error, item_type, field_details_list, item_path)
                    completed = None
                if is_awaitable(completed):
                    completed = self._awaited_item(
                        completed, item_type, field_details_list, item_path
                    )
                    pending.append(index)
                results.append(completed)
        except Exception as error:  # a required item's error: the list's, as execute_field
            if pending:
                self.settle_in_background([results[index] for index in pending])
            self.handle_field_error(error, field.type, field_details_list, path)
            return None
        if not pending:
            return results

        async def gathered() -> list[Any]:
            try:
                done = await gather_with_cancel(*(results[index] for index in pending))
            except Exception as error:  # as execute_field's await_completed
                self.handle_field_error(error, field.type, field_details_list, path)
                return None  # type: ignore[return-value]
            for index, item in zip(pending, done, strict=True):
                results[index] = item
            return results

        return gathered()

    async def _awaited_item(
        self,
        completed: Any,
        item_type: Any,
        field_details_list: FieldDetailsList,
        item_path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as error:  # as complete_list_item_value's await_completed
            self.handle_field_error(error, item_type, field_details_list, item_path)
            return None

    def _complete_object(
        self,
        kind: GraphQLObjectType,
        field: GraphQLField,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """An object the short path read: its subfields, as ``complete_object_value``
        executes them (its type checked already), its errors as ``execute_field`` reports
        them."""
        try:
            completed = self._subfields(kind, field_details_list, path, value, position_context)
        except Exception as error:  # located and reported as execute_field does it
            self.handle_field_error(error, field.type, field_details_list, path)
            return None
        if self.is_awaitable(completed):

            async def awaited() -> Any:
                try:
                    return await completed
                except Exception as error:  # as execute_field's await_completed
                    self.handle_field_error(error, field.type, field_details_list, path)
                    return None

            return awaited()
        return completed

    def _complete(
        self,
        parent_type: GraphQLObjectType,
        field: GraphQLField,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """The rest of ``execute_field`` for a value the short path does not take (an
        awaitable, an error, null where the type forbids it, or one the type refuses)."""
        return_type = field.type
        info = self.build_resolve_info(field, to_nodes(field_details_list), parent_type, path)
        try:
            if self.is_awaitable(value):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, value, position_context
                )
            return self.complete_value(
                return_type, field_details_list, info, path, value, position_context
            )
        except Exception as error:
            self.handle_field_error(error, return_type, field_details_list, path)
            return None
