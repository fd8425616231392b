"""What names a secret: the one list of words that every place hiding secrets goes by.

A map key or a column whose name holds one of ``SECRET_WORDS`` (in any case) is a secret:
its value is masked in answers (``services.secrets``), left out of event payloads and of
the changed-column lists events carry (``services.events``), refused as a foundation
type's config attribute (``services.config``), and masked in ``name=value`` shapes of log
lines (``contractor.logs``). Broad on purpose (``key`` covers ``api_key``, ``ssh_key`` and
``private_key``): hiding a harmless value costs less than showing a secret.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

__all__ = ["MASK", "SECRET_WORDS", "SECRET_WORDS_PATTERN", "is_secret_name"]

MASK: Final = "********"
SECRET_WORDS: Final = ("password", "passwd", "secret", "token", "credential", "key", "community")
# the words as a regular expression alternation, for text (log lines)
SECRET_WORDS_PATTERN: Final = "|".join(SECRET_WORDS)


def is_secret_name(name: object, declared: Collection[str] = ()) -> bool:
    """Whether a map key names a secret: a secret word in it, or one of ``declared``."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return name in declared or any(word in lowered for word in SECRET_WORDS)
