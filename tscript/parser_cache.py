"""Where the built TScript parser is kept between processes.

Building the LALR(1) tables from the grammar takes about a tenth of a second, in every
process that parses; so the built parser is kept in the user's cache directory
(``$XDG_CACHE_HOME/tscript``, else ``~/.cache/tscript``) through lark's ``cache``, in a file
named by a digest of the grammar, the lexer, lark's version and Python's, and loaded from
there by later processes. lark checks the file's own digest before it uses it and rebuilds
(and rewrites it) when it is missing, stale or unreadable; a directory that is not the
user's own, or is writable by others, is not used (the file is a pickle); without a usable
directory the grammar is built in memory as before. ``TSCRIPT_PARSER_CACHE=off`` turns the
cache off.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import lark

from tscript.lexer import Lexer

__all__ = ["parser_cache_file"]


def _private_directory(path: Path) -> bool:
    """Whether ``path`` is a directory of this user's that no one else may write to."""
    try:
        info = path.stat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def parser_cache_file(grammar: str) -> Path | None:
    """Where the built parser for ``grammar`` is kept (see the module docstring), the
    directory made if need be; None when there is no usable one."""
    if os.environ.get("TSCRIPT_PARSER_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # the XDG rule: a relative path is to be ignored
        return None
    directory = Path(base) / "tscript"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    if not _private_directory(directory):
        return None
    digest = hashlib.sha256()
    for part in (grammar, Path(sys.modules[Lexer.__module__].__file__ or "").read_text()):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(f"{lark.__version__} {sys.version_info[:2]}".encode())
    return directory / f"parser-{digest.hexdigest()[:24]}.lark"
