"""``explain``: which layer set each key, which changed, masked or filtered it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from contractor.config import Change, ConfigError, Explanation, KeyProvenance, explain, merge

LAYERS: list[Any] = [
    ("values", {"dns": ["10.0.0.1"], "zone": "example", "ntp": "pool", "gone": 1}, "site root"),
    ("values", {"<dns": "10.0.1.1", "zone": "dc1", "~gone": 0, "ntp:VCenter": "vc"}, "site dc1"),
    ("attributes", {"_site": "dc1"}, "_site"),
    ("values", {">dns": ["10.0.2.1"], "-dns": "10.0.0.1", "-nothing": 1, ">zone": ".local"}),
]


@pytest.fixture
def explained() -> Explanation:
    return explain(LAYERS, [])


def test_explain_agrees_with_merge(explained: Explanation) -> None:
    assert explained.values == merge(LAYERS, [])
    assert list(explained.keys) == list(merge(LAYERS, []))


def test_set_by_and_later_changes(explained: Explanation) -> None:
    dns = explained.keys["dns"]
    assert dns.value == ["10.0.1.1", "10.0.2.1"]
    assert dns.set_by == "site root"
    # '-' runs before '>' inside the last layer (first-character order).
    assert [(c.layer, c.op, c.original_key) for c in dns.changes] == [
        ("site dc1", "prepend", "<dns"),
        ("layer 3", "remove", "-dns"),
        ("layer 3", "append", ">dns"),
    ]
    assert dns.changes[0].value == "10.0.1.1"


def test_a_replacement_becomes_the_new_origin(explained: Explanation) -> None:
    zone = explained.keys["zone"]
    assert zone.value == "dc1.local"
    assert zone.set_by == "site dc1"
    assert [c.op for c in zone.changes] == ["append"]
    assert [(c.layer, c.op) for c in zone.history] == [
        ("site root", "set"),
        ("site dc1", "replace"),
        ("layer 3", "append"),
    ]


def test_attributes_are_attributed(explained: Explanation) -> None:
    site = explained.keys["_site"]
    assert (site.set_by, site.value, site.changes) == ("_site", "dc1", ())
    assert site.history[0].op == "attribute"


def test_masked_keys_are_listed_with_the_masking_layer(explained: Explanation) -> None:
    assert "gone" not in explained.keys
    gone = explained.masked["gone"]
    assert gone.masked_by == "site dc1"
    assert gone.value == 1
    assert gone.set_by == "site root"
    assert [c.op for c in gone.history] == ["set", "mask"]


def test_filtered_entries_are_listed(explained: Explanation) -> None:
    assert [(c.layer, c.key, c.original_key) for c in explained.filtered] == [
        ("site dc1", "ntp", "ntp:VCenter")
    ]
    ntp = explained.keys["ntp"]
    assert ntp.value == "pool"
    assert [c.op for c in ntp.history] == ["set", "filtered"]
    with_class = explain(LAYERS, ["VCenter"])
    assert with_class.keys["ntp"].set_by == "site dc1"
    assert with_class.filtered == ()


def test_entries_that_did_nothing_are_listed(explained: Explanation) -> None:
    assert [(c.key, c.original_key) for c in explained.ignored] == [("nothing", "-nothing")]


def test_ignored_operators_on_scalars() -> None:
    result = explain([("values", {"n": 5}), ("values", {"<n": 1, "~absent": 0})], [])
    assert result.keys["n"].changes == ()
    assert [(c.key, c.op) for c in result.ignored] == [("n", "no-op"), ("absent", "no-op")]
    assert result.masked == {}


def test_a_masked_key_set_again_is_a_final_key() -> None:
    layers: list[Any] = [
        ("values", {"a": "x"}, "one"),
        ("values", {"~a": 0}, "two"),
        ("values", {"<a": "y"}, "three"),
    ]
    result = explain(layers, [])
    assert result.masked == {}
    assert result.keys["a"].set_by == "three"
    assert result.keys["a"].masked_by is None
    assert [c.op for c in result.keys["a"].history] == ["set", "mask", "set"]


def test_dict_update_is_a_change() -> None:
    result = explain([("values", {"d": {"a": 1}}), ("values", {">d": {"b": 2}})], [])
    assert [c.op for c in result.keys["d"].changes] == ["update"]


def test_layer_names_default_to_their_position() -> None:
    result = explain([("values", None), ("values", {"a": 1}), ("attributes", {"b": 2})], [])
    assert result.keys["a"].set_by == "layer 1"
    assert result.keys["b"].set_by == "layer 2"


def test_results_are_frozen() -> None:
    result = explain([("values", {"a": 1})], [])
    with pytest.raises(AttributeError):
        result.keys["a"].set_by = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.keys["b"] = result.keys["a"]  # type: ignore[index]
    assert isinstance(result.keys["a"], KeyProvenance)
    assert isinstance(result.keys["a"].history[0], Change)


def test_operands_in_the_report_are_copies() -> None:
    operand = [1]
    result = explain([("values", {">a": operand})], [])
    operand.append(2)
    assert result.keys["a"].history[0].value == [1]


def test_explain_does_not_mutate_the_layers() -> None:
    before = copy.deepcopy(LAYERS)
    explain(LAYERS, ["VCenter"])
    assert before == LAYERS


def test_to_dict_is_json_ready(explained: Explanation) -> None:
    data = json.loads(json.dumps(explained.to_dict()))
    assert data["keys"]["dns"]["set_by"] == "site root"
    assert data["keys"]["dns"]["changes"][0] == {
        "layer": "site dc1",
        "op": "prepend",
        "key": "dns",
        "original_key": "<dns",
        "value": "10.0.1.1",
    }
    assert data["masked"]["gone"]["masked_by"] == "site dc1"
    assert "masked_by" not in data["keys"]["dns"]
    assert data["filtered"][0]["original_key"] == "ntp:VCenter"
    assert data["ignored"][0]["original_key"] == "-nothing"


def test_explain_raises_like_merge() -> None:
    with pytest.raises(ConfigError) as caught:
        explain([("values", {"d": {}}), ("values", {"<d": "x"}, "bad layer")], [])
    assert caught.value.key == "<d"
    assert "bad layer" in str(caught.value)
    with pytest.raises(ConfigError):
        explain([("values", {"_x": 1})], [])
