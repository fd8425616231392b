"""Settings read from the environment (prefix ``CONTRACTOR_``) or passed in explicitly.

Built once by ``create_app`` or the CLI entry point and handed down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

from typing import Any, Literal

from argon2 import PasswordHasher
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bindgen import notify_target, transfer_element

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./contractor.sqlite3"

# How a zone reaches DNS: zone files (`contractor dns export`), RFC 2136 updates to a
# running server, or both.
DnsMode = Literal["files", "updates", "both"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"]


def _seconds(default: float) -> Any:
    """A field holding a length of time in seconds, above zero."""
    return Field(default=default, gt=0)


class Settings(BaseSettings):
    """Every knob of a Contractor process."""

    model_config = SettingsConfigDict(env_prefix="CONTRACTOR_", frozen=True, extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; postgresql:// URLs are run through psycopg 3.",
    )
    database_echo: bool = False
    # PostgreSQL connections kept open per process (and how many more it may open briefly):
    # long-polls, the foreman's workers, webhooks and events each hold one while they work,
    # and a pool smaller than that opens and closes a connection per transaction.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=10, ge=0, le=500)
    # A pooled PostgreSQL connection idle for longer than this is checked with a round trip
    # before it is used (one dropped by a database restart is replaced, not handed out); one
    # used more recently is handed out as it is (0: check every time).
    database_ping_idle_seconds: float = Field(default=1.0, ge=0, le=3600)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # What booting machines use to reach us (the __contractor_host config global).
    contractor_url: str = "http://contractor"
    pxe_location: str = "http://static/pxe/"
    log_level: str = "info"
    # Logs (contractor/logs.py): one line per event, readable text or JSON, and the level of
    # single components by logger name ({"contractor.foreman": "debug"}).
    log_format: LogFormat = "text"
    log_levels: dict[str, LogLevel] = Field(default_factory=dict)

    # Metrics and readiness (docs/operations.md, "Monitoring"). `/metrics` answers a request
    # with `Authorization: Bearer <token>`: the `metrics_token` or any active API token (any
    # role); without one only clients in `metrics_allow_networks` (CIDRs, such as
    # "10.0.0.0/8" or "127.0.0.1/32"). The database's gauges are read at most every
    # `metrics_cache_seconds`. `contractor foreman` serves /metrics, /healthz and /readyz on
    # `foreman_metrics_port` when one is set (0: one the kernel picks, announced at start).
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_allow_networks: list[str] = Field(default_factory=list)
    metrics_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    metrics_graphql_operations: list[str] = Field(default_factory=list)
    foreman_metrics_host: str = "127.0.0.1"
    foreman_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # /readyz: the foreman loop counts as stalled when it has not come round for this long,
    # the webhook worker as behind when an event waits longer than this for it.
    ready_foreman_stall_seconds: float = _seconds(60.0)
    ready_webhook_lag_seconds: float = _seconds(300.0)
    # GraphQL limits (on by default): nesting depth, aliases, and tokens per document.
    graphql_max_depth: int = Field(default=12, ge=1)
    graphql_max_aliases: int = Field(default=30, ge=1)
    graphql_max_tokens: int = Field(default=5000, ge=10)
    # Request bodies: the most a request may send, checked before anything reads it (more:
    # 413). GraphQL documents with their variables; task API calls (a result's data
    # included); every other route (the signal endpoint; the rest take no body).
    graphql_max_body_bytes: int = Field(default=1 << 20, ge=1024)
    task_max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_body_bytes: int = Field(default=64 << 10, ge=1024)
    # Show unexpected errors' messages (development only; production masks them).
    debug: bool = False
    # argon2id cost for new password and token hashes (verification reads the cost from each
    # hash, so raising these later only affects hashes made afterwards).
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_time_cost: int = Field(default=3, ge=1)
    # Login throttling: a username, or a client address, with this many refused logins within
    # the last `login_window_seconds` is refused until the oldest of them leaves the window
    # (counted in the database, so across every server process). Tokens are not throttled.
    login_window_seconds: float = _seconds(300.0)
    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    # Migrate the database when the app starts; by default only for the embedded SQLite
    # file (with PostgreSQL, run `contractor db upgrade` once per release instead).
    auto_migrate: bool | None = None
    # Tune the garbage collector for a long-running server once it has started: freeze what
    # start-up allocated and collect the youngest generation less often. A large GraphQL
    # page allocates tens of thousands of short-lived objects; with the default thresholds
    # the collector took about 40% of such a request's time.
    gc_tuning: bool = True
    # The job engine: run the foreman worker inside `contractor serve` (off: run
    # `contractor foreman` separately), how many jobs it steps at once, and how often it looks
    # for due jobs when nothing woke it.
    foreman_enabled: bool = True
    foreman_concurrency: int = Field(default=4, ge=1, le=64)
    foreman_idle_seconds: float = _seconds(1.0)
    # How often a waiting job checks again whether it may start.
    foreman_waiting_recheck_seconds: float = _seconds(5.0)
    # Tasks: the lease (visibility timeout) given with a task, and the longest long-poll.
    task_lease_seconds: float = _seconds(300.0)
    task_max_wait_seconds: float = Field(default=60.0, ge=0)
    # How long a checked subcontractor token is trusted without reading it again (a token
    # revoked by another process is refused after at most this long; 0: read every call).
    task_token_cache_seconds: float = Field(default=5.0, ge=0)
    # How often a waiting boot data poll looks again when nothing woke it (on SQLite a
    # change committed by another process wakes nobody; on PostgreSQL its NOTIFY does).
    boot_look_seconds: float = Field(default=1.0, gt=0)
    # Discovery (docs/boot.md, "Discovery"): more kernel arguments for the discovery image,
    # the reports a site may send per minute (more: 429), and how many discovered machines
    # a site may hold that are not located (a report of a new MAC beyond it: 429).
    boot_discovery_kernel_args: str = Field(default="", max_length=1000)
    discovery_reports_per_minute: int = Field(default=120, ge=1)
    discovery_max_undecided: int = Field(default=1000, ge=1)

    # Events: how often each process looks for new events when nothing woke it; webhook
    # delivery inside `contractor serve` and `contractor foreman`, its parallelism (in all,
    # and per target), the request timeout, and the retry backoff (base, cap) up to a
    # maximum age.
    events_poll_seconds: float = _seconds(1.0)
    webhooks_enabled: bool = True
    webhook_concurrency: int = Field(default=32, ge=1, le=256)
    webhook_per_target: int = Field(default=8, ge=1, le=64)
    webhook_timeout_seconds: float = _seconds(10.0)
    webhook_retry_base_seconds: float = _seconds(1.0)
    webhook_retry_max_seconds: float = _seconds(600.0)
    webhook_max_age_seconds: float = _seconds(86400.0)
    webhook_idle_seconds: float = _seconds(5.0)
    # Event retention: events and finished deliveries older than this many days are removed
    # (0: kept for ever), looked at every `events_prune_interval_seconds` by `contractor
    # serve` and `contractor foreman` (or `contractor events prune`).
    events_retention_days: float = Field(default=30.0, ge=0)
    events_prune_interval_seconds: float = _seconds(3600.0)

    # DNS live updates (docs/dns.md, "Live updates"): how each zone is published
    # (`dns_zone_modes`, a JSON object of zone name to mode, else `dns_default_mode`), the
    # authoritative server that takes RFC 2136 updates, and the TSIG key that signs them. The
    # secret is the key's base64 text, as in named.conf; it is never logged nor shown.
    dns_default_mode: DnsMode = "files"
    dns_zone_modes: dict[str, DnsMode] = Field(default_factory=dict)
    dns_server_host: str | None = None
    dns_server_port: int = Field(default=53, ge=1, le=65535)
    dns_tsig_key_name: str | None = None
    dns_tsig_algorithm: TsigAlgorithm = "hmac-sha256"
    dns_tsig_secret: SecretStr | None = None
    # One update's (or zone transfer's) time limit, and the retry backoff (base, cap): a
    # zone the server does not acknowledge is tried again for ever, at most every cap.
    dns_update_timeout_seconds: float = _seconds(5.0)
    dns_update_retry_base_seconds: float = _seconds(1.0)
    dns_update_retry_max_seconds: float = _seconds(60.0)
    # The secondaries of zones published as files (docs/dns.md, "Export"): every zone in
    # the generated named.conf takes `allow-transfer` (who may copy it: addresses, networks,
    # `key <name>` of a key the server's own named.conf defines, `any`, `none`) and
    # `also-notify` (servers told of each new serial besides the zone's NS: addresses,
    # optionally `<address> port <n>`). JSON lists; empty leaves named's defaults.
    dns_allow_transfer: list[str] = Field(default_factory=list)
    dns_also_notify: list[str] = Field(default_factory=list)

    @field_validator("metrics_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (write 10.0.0.0/8)") from None
        return [network.strip() for network in value]

    @field_validator("dns_zone_modes")
    @classmethod
    def _zone_names(cls, value: dict[str, DnsMode]) -> dict[str, DnsMode]:
        return {name.strip().lower().rstrip("."): mode for name, mode in value.items()}

    @field_validator("dns_allow_transfer")
    @classmethod
    def _transfer_elements(cls, value: list[str]) -> list[str]:
        return [transfer_element(item) for item in value]

    @field_validator("dns_also_notify")
    @classmethod
    def _notify_targets(cls, value: list[str]) -> list[str]:
        return [notify_target(item) for item in value]

    @model_validator(mode="after")
    def _dns_server_named(self) -> Settings:
        if self.dns_updates_wanted:
            missing = [
                f"CONTRACTOR_{name.upper()}"
                for name in ("dns_server_host", "dns_tsig_key_name", "dns_tsig_secret")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    f"zones published by updates need {', '.join(missing)} "
                    "(dns_default_mode or dns_zone_modes names updates or both)"
                )
        return self

    def dns_mode(self, zone: str) -> DnsMode:
        """How ``zone`` (a zone name, forward or reverse) is published."""
        return self.dns_zone_modes.get(zone.lower().rstrip("."), self.dns_default_mode)

    @property
    def dns_updates_wanted(self) -> bool:
        """Whether some zone is published by updates (so the pusher runs)."""
        return self.dns_default_mode != "files" or any(
            mode != "files" for mode in self.dns_zone_modes.values()
        )

    @property
    def migrate_on_start(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    def password_hasher(self) -> PasswordHasher:
        return PasswordHasher(memory_cost=self.argon2_memory_kib, time_cost=self.argon2_time_cost)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def normalise_database_url(url: str) -> str:
    """Pick the async driver for the URL's database when the user named none."""
    url = url.strip()
    if not url:
        raise ValueError("database URL is empty")
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if not url.startswith(("postgresql+", "sqlite+")):
        raise ValueError(
            f"unsupported database URL {url.split(':', 1)[0]!r}: use postgresql:// or sqlite://"
        )
    return url
