"""The secrets Contractor hands to subcontractors, and masking them out of their answers.

A task's parameters may hold secrets (the BMC password of an ``ipmi`` foundation's
``connection``). Whatever a subcontractor sends back (a result, an error message) is
masked before Contractor keeps or shows any of it: every occurrence of one of the task's
secrets, in any string at any depth of the answer, map keys included, becomes ``MASK``. So
the job's message and log, its saved runner state and variables, the events, the webhook
bodies and the server's log lines, all made from the masked answer, never hold them.

The secrets of a task are

* the string values in its parameters under a secret-named key (``is_secret_name``: a key
  naming a password, secret, token, credential, key or SNMP community, or one of the
  foundation type's declared ``secret_fields``), at any depth, everything under such a key
  included; and
* the current values of its job's foundation's ``secret_fields`` (the plugin declares them:
  ``FoundationType.secret_fields``), in case the value changed after the task was handed
  out. A plugin that hands out cloud or Redfish credentials is covered by declaring them.

Short secrets. A secret of fewer than ``MIN_SUBSTRING_LENGTH`` (4) characters is masked
only where it stands on its own, not inside a longer word: masking every ``ab`` in an
answer would garble it while telling an onlooker the secret all the same (the masked places
show where it was). Such a password is weak anyway; Contractor still never repeats it where
it stands alone (``root/ab``, ``"ab"``, a whole value). An empty secret is none.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contractor.plugins import foundation_types
from contractor.secret_names import MASK, SECRET_WORDS, is_secret_name

if TYPE_CHECKING:
    from contractor.models.building import Foundation

__all__ = ["MASK", "MIN_SUBSTRING_LENGTH", "SECRET_WORDS", "Secrets", "is_secret_name"]

MIN_SUBSTRING_LENGTH = 4


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _secret_values(value: Any, declared: Collection[str]) -> Iterator[str]:
    """The strings under secret-named keys of ``value``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if is_secret_name(key, declared):
                yield from _strings(item)
            else:
                yield from _secret_values(item, declared)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_values(item, declared)


def _pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every secret, the longest first (a secret holding another is masked
    whole); a short one only where no letter or digit is next to it."""
    alternatives = []
    for value in sorted(set(values), key=lambda v: (-len(v), v)):
        if len(value) >= MIN_SUBSTRING_LENGTH:
            alternatives.append(re.escape(value))
        elif value:
            alternatives.append(rf"(?<![^\W_]){re.escape(value)}(?![^\W_])")
    return re.compile("|".join(alternatives)) if alternatives else None


@dataclass(frozen=True)
class Secrets:
    """The secrets one task handed out, and what masks them (see the module docstring)."""

    values: frozenset[str]
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:  # never the values themselves
        return f"<Secrets: {len(self.values)}>"

    @classmethod
    def of(cls, values: Iterable[str]) -> Secrets:
        kept = frozenset(v for v in values if v)
        return cls(kept, _pattern(kept))

    @classmethod
    def of_task(cls, parameters: Any, foundation: Foundation | None) -> Secrets:
        """The secrets of a task with these ``parameters``, for a job of ``foundation``."""
        declared: tuple[str, ...] = ()
        current: list[str] = []
        if foundation is not None:
            plugin = foundation_types().get(foundation.type)
            declared = plugin.secret_fields if plugin is not None else ()
            current = [value for name in declared for value in _strings(getattr(foundation, name))]
        return cls.of([*_secret_values(parameters, declared), *current])

    def mask_text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def mask(self, value: Any) -> Any:
        """``value`` (JSON-like) with every secret in its strings and map keys masked."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {
                self.mask_text(k) if isinstance(k, str) else k: self.mask(item)
                for k, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.mask(item) for item in value]
        return value
