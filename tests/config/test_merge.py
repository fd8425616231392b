"""``merge``: every rule of the original's layer application, one case each.

Reference: model-original.md §9.2. ``V`` builds a values layer, ``A`` an attributes layer.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contractor.config import ConfigError, merge


def V(mapping: dict[str, Any] | None, name: str | None = None) -> tuple[Any, ...]:
    return ("values", mapping) if name is None else ("values", mapping, name)


def A(mapping: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    return ("attributes", mapping)


def apply(old: dict[str, Any], layer: dict[str, Any], classes: list[str] | None = None) -> Any:
    return merge([V(old), V(layer)], classes or [])


MISSING = object()


def op_case(old: Any, key: str, operand: Any) -> dict[str, Any]:
    start = {} if old is MISSING else {"x": old}
    return apply(start, {key: operand})


# --- plain keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("old", [MISSING, "s", {"k": 1}, [1], 5, 1.5, True, None])
@pytest.mark.parametrize("new", ["t", {"n": 2}, [2], 7, 0.5, False, None])
def test_plain_key_sets_or_replaces_whatever_was_there(old: Any, new: Any) -> None:
    assert op_case(old, "x", new) == {"x": new}


def test_plain_dict_replaces_a_dict_wholesale() -> None:
    assert apply({"x": {"a": 1, "b": 2}}, {"x": {"c": 3}}) == {"x": {"c": 3}}


# --- '<' and '>' --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["<", ">"])
@pytest.mark.parametrize("operand", ["s", [1, 2], {"a": 1}, 3, None, True])
def test_prepend_append_on_missing_key_sets_the_operand_as_is(op: str, operand: Any) -> None:
    assert op_case(MISSING, op + "x", operand) == {"x": operand}


@pytest.mark.parametrize(
    ("operand", "prepended", "appended"),
    [
        ("ab", "abOLD", "OLDab"),
        (5, "5OLD", "OLD5"),
        (1.5, "1.5OLD", "OLD1.5"),
        (True, "TrueOLD", "OLDTrue"),
        (None, "NoneOLD", "OLDNone"),
        ([9], "[9]OLD", "OLD[9]"),
        ({"a": 99}, "{'a': 99}OLD", "OLD{'a': 99}"),
        ("", "OLD", "OLD"),
    ],
)
def test_prepend_append_on_string_use_str_of_the_operand(
    operand: Any, prepended: str, appended: str
) -> None:
    assert op_case("OLD", "<x", operand) == {"x": prepended}
    assert op_case("OLD", ">x", operand) == {"x": appended}


@pytest.mark.parametrize("op", ["<", ">"])
def test_prepend_append_on_dict_update_it_shallowly(op: str) -> None:
    old = {"a": 1, "b": {"deep": 1}, "c": 3}
    result = op_case(old, op + "x", {"b": {"other": 2}, "d": 4})
    # Existing keys are overwritten (not merged), new keys go at the end, for both operators.
    assert result == {"x": {"a": 1, "b": {"other": 2}, "c": 3, "d": 4}}
    assert list(result["x"]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("op", ["<", ">"])
@pytest.mark.parametrize("operand", ["asdf", ["asdf"], 1, None, True, 1.5])
def test_prepend_append_on_dict_need_a_dict(op: str, operand: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        merge([V({"x": {"a": 1}}), V({op + "x": operand}, "site child")], [])
    assert caught.value.key == op + "x"
    assert "site child" in str(caught.value)
    assert "dict" in str(caught.value)


@pytest.mark.parametrize(
    ("operand", "prepended", "appended"),
    [
        ([7, 8], [7, 8, 1, 2], [1, 2, 7, 8]),
        ([], [1, 2], [1, 2]),
        (0, [0, 1, 2], [1, 2, 0]),
        ("ab", ["ab", 1, 2], [1, 2, "ab"]),  # a string is one item, not its characters
        ({"s": 1}, [{"s": 1}, 1, 2], [1, 2, {"s": 1}]),  # a dict is one item
        (None, [None, 1, 2], [1, 2, None]),
        ([[3]], [[3], 1, 2], [1, 2, [3]]),
    ],
)
def test_prepend_append_on_list(operand: Any, prepended: list[Any], appended: list[Any]) -> None:
    assert op_case([1, 2], "<x", operand) == {"x": prepended}
    assert op_case([1, 2], ">x", operand) == {"x": appended}


@pytest.mark.parametrize("op", ["<", ">", "-"])
@pytest.mark.parametrize("old", [5, 0, 1.5, True, False, None])
@pytest.mark.parametrize("operand", ["s", [1], {"a": 1}, 2, None])
def test_operators_are_ignored_on_other_scalars(op: str, old: Any, operand: Any) -> None:
    assert op_case(old, op + "x", operand) == {"x": old}


# --- '-' ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("operand", ["s", [1], {"a": 1}, 1, None])
def test_remove_on_missing_key_does_nothing(operand: Any) -> None:
    assert op_case(MISSING, "-x", operand) == {}


@pytest.mark.parametrize(
    ("old", "operand", "expected"),
    [
        ("1 1 adsf", "1 ", "1 adsf"),  # only the first occurrence
        ("abc", "zzz", "abc"),  # not there: unchanged
        ("a1b1", 1, "ab1"),  # str() of the operand
        ("x[9]y", [9], "xy"),  # a list operand is its repr
        ("x{'a': 99}", {"a": 99}, "x"),
        ("xNoney", None, "xy"),
        ("abc", "", "abc"),
    ],
)
def test_remove_on_string(old: str, operand: Any, expected: str) -> None:
    assert op_case(old, "-x", operand) == {"x": expected}


@pytest.mark.parametrize(
    ("operand", "expected"),
    [
        ("b", {"a": 1, "c": 3}),
        ("zz", {"a": 1, "b": 2, "c": 3}),  # missing key ignored
        (["b", "c", "zz"], {"a": 1}),
        ([], {"a": 1, "b": 2, "c": 3}),
        ([1, None], {"a": 1, "b": 2, "c": 3}),  # hashable non-keys: nothing to remove
        (1, {"a": 1, "b": 2, "c": 3}),  # neither str nor list: nothing
        ({"b": 2}, {"a": 1, "b": 2, "c": 3}),
        (None, {"a": 1, "b": 2, "c": 3}),
    ],
)
def test_remove_on_dict(operand: Any, expected: dict[str, Any]) -> None:
    assert op_case({"a": 1, "b": 2, "c": 3}, "-x", operand) == {"x": expected}


@pytest.mark.parametrize("item", [["b"], {"b": 1}])
def test_remove_from_dict_with_an_unhashable_item_is_an_error(item: Any) -> None:
    # The original lets Python's TypeError escape here.
    with pytest.raises(ConfigError) as caught:
        op_case({"a": 1}, "-x", ["a", item])
    assert caught.value.key == "-x"


@pytest.mark.parametrize(
    ("old", "operand", "expected"),
    [
        ([0, 1, 2, 2, 7], [7], [0, 1, 2, 2]),
        ([0, 1, 2, 2], [1, 2], [0, 2]),  # first occurrence of each, in turn
        ([0, 2, 2], [2, 2], [0]),
        ([0, 8, 9], 9, [0, 8]),
        ([0, 8], 9, [0, 8]),  # missing ignored
        ([0, 8], [9, 0], [8]),
        ([{"s": 1}, 0], {"s": 1}, [0]),  # a dict operand is one item
        (["ab", "a"], "a", ["ab"]),  # strings compare whole
        ([[1], 1], [1], [[1]]),  # a list operand is a list of items...
        ([[1], 1], [[1]], [1]),  # ...so removing a list item needs it wrapped
        ([True, 1], 1, [1]),  # Python equality: True == 1
        ([1.0, 2], 1, [2]),
    ],
)
def test_remove_on_list(old: list[Any], operand: Any, expected: list[Any]) -> None:
    assert op_case(old, "-x", operand) == {"x": expected}


# --- '~' ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("old", [MISSING, "s", {"k": 1}, [1], 5, 1.5, True, None])
@pytest.mark.parametrize("operand", ["zzz", None, {"z": 1}])
def test_mask_deletes_whatever_was_there(old: Any, operand: Any) -> None:
    assert op_case(old, "~x", operand) == {}


def test_set_again_after_a_mask() -> None:
    layers = [V({"x": "a"}), V({"~x": ""}), V({"<x": "1"}), V({"~x": 0}), V({">x": ["y"]})]
    assert merge(layers, []) == {"x": ["y"]}


# --- the original's own sequences (contractor lib/config tests) ---------------------------------


def test_string_sequence() -> None:
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"bob": "1 adsf"}, {"bob": "1 adsf"}),
        ({"<bob": "1 "}, {"bob": "1 1 adsf"}),
        ({">bob": " 8"}, {"bob": "1 1 adsf 8"}),
        ({">bob": [9]}, {"bob": "1 1 adsf 8[9]"}),
        ({">bob": {"a": 99}}, {"bob": "1 1 adsf 8[9]{'a': 99}"}),
        ({"-bob": "{'a': 99}"}, {"bob": "1 1 adsf 8[9]"}),
        ({"-bob": "1 "}, {"bob": "1 adsf 8[9]"}),
        ({"bob": "zzz"}, {"bob": "zzz"}),
        ({"~bob": "zzz"}, {}),
        ({"<bob": "2"}, {"bob": "2"}),
    ]
    layers: list[Any] = []
    for layer, expected in steps:
        layers.append(V(layer))
        assert merge(layers, []) == expected


def test_class_sequence() -> None:
    layers: list[Any] = [V({"bob": "adsf"}), V({"jane:joe": "qwert"})]
    assert merge(layers, []) == {"bob": "adsf"}
    assert merge(layers, ["joe"]) == {"bob": "adsf", "jane": "qwert"}
    layers.append(V({"<bob:joe": "1"}))
    assert merge(layers, ["joe"]) == {"bob": "1adsf", "jane": "qwert"}
    layers.append(V({"bo-b:joe": "3"}))
    assert merge(layers, ["joe"]) == {"bob": "1adsf", "jane": "qwert", "bo-b": "3"}


# --- order within a layer ---------------------------------------------------------------------


def test_operators_run_in_first_character_order_not_layer_order() -> None:
    # '-' first, then plain keys, then '<', then '>', then '~', whatever the layer's order.
    layer = {"~gone": 1, ">a": "3", "<a": "1", "a": "2", "-a": "2", "gone": "x"}
    assert merge([V(layer)], []) == {"a": "123"}


def test_remove_runs_before_the_plain_key_of_the_same_layer() -> None:
    assert merge([V({"a": "xyz"}), V({"a": "abc", "-a": "b"})], []) == {"a": "abc"}


def test_mask_runs_after_everything_else_in_its_layer() -> None:
    assert merge([V({"~a": 0, "<a": "1", "a": "2"})], []) == {}


def test_result_order_follows_processing_order() -> None:
    layer = {"b": 1, "<c": 2, "A": 3, "1": 4, "-z": 5, "a": 6}
    assert list(merge([V(layer)], [])) == ["1", "A", "a", "b", "c"]


def test_existing_keys_keep_their_position_when_replaced() -> None:
    assert list(merge([V({"a": 1, "b": 2}), V({"a": 3})], [])) == ["a", "b"]
    assert list(merge([V({"a": 1, "b": 2}), V({"~a": 0}), V({"a": 3})], [])) == ["b", "a"]


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"a:C": 1, "a": 2}, 2),
        ({"a": 2, "a:C": 1}, 1),
        ({"a": 1, "a:D": 2, "a:C": 3}, 3),
        ({"a:D": 2, "a:C": 3, "a": 1}, 1),
    ],
)
def test_order_same_first_char_plain_keys_keep_layer_order(
    layer: dict[str, Any], expected: int
) -> None:
    assert merge([V(layer)], ["C", "D"]) == {"a": expected}


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"<a": "x", "<a:C": "y"}, "yx-"),
        ({"<a:C": "y", "<a": "x"}, "xy-"),
        ({">a": "x", ">a:C": "y"}, "-xy"),
        ({">a:C": "y", ">a": "x"}, "-yx"),
    ],
)
def test_order_same_first_char_operators_keep_layer_order(
    layer: dict[str, Any], expected: str
) -> None:
    assert merge([V({"a": "-"}), V(layer)], ["C"]) == {"a": expected}


def test_order_same_first_char_remove_on_lists() -> None:
    base = V({"a": [1, 2, 1]})
    assert merge([base, V({"-a": [1], "-a:C": 2})], ["C"]) == {"a": [1]}
    assert merge([base, V({"-a:C": [1, 1], "-a": 1})], ["C"]) == {"a": [2]}


def test_each_first_character_has_its_own_rank() -> None:
    # Digits, then upper case, then lower case, each in character order; the rest of the key
    # does not matter ("a9" before "aB" only because the layer says so).
    layer = {"z": 0, "Z": 0, "9": 0, "0": 0, "aB": 0, "A": 0, "a9": 0}
    assert list(merge([V(layer)], [])) == ["0", "9", "A", "Z", "aB", "a9", "z"]


# --- ':Class' filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ([], {"a": "base"}),
        (["VCenter"], {"a": "vc"}),
        (["vcenter"], {"a": "base"}),  # case-sensitive
        (["VCenterX"], {"a": "base"}),  # exact, not a prefix
        (["VCente"], {"a": "base"}),
        (["Other", "VCenter"], {"a": "vc"}),
    ],
)
def test_class_filter_is_exact_and_case_sensitive(
    classes: list[str], expected: dict[str, Any]
) -> None:
    assert merge([V({"a": "base"}), V({"a:VCenter": "vc"})], classes) == expected


@pytest.mark.parametrize(
    ("key", "operand", "applied", "skipped"),
    [
        ("<a:C", "p", "pbase", "base"),
        (">a:C", "s", "bases", "base"),
        ("-a:C", "ba", "se", "base"),
        ("~a:C", "", None, "base"),
    ],
)
def test_class_filter_applies_to_operators(
    key: str, operand: Any, applied: str | None, skipped: str
) -> None:
    layers = [V({"a": "base"}), V({key: operand})]
    assert merge(layers, ["C"]).get("a") == applied
    assert merge(layers, ["D"]) == {"a": skipped}


def test_class_filter_never_applies_without_a_class_list() -> None:
    assert merge([V({"a:C": 1, "<b:C": [1]})], []) == {}


# --- layers -------------------------------------------------------------------------------------


def test_later_layers_win() -> None:
    layers = [V({"a": 1, "b": 1}), V({"b": 2, "c": 2}), V({"c": 3})]
    assert merge(layers, []) == {"a": 1, "b": 2, "c": 3}


def test_none_and_empty_layers_are_skipped() -> None:
    assert merge([V(None), V({"a": 1}), A(None), V({}), A({})], []) == {"a": 1}
    assert merge([], []) == {}


def test_attributes_layers_are_plain_updates() -> None:
    layers = [
        V({"a": {"k": 1}, "b": "x"}),
        A({"a": {"other": 2}, "<b": "y", "c:C": 3, "~a": 0, "_site": "s1"}),
    ]
    assert merge(layers, ["C"]) == {
        "a": {"other": 2},
        "b": "x",
        "<b": "y",
        "c:C": 3,
        "~a": 0,
        "_site": "s1",
    }


def test_values_after_attributes_can_change_attributes() -> None:
    # A Structure's config_values come after foundation attributes and may operate on them.
    layers = [A({"_foundation_id": "f1", "list": [1]}), V({">list": 2})]
    assert merge(layers, []) == {"_foundation_id": "f1", "list": [1, 2]}


def test_layer_names_are_optional_third_items() -> None:
    assert merge([("values", {"a": 1}, "site root"), ("attributes", {"_site": "r"}, "x")], []) == {
        "a": 1,
        "_site": "r",
    }


def test_class_list_may_be_any_iterable() -> None:
    assert merge([V({"a:C": 1})], ("C",)) == {"a": 1}
    assert merge([V({"a:C": 1})], iter(["C"])) == {"a": 1}
    assert merge(iter([V({"a": 1})]), []) == {"a": 1}
    assert merge([V({"a:C": 1, "b": 2})], None) == {"b": 2}


def test_layers_may_be_lists_as_loaded_from_json() -> None:
    assert merge([["values", {"a": 1}], ["attributes", {"_b": 2}, "named"]], []) == {
        "a": 1,
        "_b": 2,
    }


@pytest.mark.parametrize(
    "layer",
    [("other", {}), ("values",), ("values", {}, "name", "extra"), "values", ("values", ["a"])],
)
def test_malformed_layers_are_config_errors(layer: Any) -> None:
    with pytest.raises(ConfigError):
        merge([layer], [])


# --- copies -------------------------------------------------------------------------------------


def test_inputs_are_never_mutated() -> None:
    layers: list[Any] = [
        V({"d": {"a": 1}, "l": [1, 2, 3], "s": "abc", "n": {"deep": [1]}}),
        V({"<d": {"b": 2}, "-l": [2], ">l": [4], "-d": "a", "~s": 0, ">n": {"x": [5]}}),
        V({"-l": 1, "<n": {"deep": [9]}}),
        A({"attr": {"z": [1]}}),
    ]
    before = copy.deepcopy(layers)
    result = merge(layers, [])
    assert layers == before
    assert result == {"d": {"b": 2}, "l": [3, 4], "n": {"deep": [9], "x": [5]}, "attr": {"z": [1]}}


def test_result_does_not_alias_the_layers() -> None:
    shared = {"inner": [1]}
    layer = {"a": shared, "<b": shared, "c": [shared]}
    attrs = {"_m": shared}
    result = merge([V(layer), A(attrs)], [])
    result["a"]["inner"].append(2)
    result["b"]["inner"].append(3)
    result["c"][0]["inner"].append(4)
    result["_m"]["inner"].append(5)
    assert shared == {"inner": [1]}


def test_operands_merged_into_existing_values_are_copies() -> None:
    operand = {"k": [1]}
    items = [[1]]
    result = merge([V({"d": {}, "l": []}), V({"<d": operand, ">l": items})], [])
    result["d"]["k"].append(2)
    result["l"][0].append(2)
    assert operand == {"k": [1]}
    assert items == [[1]]


def test_merging_twice_gives_the_same_result() -> None:
    layers = [V({"l": [1]}), V({">l": [2], "<d": {"a": 1}}), V({"<d": {"b": 2}})]
    assert merge(layers, []) == merge(layers, []) == {"l": [1, 2], "d": {"a": 1, "b": 2}}
