"""The agent's configuration: a TOML file, overridden by command-line flags.

```toml
[contractor]
url = "https://contractor.example.com"   # flag --url
token_file = "/etc/subcontractor/token"  # flag --token-file; or SUBCONTRACTOR_TOKEN
site = "dc1"                             # flag --site
ca_bundle = "/etc/subcontractor/ca.pem"  # flag --ca-bundle (default: the system's)
verify_tls = true                        # flag --insecure turns it off
request_timeout = 30

[agent]
wait = 30                                # flag --wait: long-poll seconds
journal_dir = "/var/lib/subcontractor"   # flag --journal-dir
shutdown_grace = 30                      # seconds running tasks get after SIGTERM
log_level = "info"                       # flag --log-level
metrics_port = 9465                      # flag --metrics-port: serve /metrics (off unless set;
metrics_host = "127.0.0.1"               #   0: a port the kernel picks, logged at start)

[boot]                                   # the boot services (docs/boot.md); off by default
enabled = true
interfaces = ["eno2"]                    # the provisioning network's interfaces
server_address = "198.18.7.1"            # this host's address on that network
backend = "dnsmasq"                      # or "kea"
proxy = false                            # true: proxy DHCP beside another DHCP server
http_listen = "198.18.7.1:8069"          # the boot endpoint (default server_address:8069,
                                         #   where the discovery image posts its report)
tftp_root = "/usr/lib/ipxe"              # undionly.kpxe, snponly.efi, ipxe.efi
lease_seconds = 3600
lease_report_seconds = 60                # how often leases go to Contractor

[modules.ipmi]                           # flag --module ipmi=10
concurrency = 10
task_timeout = 300
# anything else is the module's own option (see each module)
```

The token is never taken from a flag (it would show in the process list). Proxies come from the
standard environment variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).
Every error names the key, and the flag when there is one.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "AgentConfig",
    "BootConfig",
    "Config",
    "ConfigError",
    "ContractorConfig",
    "ModuleConfig",
    "load",
]

TOKEN_ENV = "SUBCONTRACTOR_TOKEN"
CONFIG_ENV = "SUBCONTRACTOR_CONFIG"

FLAGS = {
    "contractor.url": "--url",
    "contractor.token_file": "--token-file",
    "contractor.site": "--site",
    "contractor.ca_bundle": "--ca-bundle",
    "contractor.verify_tls": "--insecure",
    "agent.wait": "--wait",
    "agent.journal_dir": "--journal-dir",
    "agent.log_level": "--log-level",
    "agent.metrics_port": "--metrics-port",
    "modules": "--module",
}


class ConfigError(Exception):
    """A configuration problem; the message names the key (and flag)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContractorConfig(_Section):
    url: str = Field(min_length=1)
    token: str = Field(default="", repr=False)
    token_file: Path | None = None
    site: str = Field(min_length=1)
    ca_bundle: Path | None = None
    verify_tls: bool = True
    request_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class AgentConfig(_Section):
    wait: float = Field(default=30.0, ge=0, le=300)
    journal_dir: Path = Field(default_factory=lambda: _default_state_dir())
    shutdown_grace: float = Field(default=30.0, ge=0, le=3600)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    log_level: str = "info"
    # Prometheus metrics (subcontractor.metrics): off unless a port is given; anyone who
    # reaches the address may read them, so keep it on a loopback or management network.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return value.lower()


class BootConfig(_Section):
    """``[boot]``: the boot services (``subcontractor.boot.service``, docs/boot.md)."""

    enabled: bool = False
    interfaces: list[str] = Field(default_factory=list, max_length=32)
    server_address: str = ""
    backend: Literal["dnsmasq", "kea"] = "dnsmasq"
    proxy: bool = False
    http_listen: str = ""  # host:port; default server_address:8069
    http_base: str = ""  # what iPXE is chained to; default http://<http_listen>
    tftp_root: Path = Path("/usr/lib/ipxe")
    uefi_boot_file: Literal["snponly.efi", "ipxe.efi"] = "snponly.efi"
    lease_seconds: int = Field(default=3600, ge=120, le=2**31 - 1)
    lease_report_seconds: float = Field(default=60.0, gt=0, le=86400)
    state_dir: Path | None = None  # default <agent.journal_dir>/boot
    files_dir: Path | None = None  # kernels and initrds served before asking Contractor
    wait: float = Field(default=30.0, ge=0, le=300)  # the boot data long-poll
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    requests_per_second: float = Field(default=20.0, gt=0)
    request_burst: int = Field(default=60, ge=1)
    upstream_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("interfaces")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or len(name) > 15 or any(c in name for c in " /,=\t\n"):
                raise ValueError(f"{name!r} is not an interface name")
        return value

    @field_validator("server_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 address") from None
        return value

    @field_validator("http_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @field_validator("http_base")
    @classmethod
    def _base(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def listen(self) -> tuple[str, int]:
        host, _, port = (self.http_listen or f"{self.server_address}:8069").rpartition(":")
        return host.strip("[]"), int(port)


def _check_boot(boot: BootConfig) -> None:
    if not boot.enabled:
        return
    if not boot.interfaces:
        raise ConfigError("boot.interfaces: name the provisioning interface(s) (boot.enabled)")
    if not boot.server_address:
        raise ConfigError(
            "boot.server_address: give this host's IPv4 address on the provisioning network "
            "(boot.enabled)"
        )
    if not boot.tftp_root.is_dir():
        raise ConfigError(f"boot.tftp_root: {boot.tftp_root} is not a directory")
    if boot.files_dir is not None and not boot.files_dir.is_dir():
        raise ConfigError(f"boot.files_dir: {boot.files_dir} is not a directory")


class ModuleConfig(_Section):
    """What the agent itself reads from a ``[modules.<name>]`` table; the rest goes to the
    module."""

    concurrency: int = Field(default=4, ge=1, le=1000)
    task_timeout: float = Field(default=300.0, gt=0)


class Config(BaseModel):
    model_config = ConfigDict(frozen=True)

    contractor: ContractorConfig
    agent: AgentConfig
    modules: dict[str, ModuleConfig]
    boot: BootConfig = Field(default_factory=BootConfig)
    module_options: dict[str, dict[str, Any]]
    source: Path | None = None

    def secrets(self) -> list[str]:
        token = self.contractor.token
        return [token, token.rpartition(".")[2]] if token else []


def _default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/subcontractor")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "subcontractor"


def _where(location: tuple[Any, ...], section: str) -> str:
    key = ".".join([section, *(str(part) for part in location)])
    flag = FLAGS.get(key) or (FLAGS["modules"] if key.startswith("modules.") else None)
    return f"{key} (flag {flag})" if flag else key


def _check(model: type[_Section], values: Mapping[str, Any], section: str) -> Any:
    try:
        return model.model_validate(dict(values))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{_where(item['loc'], section)}: {message}")
        raise ConfigError("; ".join(problems)) from None


def parse_module_flag(text: str) -> tuple[str, int | None]:
    """``ipmi`` or ``ipmi=10`` (a concurrency limit)."""
    name, sep, limit = text.partition("=")
    if not name:
        raise ConfigError(f"--module {text!r}: give NAME or NAME=CONCURRENCY")
    if not sep:
        return name, None
    try:
        return name, int(limit)
    except ValueError:
        raise ConfigError(f"--module {text!r}: the concurrency must be a whole number") from None


def load(
    path: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    module_flags: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read ``path`` (or ``$SUBCONTRACTOR_CONFIG``), apply flag ``overrides`` (dotted keys,
    ``None`` means not given) and ``--module`` flags, and check everything."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"contractor", "agent", "modules", "boot"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(unknown)} (allowed: contractor, agent, "
            "modules, boot)"
        )
    sections: dict[str, dict[str, Any]] = {}
    for name in ("contractor", "agent", "modules", "boot"):
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: must be a table")
        sections[name] = dict(value)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        sections[section][name] = value
    for text in module_flags:
        name, limit = parse_module_flag(text)
        table = dict(sections["modules"].get(name) or {})
        if limit is not None:
            table["concurrency"] = limit
        sections["modules"][name] = table

    contractor_values = sections["contractor"]
    for required in ("url", "site"):
        if required not in contractor_values:
            raise ConfigError(f"{_where((required,), 'contractor')}: required")
    contractor = _check(ContractorConfig, contractor_values, "contractor")
    token = contractor.token or environ.get(TOKEN_ENV, "")
    if contractor.token_file is not None:
        try:
            token = contractor.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"contractor.token_file (flag --token-file): cannot read "
                f"{contractor.token_file}: {error.strerror}"
            ) from None
    if not token:
        raise ConfigError(
            "contractor.token: required (set contractor.token_file / --token-file, or "
            f"the {TOKEN_ENV} environment variable)"
        )
    if not token.startswith("sct_"):
        raise ConfigError("contractor.token: a subcontractor token reads sct_<key>.<secret>")
    contractor = contractor.model_copy(update={"token": token})
    if contractor.ca_bundle is not None and not contractor.ca_bundle.is_file():
        raise ConfigError(
            f"contractor.ca_bundle (flag --ca-bundle): {contractor.ca_bundle} is not a file"
        )
    agent = _check(AgentConfig, sections["agent"], "agent")
    boot = _check(BootConfig, sections["boot"], "boot")
    _check_boot(boot)

    modules: dict[str, ModuleConfig] = {}
    options: dict[str, dict[str, Any]] = {}
    if not sections["modules"] and not boot.enabled:
        raise ConfigError(
            "modules: name at least one module ([modules.<name>] or --module), or enable [boot]"
        )
    for name, table in sections["modules"].items():
        if not isinstance(table, dict):
            raise ConfigError(f"modules.{name}: must be a table")
        own = {k: v for k, v in table.items() if k in ModuleConfig.model_fields}
        modules[name] = _check(ModuleConfig, own, f"modules.{name}")
        options[name] = {k: v for k, v in table.items() if k not in ModuleConfig.model_fields}
    return Config(
        contractor=contractor,
        agent=agent,
        modules=modules,
        module_options=options,
        boot=boot,
        source=path,
    )
