"""Config key grammar: what ``merge`` and ``validate_config_values`` accept and reject."""

from __future__ import annotations

from typing import Any

import pytest

from contractor.config import ConfigError, merge, parse_key, validate_config_values
from contractor.errors import ContractorError, InvalidInput

VALID = [
    "a",
    "A",
    "0",
    "dns_servers",
    "dns-servers",
    "a_",
    "a-",
    "9lives",
    "<dns_search",
    ">dns_search",
    "-dns_search",
    "~dns_search",
    "ntp:VCenter",
    "<ntp:VCenter",
    "~ntp:Vcenter2",
    "bo-b:joe",
]

INVALID: list[Any] = [
    "",
    "_site",
    "__last_modified",
    "-_a",
    "<",
    "~",
    "<<a",
    "<-a",
    "a b",
    "a.b",
    "a:",
    ":C",
    "~:C",
    "a:B:C",
    "bob:jo-e",
    "bob:jo_e",
    "a!",
    "é",
    "a\n",
    " a",
    "+a",
    "{a}",
]


@pytest.mark.parametrize("key", VALID)
def test_valid_keys_pass(key: str) -> None:
    validate_config_values({key: 1})
    merge([("values", {key: 1})], [])


@pytest.mark.parametrize("key", INVALID)
def test_invalid_key_is_named_by_validate(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config_values({"fine": 1, key: 1})
    assert caught.value.key == key
    assert repr(key) in str(caught.value)


@pytest.mark.parametrize("key", INVALID)
def test_invalid_key_is_named_by_merge(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        merge([("values", {"fine": 1}), ("values", {"ok": 2, key: 1}, "site child")], [])
    assert caught.value.key == key
    assert repr(key) in str(caught.value)
    assert "site child" in str(caught.value)


def test_non_string_key_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        merge([("values", {1: "x"})], [])
    assert caught.value.key == "1"
    with pytest.raises(ConfigError):
        validate_config_values({None: "x"})  # type: ignore[dict-item]


def test_config_error_is_a_contractor_error_with_its_code() -> None:
    with pytest.raises(ContractorError) as caught:
        validate_config_values({"_x": 1})
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "CONFIG_ERROR"
    assert caught.value.as_dict()["field"] == "_x"


def test_reserved_names_get_a_helpful_message() -> None:
    with pytest.raises(ConfigError, match="reserved for attributes"):
        validate_config_values({"_hostname": "x"})
    with pytest.raises(ConfigError, match="letters and digits"):
        validate_config_values({"a:jo-e": "x"})


def test_validate_rejects_a_non_map() -> None:
    with pytest.raises(ConfigError, match="must be a map"):
        validate_config_values(["a"])  # type: ignore[arg-type]


def test_invalid_keys_are_rejected_even_when_filtered_out() -> None:
    # Validation does not depend on the class list: a bad key fails for every target.
    with pytest.raises(ConfigError):
        merge([("values", {"a:B-": 1})], [])


def test_attributes_layers_are_not_validated() -> None:
    assert merge([("attributes", {"_site": "s", "__x": 1, "a b": 2})], []) == {
        "_site": "s",
        "__x": 1,
        "a b": 2,
    }


@pytest.mark.parametrize(
    ("key", "op", "name", "class_name"),
    [
        ("a", "", "a", None),
        ("<a", "<", "a", None),
        ("~a:C1", "~", "a", "C1"),
        ("-a-b:X", "-", "a-b", "X"),
    ],
)
def test_parse_key(key: str, op: str, name: str, class_name: str | None) -> None:
    parsed = parse_key(key)
    assert (parsed.op, parsed.name, parsed.class_name) == (op, name, class_name)
