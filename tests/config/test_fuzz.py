"""Property tests: random layers and templates only ever fail with ``ConfigError``,
``explain`` agrees with ``merge``, rendering settles on a fixed point, and skipping the round
that would change nothing gives what running it gives."""

from __future__ import annotations

import copy
from typing import Any

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contractor.config import ConfigError, explain, merge, render
from contractor.config.render import RenderMemo, _context, _render_node, _Round

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "a", "b", "1", "x y", "[1]"])
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "k", "1"]), inner, max_size=3)
    ),
    max_leaves=8,
)

names = st.sampled_from(["a", "b", "c", "A", "0", "a-b"])
operators = st.sampled_from(["", "<", ">", "-", "~"])
class_names = st.sampled_from(["", ":C", ":D", ":c"])
valid_keys = st.builds(lambda op, name, cls: op + name + cls, operators, names, class_names)
any_keys = valid_keys | st.text(max_size=4)

values_layers = st.tuples(
    st.just("values"), st.none() | st.dictionaries(valid_keys, json_values, max_size=6)
)
attributes_layers = st.tuples(
    st.just("attributes"),
    st.dictionaries(st.sampled_from(["a", "b", "_site", "<a"]), json_values, max_size=3),
)
layer_lists = st.lists(values_layers | attributes_layers, max_size=5)
class_lists = st.lists(st.sampled_from(["C", "D", "E"]), max_size=2, unique=True)


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except ConfigError as error:
        return "error", error.key


@FUZZ
@given(layer_lists, class_lists)
def test_merge_fails_only_with_config_error_and_never_mutates(
    layers: list[Any], class_list: list[str]
) -> None:
    before = copy.deepcopy(layers)
    kind, result = outcome(merge, layers, class_list)
    assert layers == before
    if kind == "ok":
        assert isinstance(result, dict)


@FUZZ
@given(st.lists(st.tuples(st.just("values"), st.dictionaries(any_keys, scalars, max_size=4))))
def test_merge_with_arbitrary_keys_fails_only_with_config_error(layers: list[Any]) -> None:
    outcome(merge, layers, ["C"])


@FUZZ
@given(layer_lists, class_lists)
def test_explain_agrees_with_merge(layers: list[Any], class_list: list[str]) -> None:
    merged = outcome(merge, layers, class_list)
    explained = outcome(explain, layers, class_list)
    if merged[0] == "error":
        assert explained == merged
        return
    assert explained[0] == "ok"
    assert explained[1].values == merged[1]
    assert list(explained[1].keys) == list(merged[1])
    for key, provenance in explained[1].keys.items():
        assert provenance.key == key
        assert provenance.set_by is not None
        assert provenance.history
        assert all(change.key == key for change in provenance.history)
    for key in explained[1].masked:
        assert key not in merged[1]


template_pieces = st.sampled_from(
    [
        "x",
        " ",
        "\n",
        "\r",
        "{",
        "}",
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{{ a }}",
        "{{ b }}",
        "{{ c.k }}",
        "{{ a + 1 }}",
        "{{ a|tojson }}",
        "{{ b|default('d') }}",
        "{% raw %}",
        "{% endraw %}",
        "{% if a %}y{% endif %}",
    ]
)
templates = st.lists(template_pieces, max_size=5).map("".join)
render_values = st.recursive(
    templates | scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["k", "j"]), inner, max_size=2)
    ),
    max_leaves=6,
)
render_maps = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), render_values, max_size=4)


@FUZZ
@given(render_maps)
def test_render_fails_only_with_config_error_and_settles(values: dict[str, Any]) -> None:
    before = copy.deepcopy(values)
    kind, result = outcome(lambda v: render(v, max_rounds=30, max_length=2_000), values)
    assert values == before
    if kind == "ok":
        assert list(result) == list(values)
        assert render(result) == result


@FUZZ
@given(layer_lists, class_lists)
def test_merge_then_render_fails_only_with_config_error(
    layers: list[Any], class_list: list[str]
) -> None:
    kind, merged = outcome(merge, layers, class_list)
    if kind == "ok":
        outcome(lambda v: render(v, max_rounds=30, max_length=2_000), merged)


@FUZZ
@given(st.text(alphabet=st.sampled_from("ab }%#\n\r\t\u2028\x85\x0bé"), max_size=12))
def test_text_without_braces_renders_like_jinja(text: str) -> None:
    # render() skips Jinja for text without '{'; the result must be what Jinja would give.
    environment = jinja2.Environment()
    expected = text
    while True:
        again = environment.from_string(expected).render()
        if again == expected:
            break
        expected = again
    assert render({"a": text}) == {"a": expected}


@FUZZ
@given(st.lists(render_maps, min_size=1, max_size=4))
def test_a_shared_memo_renders_exactly_like_rendering_each_alone(maps: list[Any]) -> None:
    # Many configurations rendered with one memo (as a batch of Structures is) give what
    # each gives alone, errors included.
    memo = RenderMemo()
    for values in maps:
        alone = outcome(lambda v: render(v, max_rounds=30, max_length=2_000), values)
        shared = outcome(lambda v: render(v, max_rounds=30, max_length=2_000, memo=memo), values)
        assert shared == alone


def _render_every_round(values: dict[str, Any], max_rounds: int) -> tuple[str, Any]:
    """The rounds as they were before the last round was skipped: every round runs, until
    one changes nothing (or ``max_rounds`` have changed something: not settled)."""
    current = dict(values)
    for _ in range(max_rounds):
        rendered, changed = _render_node(current, _context(current), 2_000, None, _Round())
        if not changed:
            return "ok", rendered
        current = rendered
    return "error", "not settled"


@FUZZ
@given(render_maps, st.integers(1, 4))
def test_skipping_the_last_round_renders_as_every_round(
    values: dict[str, Any], max_rounds: int
) -> None:
    # render() stops once a round leaves only plain strings: the same result (and the same
    # "not settled" when no round is left) as running the round that would change nothing.
    try:
        expected = _render_every_round(values, max_rounds)
    except Exception:  # a template error: render() reports it as a ConfigError
        with pytest.raises(ConfigError):
            render(values, max_rounds=max_rounds, max_length=2_000)
        return
    try:
        got: tuple[str, Any] = ("ok", render(values, max_rounds=max_rounds, max_length=2_000))
    except ConfigError:
        got = ("error", "not settled")
    assert got == expected
