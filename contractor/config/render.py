"""Rendering merged configuration values through Jinja2 until they stop changing.

One round renders every string value (in dicts and lists, at any depth; keys never) with the
whole map of the previous round as its context; rounds repeat while any string changed. As in
the original: rendered strings stay strings (``'{{ n }}'`` with ``n=2`` gives ``'2'``), other
values are untouched, undefined names render empty, one trailing newline is stripped per
round, a list or dict inserted into a string appears as its Python repr, and ``tojson`` sorts
keys and writes datetimes as ISO strings and undefined values as ``""``.

Beyond the original: a round limit (a self-growing value such as ``a: 'x{{ a }}'`` used to
loop forever) reported as a ``RenderCycleError`` naming the keys still changing, a length
limit that stops values doubling every round, and a sandboxed environment (config values are
written by operators; a template must not reach Python internals).
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, Undefined, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from contractor.config.engine import copy_value
from contractor.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_ROUNDS",
    "RenderCycleError",
    "RenderMemo",
    "jinja_environment",
    "render",
    "render_template",
]

DEFAULT_MAX_ROUNDS = 100
"""Render rounds before giving up. Each round resolves one level of references and strips one
trailing newline, so real configurations settle in a handful."""

DEFAULT_MAX_LENGTH = 1 << 20
"""A string that grows past this many characters while rendering is reported as a cycle."""


class RenderCycleError(ConfigError):
    """Rendering did not settle: ``keys`` are the values (as paths) still changing."""

    def __init__(self, message: str, *, keys: Sequence[str]) -> None:
        super().__init__(message, key=keys[0] if keys else None)
        self.keys = tuple(keys)


def _json_default(value: object) -> object:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Undefined):
        return ""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@lru_cache(maxsize=1)
def jinja_environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja2 environment used for configuration values (built on first use)."""
    environment = ImmutableSandboxedEnvironment(
        autoescape=False, keep_trailing_newline=False, undefined=Undefined
    )
    environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default}
    return environment


@lru_cache(maxsize=4096)
def _compile(source: str) -> Template:
    return jinja_environment().from_string(source)


_MEMO_TYPES = frozenset({str, int, float, bool, type(None)})
_ABSENT = ("absent",)
_UNCACHEABLE = re.compile(r"random|lipsum|cycler|joiner|namespace")


@lru_cache(maxsize=4096)
def _names(source: str) -> tuple[str, ...] | None:
    """The top-level names a template reads, or None when its output may differ between two
    renders with the same names (a random filter, a lipsum) and must not be remembered."""
    if _UNCACHEABLE.search(source):
        return None
    return tuple(sorted(meta.find_undeclared_variables(jinja_environment().parse(source))))


class RenderMemo:
    """Remembers rendered strings by template and the values of the names it reads, for
    many configurations rendered together: a template such as ``{{ dns_servers }}`` set
    high in the site tree renders once for all the Structures below that share its values.
    Only templates whose names all hold plain scalars (or Jinja2's own globals) are
    remembered; the results are exactly those of rendering every string.

    It also remembers which lists and dicts hold only plain values at every depth (see
    ``_is_plain``): rendering leaves those as they are, so a render with a memo puts them
    into its result as they are instead of copying them (the configurations of a batch
    share the values their common layers gave them; they are read-only). The memo keeps
    each container it has seen alive, so an ``id`` stands for one container while it lasts;
    the containers must not change while it is in use."""

    def __init__(self) -> None:
        self._done: dict[tuple[Any, ...], str] = {}
        self._plain: dict[int, tuple[Any, bool]] = {}
        self._context: dict[str, Any] | None = None  # held: its id is not reused meanwhile
        self._values: dict[tuple[str, ...], tuple[Any, ...] | None] = {}

    def plain(self, node: dict[Any, Any] | list[Any]) -> bool:
        """Whether every value in ``node``, at any depth, is plain (and a dict, list or one
        of the scalars rendering leaves as they are)."""
        found = self._plain.get(id(node))
        if found is not None:
            return found[1]
        result = True
        for item in node.values() if type(node) is dict else node:
            kind = type(item)
            if kind is dict or kind is list:
                if not self.plain(item):
                    result = False
                    break
            elif kind is str:
                if "{" in item or "\r" in item or item.endswith("\n"):  # not _is_plain, inline
                    result = False
                    break
            elif kind not in _SCALARS:
                result = False
                break
        self._plain[id(node)] = (node, result)
        return result

    def key(self, source: str, context: dict[str, Any], limit: int) -> tuple[Any, ...] | None:
        """What a render of ``source`` in ``context`` is remembered by, or None when it must
        not be (see the class)."""
        names = _names(source)
        if names is None:
            return None
        if context is not self._context:
            # A round's context does not change while the round lasts, and most of its
            # templates read the same few names: their values are looked up once a round.
            self._context, self._values = context, {}
        values = self._values.get(names, _ABSENT)
        if values is _ABSENT:
            values = self._values[names] = _values_read(names, context)
        return None if values is None else (source, limit, values)


def _values_read(names: tuple[str, ...], context: dict[str, Any]) -> tuple[Any, ...] | None:
    """The values of ``names`` in ``context`` as a memo key's part, or None when one of them
    is not a plain scalar (nor Jinja2's own global of that name)."""
    jinja_globals = jinja_environment().globals
    parts: list[Any] = []
    for name in names:
        value = context.get(name, _ABSENT)
        if value is _ABSENT:
            parts.append(_ABSENT)
        elif type(value) in _MEMO_TYPES:
            parts.append((type(value), value))  # 1, 1.0 and True render differently
        elif value is jinja_globals.get(name):
            parts.append(("global", name))
        else:
            return None
    return tuple(parts)


_NEWLINES = re.compile(r"\r\n?")
_SCALARS = frozenset({int, float, bool, type(None), datetime.datetime, datetime.date})


class _TooLong(Exception):
    pass


def _render_text(
    source: str, context: dict[str, Any], max_length: int, memo: RenderMemo | None = None
) -> str:
    """Render one string; ``_TooLong`` once the output passes ``max_length`` characters
    (checked while rendering: a value that doubles its references grows by squaring)."""
    if "{" not in source:
        # All Jinja2 does to text without markup: '\r\n' and '\r' become '\n', and one
        # trailing newline goes (keep_trailing_newline=False). Done here without compiling.
        if "\r" in source:
            source = _NEWLINES.sub("\n", source)
        return source[:-1] if source.endswith("\n") else source
    key = None if memo is None else memo.key(source, context, max_length)
    if key is not None:
        assert memo is not None
        done = memo._done.get(key)
        if done is None:
            done = memo._done[key] = _render_markup(source, context, max_length)
        return done
    return _render_markup(source, context, max_length)


def _render_markup(source: str, context: dict[str, Any], max_length: int) -> str:
    limit = max(max_length, len(source))
    pieces: list[str] = []
    length = 0
    template = _compile(source)
    # A context sharing ``context`` (globals already merged in, see ``_context``) instead of
    # ``Template.generate``, which copies the whole map twice for every string; and made
    # without ``Template.new_context``'s set of the globals' names (a walk over a ChainMap
    # each time), which Jinja2 reads only to pass them on to an ``{% import %}`` or
    # ``{% include %}``: those need a loader, which this environment has not.
    environment = template.environment
    shared = environment.context_class(environment, context, template.name, template.blocks)
    for piece in template.root_render_func(shared):
        length += len(piece)
        if length > limit:
            raise _TooLong
        pieces.append(piece)
    return "".join(pieces)


def _describe(error: Exception) -> str:
    if isinstance(error, TemplateSyntaxError):
        return f"template syntax error: {error.message} (line {error.lineno})"
    if isinstance(error, UndefinedError):
        return f"undefined value in template: {error.message}"
    if isinstance(error, SecurityError):
        return f"not allowed in a template: {error}"
    return f"template error: {type(error).__name__}: {error}"


class _Failure(Exception):
    """Raised from a leaf; each enclosing container adds its key on the way out."""

    def __init__(self, message: str, *, grows: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.grows = grows
        self.path: list[str] = []


def _is_plain(value: Any) -> bool:
    """A scalar that rendering leaves as it is (see ``_render_text``), whatever the context:
    a round never changes it, so it needs no rendering in any later round either."""
    if isinstance(value, str):
        return "{" not in value and "\r" not in value and not value.endswith("\n")
    return type(value) in _SCALARS


class _Round:
    """What one round found besides its result: ``live`` once it leaves a string that is
    not plain (``_is_plain``), which the next round may still change."""

    __slots__ = ("live",)

    def __init__(self) -> None:
        self.live = False


def _render_node(
    node: Any, context: dict[str, Any], max_length: int, memo: RenderMemo | None, found: _Round
) -> tuple[Any, bool]:
    if isinstance(node, str):
        try:
            text = _render_text(node, context, max_length, memo)
        except _TooLong:
            raise _Failure(
                f"grows past {max_length} characters while rendering (does it refer to itself?)",
                grows=True,
            ) from None
        except Exception as error:
            raise _Failure(_describe(error)) from error
        if "{" in text or "\r" in text or text.endswith("\n"):  # not _is_plain(text)
            found.live = True
        if text == node:
            return node, False
        return text, True
    if isinstance(node, dict):
        changed = False
        rendered: dict[Any, Any] = {}
        for key, item in node.items():
            # _is_plain, inline: most values are plain, and this loop sees every one
            kind = type(item)
            if (
                kind is str and "{" not in item and "\r" not in item and not item.endswith("\n")
            ) or kind in _SCALARS:
                rendered[key] = item
                continue
            if memo is not None and (kind is dict or kind is list) and memo.plain(item):
                rendered[key] = item  # nothing in it renders: shared, not copied
                continue
            try:
                rendered[key], item_changed = _render_node(item, context, max_length, memo, found)
            except _Failure as failure:
                failure.path.append(str(key))
                raise
            changed = changed or item_changed
        return rendered, changed
    if isinstance(node, list):
        changed = False
        items: list[Any] = []
        for index, item in enumerate(node):
            kind = type(item)  # _is_plain, inline (as for a dict)
            if (
                kind is str and "{" not in item and "\r" not in item and not item.endswith("\n")
            ) or kind in _SCALARS:
                items.append(item)
                continue
            if memo is not None and (kind is dict or kind is list) and memo.plain(item):
                items.append(item)  # nothing in it renders: shared, not copied
                continue
            try:
                new_item, item_changed = _render_node(item, context, max_length, memo, found)
            except _Failure as failure:
                failure.path.append(str(index))
                raise
            items.append(new_item)
            changed = changed or item_changed
        return items, changed
    return copy_value(node), False


def _context(values: Mapping[Any, Any]) -> dict[str, Any]:
    """The render context of one round: Jinja2's globals, overridden by the values."""
    try:
        return dict(jinja_environment().globals, **values)  # every key a string: the rule
    except TypeError:  # a key that is not a string is not a name a template can read
        context = dict(jinja_environment().globals)
        context.update((key, value) for key, value in values.items() if isinstance(key, str))
        return context


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths of the strings that differ between two rounds (same shape by construction)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            path for key in old for path in _changed_paths(old[key], new[key], f"{prefix}{key}.")
        ]
    if isinstance(old, list) and isinstance(new, list):
        return [
            path
            for index, (a, b) in enumerate(zip(old, new, strict=True))
            for path in _changed_paths(a, b, f"{prefix}{index}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


def render(
    values: Mapping[str, Any],
    *,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    max_length: int = DEFAULT_MAX_LENGTH,
    memo: RenderMemo | None = None,
) -> dict[str, Any]:
    """Render every string in ``values`` against the whole map until nothing changes.

    Returns a new map; ``values`` is not modified. Raises ``ConfigError`` naming the value
    (as a path such as ``a.b.0``) for a template syntax error, arithmetic on an undefined
    name or any other template failure, and ``RenderCycleError`` when the values still
    change after ``max_rounds`` rounds. ``memo``, shared by the configurations of one
    batch, renders a template once per distinct set of the values it reads, and puts the
    lists and dicts in which nothing renders into the result as they are (shared with
    ``values``, not copied: see ``RenderMemo``).
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"configuration values must be a map, got {type(values).__name__}")
    current: dict[Any, Any] = dict(values)
    previous = current
    rounds = max(1, max_rounds)
    try:
        for done in range(1, rounds + 1):
            found = _Round()
            rendered, changed = _render_node(current, _context(current), max_length, memo, found)
            if not changed or (not found.live and done < rounds):
                # Unchanged, or every string left is plain: the next round would render
                # nothing and change nothing (its result would be this one's), so it is not
                # run. Without a round left, the loop ends as before: not settled.
                result: dict[str, Any] = rendered
                return result
            previous, current = current, rendered
    except _Failure as failure:
        path = ".".join(reversed(failure.path))
        if failure.grows:
            raise RenderCycleError(
                f"config value {path!r} {failure.message}", keys=[path]
            ) from failure.__cause__
        raise ConfigError(f"config value {path!r}: {failure.message}", key=path) from None
    except RecursionError:
        raise ConfigError("configuration values are nested too deeply") from None
    keys = _changed_paths(previous, current)
    raise RenderCycleError(
        f"configuration values did not settle after {max_rounds} render rounds; "
        f"still changing: {', '.join(keys)} (a reference cycle or a self-growing value)",
        keys=keys,
    )


def render_template(
    template: str,
    values: Mapping[str, Any],
    *,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    max_length: int = DEFAULT_MAX_LENGTH,
    name: str = "template",
) -> str:
    """Render a PXE boot script or template with a target's configuration.

    ``values`` is rendered first (``render``); then the template text is rendered again
    while it still contains ``{{`` or ``{%`` (text without either is returned unchanged,
    trailing newline and ``{# comments #}`` included). Errors are ``ConfigError`` naming
    ``name``.
    """
    context = _context(render(values, max_rounds=max_rounds, max_length=max_length))
    text = template
    for _ in range(max(1, max_rounds)):
        if "{{" not in text and "{%" not in text:
            return text
        try:
            text = _render_text(text, context, max_length)
        except _TooLong:
            raise RenderCycleError(
                f"{name} grows past {max_length} characters while rendering", keys=[name]
            ) from None
        except Exception as error:
            raise ConfigError(f"{name}: {_describe(error)}", key=name) from None
    if "{{" not in text and "{%" not in text:
        return text
    raise RenderCycleError(
        f"{name} still contains template markup after {max_rounds} render rounds", keys=[name]
    )
