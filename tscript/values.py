"""Script values: operators, copying, and the JSON encodings.

Values are plain Python objects (int, float, str, bool, None, list, dict, timedelta, complex,
and opaque objects that plugins hand out). Two JSON encodings exist:

* the **state** encoding (``StateEncoder``/``StateDecoder``) used inside a saved runner. It is
  exact and keeps object identity: every list and dict is numbered in depth-first order and a
  second occurrence is written ``{"__ref__": n}`` (so aliasing and cycles survive). Typed
  values: ``{"__int__": hex}`` (beyond 2**53), ``{"__float__": "inf"|"-inf"|"nan"}``,
  ``{"__timedelta__": [days, seconds, microseconds]}``, ``{"__complex__": [re, im]}``,
  ``{"__tuple__": [...]}``, ``{"__map__": [[key, value], ...]}`` for a dict whose keys are not
  all plain strings, and ``{"__object__": [module, data]}`` for a plugin object (encoded by the
  plugin module that owns it).
* the **output** encoding (``to_output``) of ``tscript run --json``: timedelta as
  ``{"__timedelta__": seconds}``, non-string-key maps as ``{"__map__": [[k, v], ...]}``,
  inf/nan as ``{"__float__": ...}``, complex as ``{"__complex__": [re, im]}``, ints as ints.
"""

from __future__ import annotations

import copy
import math
import operator
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeAlias

from tscript.errors import ParameterError, ScriptError

__all__ = [
    "OPERATORS",
    "JSONValue",
    "StateDecoder",
    "StateEncoder",
    "copy_value",
    "to_literal",
    "to_output",
    "to_text",
]

JSONValue: TypeAlias = Any
"""A value made of dict, list, str, int, float, bool and None only."""

_IMMUTABLE = frozenset({int, float, str, bool, type(None), timedelta, complex})
_SAFE_INT = 2**53
# guards against scripts that would take minutes or gigabytes for one operation
_MAX_POWER_BITS = 1 << 22
_MAX_TEXT = 1 << 26


def copy_value(value: Any) -> Any:
    """The deep copy stored by an assignment (immutable values are returned as they are)."""
    if type(value) in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def _check_numeric(left: Any, right: Any) -> None:
    if not isinstance(left, int | float):
        raise ParameterError("left of operator", "must be numeric")
    if not isinstance(right, int | float):
        raise ParameterError("right of operator", "must be numeric")


def _numeric(function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        _check_numeric(left, right)
        return function(left, right)

    return apply


def _power(left: Any, right: Any) -> Any:
    _check_numeric(left, right)
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and abs(left) > 1
        and right * left.bit_length() > _MAX_POWER_BITS
    ):
        raise ScriptError(f"the result of ( {left} ^ {right} ) is too large")
    return left**right


def _multiply(left: Any, right: Any) -> Any:
    _check_numeric(left, right)
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > _MAX_POWER_BITS
    ):
        raise ScriptError("the result of the multiplication is too large")
    return left * right


_LABEL = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")
_MAX_SHOWN_DEPTH = 100


def to_text(value: Any) -> str:
    """``value`` as TScript writes it, for ``.``, messages and error texts.

    A string stands for itself; inside an array or a map it is quoted (``'web01'``, or
    ``"it's"`` when it holds a single quote). ``true``, ``false``, ``none``, arrays
    ``[ 1, 'x' ]``, maps ``{ name='web01', count=2 }`` (a key that is not a name is quoted),
    times ``1:30`` / ``2:00:05`` / ``1:00:00:05``. A value met again inside itself is
    ``...``; one nested more than 100 deep shows ``...`` below that depth.
    """
    if isinstance(value, str):
        return str(value)
    return to_literal(value)


def to_literal(value: Any) -> str:
    """``value`` as TScript writes it inside an array: like ``to_text``, a string quoted."""
    if type(value) is int:
        return str(value)
    out: list[str] = []
    _write(value, out, set(), 0)
    return "".join(out)


def _quote(text: str) -> str:
    quote = '"' if "'" in text and '"' not in text else "'"
    return f"{quote}{text}{quote}"


def _time_text(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    minutes, seconds = divmod(value.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
    if value.days:
        text = f"{value.days}:{hours:02d}:{minutes:02d}:{seconds:02d}"
    elif hours:
        text = f"{hours}:{minutes:02d}:{seconds:02d}"
    else:
        text = f"{minutes}:{seconds:02d}"
    return f"{sign}{text}{fraction}"


def _write(value: Any, out: list[str], active: set[int], depth: int) -> None:
    # recursion is bounded by _MAX_SHOWN_DEPTH, far below Python's limit
    if value is None:
        out.append("none")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, int | float):
        out.append(str(value))
    elif isinstance(value, timedelta):
        out.append(_time_text(value))
    elif isinstance(value, list | tuple | dict):
        if id(value) in active or depth >= _MAX_SHOWN_DEPTH:
            out.append("...")
            return
        if not value:
            out.append("{}" if isinstance(value, dict) else "[]")
            return
        active.add(id(value))
        if isinstance(value, dict):
            out.append("{ ")
            for position, (key, item) in enumerate(value.items()):
                if position:
                    out.append(", ")
                if isinstance(key, str) and _LABEL.match(key):
                    out.append(key)
                else:
                    _write(key, out, active, depth + 1)
                out.append("=")
                _write(item, out, active, depth + 1)
            out.append(" }")
        else:
            out.append("[ ")
            for position, item in enumerate(value):
                if position:
                    out.append(", ")
                _write(item, out, active, depth + 1)
            out.append(" ]")
        active.discard(id(value))
    else:
        out.append(str(value))


def _concatenate(left: Any, right: Any) -> str:
    text_left = to_text(left)
    text_right = to_text(right)
    if len(text_left) + len(text_right) > _MAX_TEXT:
        raise ScriptError("the concatenated string is too long")
    return text_left + text_right


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ".": _concatenate,
    "^": _power,
    "*": _multiply,
    "/": _numeric(operator.truediv),
    "%": _numeric(operator.mod),
    "+": _numeric(operator.add),
    "-": _numeric(operator.sub),
    "&": _numeric(operator.and_),
    "|": _numeric(operator.or_),
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
}
"""Every binary operator except the short-circuit ``and``/``or``."""


def _plain_key(key: Any) -> bool:
    return type(key) is str and not (key.startswith("__") and key.endswith("__"))


ObjectEncoder: TypeAlias = Callable[[Any], "tuple[str, JSONValue] | None"]
ObjectDecoder: TypeAlias = Callable[[str, JSONValue], Any]


class StateEncoder:
    """Encode values for a saved runner; one encoder per document keeps identities shared."""

    def __init__(self, encode_object: ObjectEncoder | None = None) -> None:
        self._seen: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps ids stable while encoding
        self._encode_object = encode_object

    def encode(self, value: Any) -> JSONValue:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            return value if -_SAFE_INT < value < _SAFE_INT else {"__int__": hex(value)}
        if kind is float:
            if math.isfinite(value):
                return value
            return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if kind is list or kind is dict:
            ref = self._seen.get(id(value))
            if ref is not None:
                return {"__ref__": ref}
            self._seen[id(value)] = len(self._seen)
            self._keep.append(value)
            # plain loops, not comprehensions: one Python frame per nesting level
            if kind is list:
                items = []
                for item in value:
                    items.append(self.encode(item))
                return items
            if all(_plain_key(key) for key in value):
                entries = {}
                for key, item in value.items():
                    entries[key] = self.encode(item)
                return entries
            pairs = []
            for key, item in value.items():
                pairs.append([self.encode(key), self.encode(item)])
            return {"__map__": pairs}
        if kind is timedelta:
            return {"__timedelta__": [value.days, value.seconds, value.microseconds]}
        if kind is complex:
            return {"__complex__": [self.encode(value.real), self.encode(value.imag)]}
        if kind is tuple:
            return {"__tuple__": [self.encode(item) for item in value]}
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.encode(int(value))
        if isinstance(value, float):
            return self.encode(float(value))
        if isinstance(value, str):
            return str(value)
        if self._encode_object is not None:
            encoded = self._encode_object(value)
            if encoded is not None:
                return {"__object__": [encoded[0], encoded[1]]}
        raise TypeError(f"cannot save a value of type {kind.__name__}")


class StateDecoder:
    """Decode what ``StateEncoder`` wrote, in the same order, rebuilding shared objects."""

    def __init__(self, decode_object: ObjectDecoder | None = None) -> None:
        self._objects: list[Any] = []
        self._decode_object = decode_object

    def decode(self, data: JSONValue) -> Any:
        kind = type(data)
        if kind is list:
            result: list[Any] = []
            self._objects.append(result)
            for item in data:
                result.append(self.decode(item))
            return result
        if kind is not dict:
            return data
        if len(data) == 1:
            ((tag, payload),) = data.items()
            if tag == "__ref__":
                return self._objects[payload]
            if tag == "__map__":
                mapping: dict[Any, Any] = {}
                self._objects.append(mapping)
                for key, item in payload:
                    decoded_key = self.decode(key)
                    mapping[decoded_key] = self.decode(item)
                return mapping
            if tag == "__int__":
                return int(payload, 16)
            if tag == "__float__":
                return float(payload)
            if tag == "__timedelta__":
                return timedelta(days=payload[0], seconds=payload[1], microseconds=payload[2])
            if tag == "__complex__":
                return complex(self.decode(payload[0]), self.decode(payload[1]))
            if tag == "__tuple__":
                return tuple(self.decode(item) for item in payload)
            if tag == "__object__":
                if self._decode_object is None:
                    raise ValueError(f'no module to restore an object of "{payload[0]}"')
                return self._decode_object(payload[0], payload[1])
        plain: dict[str, Any] = {}
        self._objects.append(plain)
        for key, item in data.items():
            plain[key] = self.decode(item)
        return plain


def _output_float(value: float) -> JSONValue:
    if math.isfinite(value):
        return value
    return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def to_output(value: Any, _active: frozenset[int] = frozenset()) -> JSONValue:
    """The ``tscript run --json`` encoding of a value (a cycle is cut with ``null``)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _output_float(value)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if value.microseconds == 0:
            return {"__timedelta__": value.days * 86400 + value.seconds}
        return {"__timedelta__": seconds}
    if isinstance(value, complex):
        return {"__complex__": [_output_float(value.real), _output_float(value.imag)]}
    if isinstance(value, list | tuple | dict):
        if id(value) in _active:
            return None
        active = _active | {id(value)}
        if isinstance(value, dict):
            if all(type(key) is str for key in value):
                return {key: to_output(item, active) for key, item in value.items()}
            return {
                "__map__": [[to_output(k, active), to_output(v, active)] for k, v in value.items()]
            }
        return [to_output(item, active) for item in value]
    return str(value)
