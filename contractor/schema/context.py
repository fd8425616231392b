"""The per-request context resolvers read: settings, a session factory, who is asking, and
the request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from contractor.errors import Forbidden
from contractor.schema.loaders import Loaders
from contractor.services.auth import role_allows
from contractor.services.config import ConfigCache
from contractor.settings import Settings

if TYPE_CHECKING:
    from contractor.events.broadcast import EventBroadcaster


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    username: str
    role: str


@dataclass(frozen=True)
class Context:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]  # for reading
    writer_sessions: async_sessionmaker[AsyncSession]  # for changes (mutations)
    principal: Principal | None
    loaders: Loaders = field(repr=False)
    config_cache: ConfigCache | None = field(default=None, repr=False)
    events: EventBroadcaster | None = field(default=None, repr=False)  # subscriptions
    client_address: str | None = None  # the peer's address (the proxy's, behind one)

    def require(self, role: str) -> Principal:
        """The caller, if their role includes ``role``; else Forbidden."""
        if self.principal is None or not role_allows(self.principal.role, role):
            have = self.principal.role if self.principal else "anonymous"
            raise Forbidden(f"this needs the {role} role (you are {have})")
        return self.principal


Info = StrawberryInfo[Context, None]
