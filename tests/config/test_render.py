"""``render`` and ``render_template``: Jinja2 rendering repeated until stable (§9.7)."""

from __future__ import annotations

import copy
import datetime
import importlib
import json
from typing import Any

import pytest

from contractor.config import ConfigError, RenderCycleError, render, render_template
from contractor.config.render import RenderMemo

UTC = datetime.UTC
WHEN = datetime.datetime(2024, 1, 1, tzinfo=UTC)


# --- what gets rendered -----------------------------------------------------------------------


def test_plain_values_come_back_unchanged() -> None:
    values = {"a": "c", "n": 3, "f": 1.5, "t": True, "z": None, "when": WHEN, "l": [1, "3", 2]}
    assert render(values) == values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"a": "c", "d": "{{a}}"}, {"a": "c", "d": "c"}),
        ({"a": "c", "d": "{{ a }}"}, {"a": "c", "d": "c"}),
        ({"a": 1, "d": "{{a}}", "e": '"{{a}}"'}, {"a": 1, "d": "1", "e": '"1"'}),
        ({"a": "c", "d": "{{z|default('v')}}"}, {"a": "c", "d": "v"}),
        ({"a": "c", "d": "{{a|default('v')}}"}, {"a": "c", "d": "c"}),
        (
            {"a": "c", "d": {"bob": "sdf", "sally": "{{a}}"}},
            {"a": "c", "d": {"bob": "sdf", "sally": "c"}},
        ),
        (
            {"a": "c", "b": "f", "d": ["{{a}}", "{{b}}", "{{a}}"]},
            {"a": "c", "b": "f", "d": ["c", "f", "c"]},
        ),
        (
            {"zone": "local", "dns_search": ["bob.{{zone}}", "{{zone}}"], "fqdn": "mybox.{{zone}}"},
            {"zone": "local", "dns_search": ["bob.local", "local"], "fqdn": "mybox.local"},
        ),
    ],
)
def test_references_are_rendered(values: dict[str, Any], expected: dict[str, Any]) -> None:
    assert render(values) == expected


def test_strings_at_any_depth_are_rendered_and_keys_never() -> None:
    values = {"a": "A", "{{ a }}": {"{{ a }}": [[{"k": ["{{ a }}"]}]]}}
    assert render(values) == {"a": "A", "{{ a }}": {"{{ a }}": [[{"k": ["A"]}]]}}


def test_markup_does_not_cross_value_boundaries() -> None:
    values = {"a": "{", "b": "{a", "c": "{", "d": "{", "e": "}}"}
    assert render(values) == values


def test_results_are_strings() -> None:
    values = {"n": 2, "f": 1.5, "t": True, "z": None, "s": "{{ n }}", "s2": "{{ n + 1 }}"}
    rendered = render({**values, "x": ["{{ f }}", "{{ t }}", "{{ z }}"]})
    assert rendered["s"] == "2"
    assert rendered["s2"] == "3"
    assert rendered["x"] == ["1.5", "True", "None"]
    assert rendered["n"] == 2


def test_lists_and_dicts_inserted_into_a_string_appear_as_python_repr() -> None:
    rendered = render({"l": ["a", 1], "d": {"k": "v", "n": None}, "x": "{{ l }} {{ d }}"})
    assert rendered["x"] == "['a', 1] {'k': 'v', 'n': None}"


def test_datetimes_inserted_into_a_string_use_str() -> None:
    assert render({"w": WHEN, "x": "{{ w }}"})["x"] == "2024-01-01 00:00:00+00:00"


def test_undefined_names_render_empty() -> None:
    assert render({"x": "a{{ nothing }}b", "d": {}, "y": "{{ d.nope }}"}) == {
        "x": "ab",
        "d": {},
        "y": "",
    }


def test_loops_filters_and_attribute_access_work() -> None:
    values = {
        "l": [1, 2],
        "m": {"k": "v"},
        "a": "{% for i in l %}{{ i }},{% endfor %}",
        "b": "{{ l|join('-') }} {{ m.k }} {{ m['k'] }} {{ 'x'|upper }}",
    }
    assert render(values)["a"] == "1,2,"
    assert render(values)["b"] == "1-2 v v X"


def test_jinja_comments_vanish() -> None:
    assert render({"x": "a{# note #}b"}) == {"x": "ab"}


# --- rounds -----------------------------------------------------------------------------------


def test_chained_references_resolve_over_rounds() -> None:
    values = {"a": "{{ b }}", "b": "{{ c }}", "c": "{{ d }}!", "d": "end"}
    assert render(values) == {"a": "end!", "b": "end!", "c": "end!", "d": "end"}


def test_each_round_sees_only_the_previous_round() -> None:
    # A chain of n references needs n rounds plus one that changes nothing.
    values = {"a": "{{ b }}", "b": "{{ c }}", "c": "x"}
    with pytest.raises(RenderCycleError):
        render(values, max_rounds=2)
    assert render(values, max_rounds=3) == {"a": "x", "b": "x", "c": "x"}


def _rounds_run(values: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    render_module = importlib.import_module("contractor.config.render")
    contexts: list[int] = []
    original = render_module._context

    def counting(current: Any) -> Any:
        contexts.append(1)
        return original(current)

    monkeypatch.setattr(render_module, "_context", counting)
    render(values)
    return len(contexts)


def test_the_round_that_would_change_nothing_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A round that leaves only plain strings (no "{", no "\r", no trailing newline) is the
    # last one that changes anything; the next would render nothing and is skipped.
    assert _rounds_run({"a": "{{ b }}", "b": "x", "n": [1, {"k": "{{ b }}"}]}, monkeypatch) == 1
    assert _rounds_run({"a": "{{ b }}", "b": "{{ c }}", "c": "x"}, monkeypatch) == 2
    # still a brace, or a newline to strip: the next round runs (and here changes nothing)
    assert _rounds_run({"a": "{{ b }}", "b": "{ x"}, monkeypatch) == 2
    assert _rounds_run({"a": "{{ b }}", "b": "x\n"}, monkeypatch) == 2
    assert _rounds_run({"a": "plain", "b": [1, "2"]}, monkeypatch) == 1


def test_a_memo_shares_the_containers_nothing_renders_in() -> None:
    plain_list = [1, "two", {"k": [None, 2.5, WHEN]}]
    plain_map = {"a": [1], "b": "x"}
    templated = [1, "{{ name }}"]
    marked = {"k": ["x\n"]}  # a trailing newline renders (it is stripped)
    values = {"name": "n", "l": plain_list, "m": plain_map, "t": templated, "r": marked}
    expected = {"name": "n", "l": plain_list, "m": plain_map, "t": [1, "n"], "r": {"k": ["x"]}}
    memo = RenderMemo()
    for _ in range(2):  # the second time from what the memo remembers
        result = render(values, memo=memo)
        assert result == expected
        assert result["l"] is plain_list
        assert result["m"] is plain_map
        assert result["t"] is not templated
        assert result["r"] is not marked
    assert templated == [1, "{{ name }}"]
    assert marked == {"k": ["x\n"]}
    # without a memo every container is a copy
    alone = render(values)
    assert alone == expected
    assert alone["l"] is not plain_list
    assert alone["l"][2] is not plain_list[2]
    # a container holding anything but dicts, lists and plain scalars is rendered (copied)
    odd: dict[str, Any] = {"s": [{1, 2}], "u": [b"bytes"]}
    shared = render(odd, memo=RenderMemo())
    assert shared == odd
    assert shared["s"] is not odd["s"]
    assert shared["s"][0] is not odd["s"][0]


def test_raw_and_escaped_braces_only_delay_by_one_round() -> None:
    values = {"a": "c", "b": "a", "d": '{{ "{{" }}{{b}}}}', "e": "{% raw %}{{ a }}{% endraw %}"}
    assert render(values) == {"a": "c", "b": "a", "d": "c", "e": "c"}


def test_trailing_newlines_are_all_stripped_one_per_round() -> None:
    assert render({"x": "a\n\n\n", "y": "\n", "z": ["b\n\n"]}) == {"x": "a", "y": "", "z": ["b"]}
    with pytest.raises(RenderCycleError):
        render({"x": "a\n\n\n"}, max_rounds=3)
    assert render({"x": "a\n\n\n"}, max_rounds=4) == {"x": "a"}


def test_inner_newlines_are_kept_and_carriage_returns_normalised() -> None:
    assert render({"x": "a\n\nb", "y": "a\r\nb\rc"}) == {"x": "a\n\nb", "y": "a\nb\nc"}


def test_a_value_that_renders_to_itself_is_stable() -> None:
    # Not a cycle: '{{ a }}' renders to the current value of a, which is '{{ a }}'.
    assert render({"a": "{{ a }}"}) == {"a": "{{ a }}"}
    assert render({"a": "{{ b }}", "b": "{{ a }}"}) == {"a": "{{ a }}", "b": "{{ b }}"}


def test_render_does_not_mutate_its_input() -> None:
    values = {"a": "x", "b": ["{{ a }}", {"c": "{{ a }}\n"}], "n": {"m": [1]}}
    before = copy.deepcopy(values)
    rendered = render(values)
    assert values == before
    rendered["n"]["m"].append(2)
    assert values == before


def test_rendering_a_rendered_map_changes_nothing() -> None:
    once = render({"a": "{{ b }}\n", "b": "x{{ c|default('y') }}", "c": ["{{ d }}"]})
    assert render(once) == once


# --- tojson -----------------------------------------------------------------------------------


def test_tojson_sorts_keys_and_maps_datetimes_and_undefined() -> None:
    values = {
        "v": {"b": 1, "a": [1, "sdf", [2, 3], {"a": "sdf"}, None, WHEN]},
        "x": "{{ v|tojson }}",
        "u": "{{ nothing|tojson }}",
    }
    rendered = render(values)
    assert rendered["u"] == '""'
    assert rendered["x"] == (
        '{"a": [1, "sdf", [2, 3], {"a": "sdf"}, null, "2024-01-01T00:00:00+00:00"], "b": 1}'
    )


def test_tojson_escapes_html_characters_like_jinja() -> None:
    rendered = render({"v": "<&>'", "x": "{{ v|tojson }}"})["x"]
    assert rendered == '"\\u003c\\u0026\\u003e\\u0027"'
    assert json.loads(rendered) == "<&>'"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "path", "words"),
    [
        ({"a": "{{ x + }}"}, "a", "syntax"),
        ({"a": "{% if %}"}, "a", "syntax"),
        ({"a": "{{ x"}, "a", "syntax"),
        ({"a": {"b": ["ok", "{% for %}"]}}, "a.b.1", "syntax"),
        ({"a": "{{ missing + 1 }}"}, "a", "'missing' is undefined"),
        ({"a": "{{ 1 - missing }}"}, "a", "'missing' is undefined"),
        ({"a": {"b": ["{{ missing * 2 }}"]}}, "a.b.0", "'missing' is undefined"),
        ({"a": "{{ missing.attr }}"}, "a", "'missing' is undefined"),
        ({"a": "{{ 'x' + 1 }}"}, "a", "TypeError"),
        ({"a": "{{ 1 / 0 }}"}, "a", "ZeroDivisionError"),
        ({"l": [], "a": "{{ l.append(1) }}"}, "a", "not allowed"),
        ({"a": "{{ ''.__class__.__mro__ }}"}, "a", "not allowed"),
    ],
)
def test_template_errors_name_the_value(values: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        render(values)
    assert caught.value.key == path
    assert repr(path) in str(caught.value)
    assert words in str(caught.value)


def test_a_syntax_error_reports_its_line() -> None:
    with pytest.raises(ConfigError, match=r"line 2"):
        render({"a": "fine\n{{ x + }}"})


def test_an_error_that_appears_in_a_later_round_is_reported() -> None:
    # '{{' + '{{ b' only becomes a broken template after the first round.
    with pytest.raises(ConfigError) as caught:
        render({"a": "{% raw %}{{ b {% endraw %}"})
    assert caught.value.key == "a"


def test_a_self_growing_value_is_a_cycle_naming_the_key() -> None:
    with pytest.raises(RenderCycleError) as caught:
        render({"a": "x{{ a }}", "ok": "fine"})
    assert caught.value.key == "a"
    assert caught.value.keys == ("a",)
    assert "'a'" in str(caught.value)


def test_a_slow_cycle_hits_the_round_limit_and_names_every_changing_key() -> None:
    values = {
        "a": "{% raw %}{{ b }}{% endraw %}+",
        "b": "{{ a }}",
        "c": {"d": ["{{ b }}"]},
        "fixed": "{{ e }}",
        "e": "E",
    }
    with pytest.raises(RenderCycleError) as caught:
        render(values, max_rounds=10)
    assert set(caught.value.keys) == {"a", "b", "c.d.0"}
    message = str(caught.value)
    assert "10 render rounds" in message
    assert "a, b, c.d.0" in message
    assert "fixed" not in message


def test_a_value_doubling_every_round_is_stopped_early() -> None:
    with pytest.raises(RenderCycleError) as caught:
        render({"a": "{{ a }}{{ a }}"}, max_length=10_000)
    assert caught.value.keys == ("a",)
    assert "10000 characters" in str(caught.value)


def test_a_long_value_that_does_not_grow_is_fine() -> None:
    big = "x" * 5000 + "{{ a }}"
    assert render({"a": "A", "big": big}, max_length=100)["big"] == "x" * 5000 + "A"


def test_render_wants_a_map() -> None:
    with pytest.raises(ConfigError):
        render(["a"])  # type: ignore[arg-type]


def test_non_string_top_level_keys_are_left_out_of_the_context() -> None:
    assert render({1: "{{ a }}", "a": "A"}) == {1: "A", "a": "A"}  # type: ignore[dict-item]


# --- render_template --------------------------------------------------------------------------


def test_template_without_markup_is_returned_exactly() -> None:
    text = "#!ipxe\n\n{# kept #}\nchain http://x/\n\n"
    assert render_template(text, {}) == text


def test_template_uses_rendered_values() -> None:
    values = {"i": "is {{ j }}", "j": "only"}
    assert render_template("This {{i}} a test", values) == "This is only a test"
    assert render_template("This {{i}} {{k}} test", values) == "This is only  test"
    assert render_template("This {{i}} {{k|default('a')}} test", values) == "This is only a test"


def test_template_is_rendered_again_while_it_has_markup() -> None:
    values = {"a": "A"}
    assert render_template('{{ "{{" }} a }}', values) == "A"
    assert render_template("{% raw %}{% if a %}yes{% endif %}{% endraw %}", values) == "yes"


def test_template_trailing_newline_goes_only_while_rendering() -> None:
    assert render_template("{{ a }}\n\n", {"a": "x"}) == "x\n"


def test_template_tojson_and_datetimes() -> None:
    assert render_template("This does not {{exist|tojson}}", {}) == 'This does not ""'
    values = {"i": [1, "sdf", [2, 3], {"a": "sdf"}, None, datetime.datetime.min]}
    assert render_template("This {{i|tojson}}", values) == (
        'This [1, "sdf", [2, 3], {"a": "sdf"}, null, "0001-01-01T00:00:00"]'
    )
    assert render_template("{{ w }}", {"w": WHEN}) == "2024-01-01 00:00:00+00:00"


def test_template_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        render_template("{{ x + }}", {}, name="boot_script")
    assert caught.value.key == "boot_script"
    assert "syntax" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        render_template("ok", {"bad": "{{ missing + 1 }}"})
    assert caught.value.key == "bad"


def test_template_that_keeps_its_markup_hits_the_round_limit() -> None:
    values = {"t": "{% raw %}{{ t }}{% endraw %}"}  # renders to '{{ t }}' and stays so
    with pytest.raises(RenderCycleError) as caught:
        render_template("{{ t }}", values, max_rounds=5)
    assert caught.value.key == "template"


def test_a_shared_memo_tells_values_of_equal_hash_apart() -> None:
    memo = RenderMemo()
    results = [render({"n": n, "t": "{{ n }}"}, memo=memo)["t"] for n in (1, True, 1.0, "1")]
    assert results == ["1", "True", "1.0", "1"]


def test_a_shared_memo_never_remembers_random_output() -> None:
    memo = RenderMemo()
    seen = {render({"t": "{{ range(100000)|random }}"}, memo=memo)["t"] for _ in range(5)}
    assert len(seen) > 1
    assert memo.key("{{ [1, 2]|random }}", {}, 100) is None


def test_a_shared_memo_skips_templates_reading_lists_or_maps() -> None:
    memo = RenderMemo()
    assert memo.key("{{ a }}", {"a": [1]}, 100) is None
    assert memo.key("{{ a }}", {"a": "x"}, 100) is not None
    assert memo.key("{{ f }}", {"f": len}, 100) is None


def test_a_shared_memo_looks_values_up_per_context() -> None:
    memo = RenderMemo()
    first, second = {"a": "x", "b": "y"}, {"a": "z", "b": "y"}
    assert memo.key("{{ a }}", first, 100) != memo.key("{{ a }}", second, 100)
    assert memo.key("{{ a }}-{{ b }}", first, 100) != memo.key("{{ b }}-{{ a }}", first, 100)
    assert memo.key("{{ b }}", first, 100) == memo.key("{{ b }}", second, 100)
    memo = RenderMemo()
    rendered = [
        render({"host": host, "a": "{{ host }}/a", "b": "{{ host }}/b"}, memo=memo)
        for host in ("one", "two", "one")
    ]
    assert [(r["a"], r["b"]) for r in rendered] == [
        ("one/a", "one/b"),
        ("two/a", "two/b"),
        ("one/a", "one/b"),
    ]


@pytest.mark.parametrize(
    "template",
    ['{% include "x" %}', '{% import "x" as y with context %}{{ y }}', '{% from "x" import a %}'],
)
@pytest.mark.parametrize("memo", [None, RenderMemo()])
def test_a_template_that_loads_another_names_the_missing_loader(
    template: str, memo: RenderMemo | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        render({"a": template}, memo=memo)
    assert str(caught.value) == (
        "config value 'a': template error: TypeError: no loader for this environment specified"
    )
