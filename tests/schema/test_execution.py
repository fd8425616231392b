"""The executor's short path for plain leaf fields answers exactly as graphql-core's own
executor: the same data in the same key order, the same errors at the same paths, for plain
values and for every value it hands back to graphql-core (null where the type forbids it, an
exception, one the type cannot coerce, an awaitable); and the real schema's page is the same
through both."""

from __future__ import annotations

import asyncio
import enum
from typing import Any, cast

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from contractor.schema.execution import Executor
from contractor.schema.prefetch import attribute
from tests.schema.conftest import PAGE, Client, build_inventory


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Soon:
    """An awaitable value (made into a coroutine only when awaited: a document that does
    not select it leaves nothing unawaited)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self._later().__await__()

    async def _later(self) -> Any:
        await asyncio.sleep(0)
        return self.value


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Child(Named):  # with an interface: strawberry gives it a type check
    required: str
    count: Any = strawberry.field(graphql_type=int, default=1)
    colour: Any = strawberry.field(graphql_type=Colour | None, default=Colour.RED)


@strawberry.type
class Plain:  # without one
    name: str


class Raising(Child):
    """A child whose ``name`` raises when it is read (the default resolver's getattr)."""

    @property
    def name(self) -> str:
        raise ValueError("unreadable")

    @name.setter
    def name(self, value: str) -> None:
        pass


def child(name: str, required: str | None = "r") -> Child:
    return Child(name=name, required=required)  # type: ignore[arg-type]


@strawberry.type
class Leaf:
    name: str
    maybe: str | None
    colour: Colour
    count: int
    required: str
    odd: Any = strawberry.field(graphql_type=str | None)
    child: Any = strawberry.field(graphql_type=Child | None)
    must: Any = strawberry.field(graphql_type=Child)
    plain: Plain | None = None
    kids: Any = strawberry.field(graphql_type=list[Child], default_factory=list)
    loose: Any = strawberry.field(graphql_type=list[Child | None] | None, default=None)

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    # resolvers of the object alone, which the short path calls itself: a value, an
    # exception, null where the type forbids it, an awaitable, a value the type refuses
    @strawberry.field
    def whisper(self) -> str | None:
        if self.name == "b":
            raise ValueError("hush")
        if self.name == "d":
            return cast(str, Soon("later"))
        return None if self.name == "c" else self.name.lower()

    @strawberry.field
    def loud(self) -> int:
        if self.name == "e":
            raise ValueError("too loud")
        return cast(int, None if self.name == "b" else self.count)

    @strawberry.field
    def hue(self) -> Colour:
        return cast(Colour, "nope" if self.name == "c" else self.colour)

    # one the short path leaves to graphql-core: it asks for its info
    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        return f"{info.field_name}:{self.name}"


def leaves() -> list[Leaf | None]:
    return [
        Leaf(
            name="a",
            maybe=None,
            colour=Colour.RED,
            count=1,
            required="x",
            odd="fine",
            child=child("a1"),
            must=child("a2"),
            plain=Plain(name="p"),
            kids=[
                child("k1"),
                child("k2"),
                Child(name="k", required="r", count=ValueError("no"), colour="nope"),
            ],
            loose=[child("l1"), None, Soon(child("l3"))],
        ),
        # null where the type forbids it: the item is nulled, its error located; a child's
        # required null nulls the (nullable) child
        Leaf(
            name="b",
            maybe="m",
            colour=Colour.BLUE,
            count=2,
            required=cast(str, None),
            odd=None,
            child=child("b1", None),
            must=child("b2"),
            kids=[child("k1"), Child(name="k2", required="r", colour=None, count=None)],
            loose=[child("l1", None), Plain(name="wrong")],
        ),
        # an Int the type cannot represent; an object of the wrong type; a required object null
        Leaf(
            name="c",
            maybe="n",
            colour=Colour.RED,
            count=2**40,
            required="y",
            odd=None,
            child=Plain(name="wrong"),
            must=None,
            kids=[
                child("k1"),
                child("k2", None),
                Child(name="k3", required="r", count=2**40, colour="nope"),
            ],
            loose=(c for c in [child("gen")]),
            plain=Plain(name=cast(str, None)),
        ),
        # an exception as the value, and an awaitable, for leaves and objects
        Leaf(
            name="d",
            maybe=None,
            colour=Colour.RED,
            count=4,
            required="z",
            odd=ValueError("no"),
            child=Soon(child("d1")),
            must=ValueError("gone"),
            kids=Soon([child("k1")]),
            loose=[ValueError("item")],
        ),
        Leaf(
            name="e",
            maybe=None,
            colour=Colour.BLUE,
            count=5,
            required="w",
            odd=Soon("soon"),
            must=child("e2", None),
            kids=[Soon(child("k1")), child("k2"), Raising(name="x", required="r")],
            loose=[
                child("l1"),
                Soon(child("l2", None)),
                Raising(name="y", required=cast(str, None)),
            ],
            child=Raising(name="z", required="r"),
        ),
    ]


@strawberry.type
class Query:
    @strawberry.field
    def leaves(self) -> list[Leaf | None]:
        return leaves()

    @strawberry.field
    async def later(self) -> list[Leaf | None]:
        return [leaf for leaf in leaves() if leaf is not None and leaf.name in "ad"]


def schema(executor: type | None, extensions: list[Any] | None = None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(default_resolver=attribute),
        execution_context_class=executor,
        extensions=extensions or [],
    )


def answer(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [(e.message, e.path, e.locations) for e in result.errors or ()]
    return result.data, sorted(errors, key=repr)


DOCUMENTS = [
    "{ leaves { name maybe colour count required odd shout } }",
    "{ leaves { count n: name __typename ...on Leaf { colour } shout c2: colour } }",
    "query($s: Boolean!) { leaves { name maybe @skip(if: $s) colour @include(if: $s) required } }",
    "{ later { shout name odd } leaves { name } }",
    "{ leaves { name child { name required } } }",
    "{ leaves { name must { name ... on Named { name } required } plain { name } } }",
    "{ leaves { name child { __typename name } must { name } } later { child { required } } }",
    "{ leaves { name kids { name required } } }",
    "{ leaves { name loose { name required } } }",
    "{ leaves { name kids { name } loose { name } } later { kids { required } loose { name } } }",
    # a plan's own cases: aliases, directives, __typename, fragments and a resolver below
    "query($s: Boolean!) { leaves { kids { a: name b: name @skip(if: $s) __typename "
    "r: required @include(if: $s) ... on Named { name } } plain { n: name } } }",
    "{ leaves { child { name required __typename } must { required } loose { required } } }",
    "{ leaves { must { name } kids { required } } later { must { required } } }",
    "{ leaves { kids { name count colour } must { count colour } child { colour } } }",
    "{ leaves { name shout whisper loud hue where } later { whisper loud hue } }",
    "{ leaves { w: whisper name w2: whisper @include(if: $s) l: loud } }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_short_path_answers_as_graphql_core(document: str) -> None:
    variables = {"s": True}
    fast = await schema(Executor).execute(document, variable_values=variables)
    plain = await schema(None).execute(document, variable_values=variables)
    assert answer(fast) == answer(plain)
    # the order of the keys is the selection's, as in graphql-core's answer
    assert repr(fast.data) == repr(plain.data)
    assert fast.errors, "the documents exercise the error paths"


async def test_the_errors_are_graphql_cores() -> None:
    result = await schema(Executor).execute("{ leaves { name required count odd } }")
    data, errors = answer(result)
    assert data is not None
    assert data["leaves"][1] is None  # required null: the nullable item is nulled
    assert data["leaves"][0] == {"name": "a", "required": "x", "count": 1, "odd": "fine"}
    assert data["leaves"][3]["odd"] is None
    assert data["leaves"][4]["odd"] == "soon"
    messages = {message: path for message, path, _ in errors}
    assert messages["Cannot return null for non-nullable field Leaf.required."] == [
        "leaves",
        1,
        "required",
    ]
    assert messages["no"] == ["leaves", 3, "odd"]
    assert any(path == ["leaves", 2, "count"] for path in messages.values())


class SeesEveryField(SchemaExtension):
    seen: list[str] = []

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        SeesEveryField.seen.append(info.field_name)
        return _next(root, info, *args, **kwargs)


async def test_an_extension_that_wraps_resolvers_sees_every_field() -> None:
    SeesEveryField.seen = []
    result = await schema(Executor, [SeesEveryField]).execute("{ leaves { name colour } }")
    assert result.data is not None
    assert SeesEveryField.seen.count("name") == 5
    assert SeesEveryField.seen.count("colour") == 5


async def test_the_page_is_the_same_through_both_executors(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await build_inventory(client, 6)
    fast = await client.data(PAGE, {"first": 1000}, role="reader")
    # graphql-core's own field execution, in the same schema
    monkeypatch.setattr(
        Executor, "execute_field", StrawberryGraphQLCoreExecutionContext.execute_field
    )
    plain = await client.data(PAGE, {"first": 1000}, role="reader")
    assert fast == plain
    assert repr(fast) == repr(plain)
    assert len(fast["structures"]["edges"]) == 6
    assert fast["structures"]["edges"][0]["node"]["addresses"][0]["ipAddress"].startswith("10.")


def test_the_short_path_calls_only_resolvers_of_the_object_alone() -> None:
    from contractor.schema.execution import _plain_field

    fields = schema(Executor)._schema.type_map["Leaf"].fields  # type: ignore[attr-defined]
    assert all(_plain_field(fields[name]) for name in ("shout", "whisper", "loud", "hue"))
    assert _plain_field(fields["where"]) is None


def test_the_app_schema_runs_the_short_path() -> None:
    from contractor.schema import build_schema

    assert build_schema().execution_context_class is Executor
