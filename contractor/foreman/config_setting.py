"""``structure.set_config( name=..., value=... )``: one value of a structure's own config
values set by a Structure job's script, by dotted path, obeying the rules of the API."""

from __future__ import annotations

import copy
from typing import Any

from contractor.config import parse_key
from contractor.errors import ConfigError, InvalidInput
from contractor.services.validation import check_config_values
from tscript import ParameterError

__all__ = ["set_config_value"]


def set_config_value(values: dict[str, Any], *, name: Any, value: Any) -> None:
    """Set ``name`` (dotted path; digits index lists) in the structure's own config
    values: an existing value, a new top-level key, or a new key in an existing map.
    Keys and values obey the rules of the API (``check_config_values``)."""
    if not isinstance(name, str) or not name:
        raise ParameterError("name", "must be a config key (dotted for nested values)")
    top, *path = name.split(".")
    try:
        parse_key(top)
    except ConfigError as error:
        raise ParameterError("name", error.message) from None
    new = value
    if path:
        if top not in values:
            raise ParameterError("name", f"{top!r} does not exist, so {name!r} cannot be set")
        new = copy.deepcopy(values[top])
        holder: Any = new
        for index, part in enumerate(path):
            where = ".".join([top, *path[:index]])
            last = index == len(path) - 1
            if isinstance(holder, list):
                if not part.isdigit():
                    raise ParameterError("name", f"{where!r} is a list: {part!r} is not an index")
                position = int(part)
                if position >= len(holder):
                    raise ParameterError(
                        "name",
                        f"{where!r} has {len(holder)} items: index {position} is out of "
                        "range (appending is not supported)",
                    )
                if last:
                    holder[position] = value
                else:
                    holder = holder[position]
            elif isinstance(holder, dict):
                if not part:
                    raise ParameterError("name", f"{name!r} has an empty part after {where!r}")
                if last:
                    holder[part] = value
                elif part not in holder:
                    missing = f"{where}.{part}"
                    raise ParameterError(
                        "name", f"{missing!r} does not exist, so {name!r} cannot be set"
                    )
                else:
                    holder = holder[part]
            else:
                raise ParameterError(
                    "name", f"{where!r} is a {type(holder).__name__}, not a map or a list"
                )
    try:
        checked = check_config_values({top: new}, field="value")
    except InvalidInput as error:
        raise ParameterError("value", error.message) from None
    values[top] = checked[top]
