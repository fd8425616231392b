"""Names in zone data: mailboxes in SOA form and host names checked as BIND checks them."""

from __future__ import annotations

import re

__all__ = ["is_hostname", "mailbox_to_rname"]

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def mailbox_to_rname(mailbox: str) -> str:
    """``hostmaster@example.com`` → ``hostmaster.example.com.`` (dots in the local part are
    escaped, as RFC 1035 asks); a name already in DNS form is only made absolute."""
    text = mailbox.strip()
    if "@" not in text:
        return text if text.endswith(".") else text + "."
    local, _, domain = text.rpartition("@")
    if not local or not domain or "@" in local:
        raise ValueError(f"{mailbox!r} is not a mailbox such as hostmaster@example.com")
    return local.replace("\\", "\\\\").replace(".", "\\.") + "." + domain.rstrip(".") + "."


def is_hostname(name: str) -> bool:
    """A host name BIND's check-names accepts (letters, digits, inner hyphens per label)."""
    text = name[:-1] if name.endswith(".") else name
    if not text or len(text) > 253:
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in text.split("."))
