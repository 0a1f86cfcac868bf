"""Settings: the only module that reads the environment.

LiveKit's own variables keep the names `livekit-api` and `lk` use (`LIVEKIT_URL`, `LIVEKIT_API_KEY`,
`LIVEKIT_API_SECRET`); everything of ours is prefixed `LIVEKIT_MCP_`. Precedence, strongest first:
command-line flags, environment variables, the TOML file of `--config`, defaults.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from livekit_mcp.errors import ConfigFileError, MissingCredentialsError

Transport = Literal["stdio", "http", "sse"]
TOOLSETS = ("rooms", "participants", "agents", "data", "rpc", "tokens", "sip", "egress", "ingress")
DEFAULT_TOOLSETS = ("rooms", "participants", "agents", "data", "rpc")
"""Not `tokens`: a join token lets its holder into a call, so it is offered only when asked for. Nor `sip`, `egress`
and `ingress`: they need LiveKit services many deployments do not run, dialling out costs money, and their ten
tools would add a quarter to every session's tools/list; an operator who runs those services turns them on."""
Credentials = Literal["env", "sandbox", "dev"]
KINDS = ("STANDARD", "INGRESS", "EGRESS", "SIP", "AGENT", "CONNECTOR", "BRIDGE")
ENV_PREFIX = "LIVEKIT_MCP_"

# What `lk --dev` uses; public, and only ever used when asked for with --dev.
DEV_URL = "http://localhost:7880"
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"  # noqa: S105 - the well-known dev secret of `livekit-server --dev`
URL_SCHEMES = ("http", "https", "ws", "wss")
EGRESS_STREAMS = ("rtmp", "rtmps", "srt")
MIN_CONFIRM_KEY = 32
"""Bytes a LIVEKIT_MCP_CONFIRM_KEY needs at least: the HMAC key of confirm tokens, so as strong as a random one."""

LK_CONFIG = Path(".livekit") / "cli-config.yaml"
"""Where `lk` keeps its projects, under the home directory (livekit-cli pkg/config: `getConfigLocation`)."""

# The --config file of the `Settings.load` under way: read by pydantic-settings as one of its sources.
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("config_file", default=None)


def _comma_list(value: object) -> object:
    """`a,b` in the environment or on the command line; a list from Python."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


def url_problem(value: str, what: str) -> None:
    """Raise ValueError, in one line naming `what`, for a LiveKit URL that would fail: refused at start, since a URL
    with a password would be sent (and shown) with every call, and one without a scheme or host fails every call
    only once the server is running."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{what} is not a URL; use e.g. wss://my-project.livekit.cloud") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{what} must not carry a user or password; "
            "give the key and secret in LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
        )
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
        raise ValueError(
            f"{what} needs a scheme and a host: wss://, https://, ws:// or http://, "
            "e.g. wss://my-project.livekit.cloud or http://localhost:7880"
        )


class Settings(BaseSettings):
    """Everything the server can be configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    # LiveKit's own names alone: pydantic-settings reads every alias from the environment, so an alias "url" took
    # any `URL` variable of the host as the LiveKit URL. Flags still give them by field name (populate_by_name).
    url: str | None = Field(default=None, validation_alias="LIVEKIT_URL")
    api_key: str | None = Field(default=None, validation_alias="LIVEKIT_API_KEY")
    api_secret: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_SECRET")

    credentials: Credentials = "env"
    """Where LiveKit comes from: the environment, an in-process sandbox (--sandbox) or `lk --dev` (--dev)."""
    project: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_\-]+$")
    """The default project, by its name in `lk`'s file or [[projects]] (as `lk --project`)."""
    projects: list[dict[str, Any]] = Field(default_factory=list)
    """[[projects]] tables of the --config file: more projects, or the policy of projects `lk` knows (projects.py)."""

    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds any one LiveKit call may take; `livekit-api` ignores its own timeout, so we enforce this."""

    concurrency: int = Field(default=16, ge=1, le=256)
    """LiveKit requests in flight at once, across the whole server, for tools that fan out over many rooms."""
    retries: int = Field(default=3, ge=0, le=10)
    """Times a read is sent again after LiveKit failed in passing (never a change that may have reached it)."""

    allowed_hosts: CommaList = Field(default_factory=list)
    """Extra `Host` values accepted over HTTP (e.g. `mcp.example.com`, `10.0.0.5:*`); loopback is always allowed."""
    allowed_origins: CommaList = Field(default_factory=list)
    """Extra `Origin` values accepted over HTTP (e.g. `https://mcp.example.com`)."""

    toolsets: CommaList = Field(default_factory=lambda: list(DEFAULT_TOOLSETS))
    """Toolsets whose tools are listed: rooms, participants, agents, data, rpc; also tokens, sip, egress, ingress."""
    read_only: bool = False
    """List and allow only the tools that change nothing."""
    output_schemas: bool = False
    """Publish each tool's output schema in tools/list (twice the bytes; for clients that validate results)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_format: Literal["text", "json"] = "text"
    """Log lines on stderr as text or as JSON objects; both carry the request id and the caller."""

    # Serving over HTTP.
    auth_tokens: SecretStr | None = None
    """`principal:role:token` entries, comma-separated; role is read or write."""
    auth_file: Path | None = None
    """TOML file of [[tokens]] tables with principal, role and token (or token_sha256)."""
    allow_unauthenticated: bool = False
    """Serve HTTP without tokens on a non-loopback address (refused otherwise)."""
    stateless: bool = False
    """Streamable HTTP without sessions: any replica behind a load balancer can answer any request."""
    public_url: str | None = None
    """The URL clients use to reach /mcp (behind a proxy); the OAuth resource metadata names it."""
    shutdown_grace: int = Field(default=30, ge=0, le=3600)
    """Seconds calls in flight get to finish after SIGTERM."""
    header_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds a client has to send a request's headers, from connecting or from the previous response."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a client has to send a request's whole body, once its headers are in."""
    max_connections: int = Field(default=200, ge=1, le=100_000)
    """Connections (and requests in progress) at once; past it a request gets 503 at once."""
    max_sessions: int = Field(default=1000, ge=1, le=1_000_000)
    """Open streamable HTTP sessions, all callers together (an SSE session is also a connection)."""
    max_sessions_per_principal: int = Field(default=100, ge=1, le=1_000_000)
    """Open sessions of one caller (a token's principal; every caller is "anonymous" without tokens)."""
    session_idle_timeout: float = Field(default=1800.0, gt=0, le=86_400)
    """Seconds a streamable HTTP session lives with no request in flight; then it is closed."""

    # Guardrails: what an assistant may see and change, and how a change is confirmed and recorded.
    allowed_rooms: CommaList = Field(default_factory=lambda: ["*"])
    """Glob patterns of the rooms tools may see and act on; other rooms are invisible."""
    protected_rooms: CommaList = Field(default_factory=list)
    """Glob patterns of rooms tools may see but never change."""
    protected_kinds: CommaList = Field(default_factory=list)
    """Participant kinds that may not be removed or disconnected (e.g. SIP)."""
    max_destructive_per_minute: int = Field(default=0, ge=0, le=10_000)
    """Destructive actions allowed in any 60 s (per server process); 0 means no limit."""
    confirm: Literal["auto", "off"] = "auto"
    """auto: destructive tools ask the user (elicitation) or return a confirm_token first; off: they act at once."""
    confirm_key: SecretStr | None = None
    """HMAC key for confirm tokens; give every replica the same one. A random key per process otherwise."""
    confirm_previous_keys: Annotated[list[SecretStr], NoDecode, BeforeValidator(_comma_list)] = Field(
        default_factory=list
    )
    """Keys still accepted, never used to seal or sign, comma-separated: the previous confirm key while rotating it
    (or the next one, rolled out to every replica before it becomes LIVEKIT_MCP_CONFIRM_KEY)."""
    confirm_ttl: float = Field(default=120.0, gt=0, le=3600)
    """Seconds a confirm_token, or a question's requestState (protocol 2026-07-28), stays valid."""
    audit_log: Path | None = None
    """File that gets one JSON line per attempted change; if it cannot be written, no change is made."""

    egress_output: SecretStr | None = None
    """Where start_room_egress records: a file path template for the egress service's own storage (e.g.
    `recordings/{room_name}-{time}.mp4`) or an `rtmp://`, `rtmps://` or `srt://` stream URL. A secret: a stream URL
    carries its key. Unset: start_room_egress refuses. Storage credentials are never taken from chat."""
    ingress_pull_hosts: CommaList = Field(default_factory=list)
    """Host names create_ingress may pull a URL from although they resolve to a loopback, private, link-local or
    other non-public address (a media server on the LAN). Any other host is resolved, and refused if one of its
    addresses is not public: LiveKit would fetch it from inside the deployment (cloud metadata, its Redis)."""

    # Room history and the state replicas share.
    store: SecretStr | None = None
    """Where history and shared state live: a SQLite file path (default under the state directory), `redis://…`
    (several replicas), or `memory`. A secret: a Redis URL can hold a password."""
    history: Literal["on", "off"] = "on"
    """`off`: keep no history (the receiver refuses webhooks, room_history says history is off)."""
    history_retention_days: float = Field(default=30.0, gt=0, le=3650)
    """Days an event is kept."""
    history_max_events: int = Field(default=1_000_000, ge=1, le=1_000_000_000)
    """Events kept in all; the oldest go first."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as arguments), then the environment (either case of names), then the TOML file."""
        config_file = _config_file.get()
        if config_file is None:
            return init_settings, env_settings
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file)

    @field_validator("url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return value
        url_problem(value, "LIVEKIT_URL")
        return value

    @field_validator("egress_output")
    @classmethod
    def _egress_output(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        output = value.get_secret_value()
        scheme = output.partition("://")[0].lower() if "://" in output else None
        if not output.strip() or (scheme is not None and scheme not in EGRESS_STREAMS):
            raise ValueError(
                "LIVEKIT_MCP_EGRESS_OUTPUT must be a file path (recordings/{room_name}-{time}.mp4) "
                "or a stream URL (rtmp://, rtmps:// or srt://)"
            )
        return value

    @field_validator("confirm_key")
    @classmethod
    def _strong_confirm_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_CONFIRM_KEY:
            raise ValueError(
                f"LIVEKIT_MCP_CONFIRM_KEY is shorter than {MIN_CONFIRM_KEY} bytes; make one with "
                'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value

    @field_validator("confirm_previous_keys")
    @classmethod
    def _strong_previous_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value().encode()) < MIN_CONFIRM_KEY:
                raise ValueError(f"each LIVEKIT_MCP_CONFIRM_PREVIOUS_KEYS entry needs {MIN_CONFIRM_KEY} bytes at least")
        return value

    @model_validator(mode="after")
    def _previous_keys_need_a_key(self) -> Settings:
        if self.confirm_previous_keys and self.confirm_key is None:
            raise ValueError(
                "LIVEKIT_MCP_CONFIRM_PREVIOUS_KEYS is set without LIVEKIT_MCP_CONFIRM_KEY: set the key that signs"
            )
        return self

    def confirm_keys(self) -> list[bytes]:
        """The confirm key, then the previous ones still accepted; empty when none is set (a random one per
        process). Confirm tokens are signed, and the request state of 2026-07-28 sealed, under keys made from them."""
        keys = [self.confirm_key, *self.confirm_previous_keys] if self.confirm_key is not None else []
        return [key.get_secret_value().encode() for key in keys]

    @field_validator("protected_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        upper = [kind.upper() for kind in value]
        unknown = [kind for kind in upper if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown participant kind {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        return upper

    @field_validator("toolsets")
    @classmethod
    def _known_toolsets(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in TOOLSETS]
        if unknown or not value:
            raise ValueError(
                f"unknown toolset {', '.join(unknown) or '(none given)'}; choose from {', '.join(TOOLSETS)}"
            )
        return value

    _config_path: Path | None = PrivateAttr(default=None)

    @property
    def config_path(self) -> Path | None:
        """The --config file these settings were read from, to name it in errors about its entries."""
        return self._config_path

    def lk_config_path(self) -> Path:
        """`lk`'s own file of projects: ~/.livekit/cli-config.yaml (its home directory is $HOME, as for `lk`)."""
        return Path.home() / LK_CONFIG

    def env_secret(self, name: str) -> SecretStr | None:
        """The value of the environment variable a [[projects]] entry names for its secret (never written inline)."""
        value = os.environ.get(name, "")
        return SecretStr(value) if value else None

    def secrets(self) -> list[str]:
        """Every secret value configured, for logs to blank out: API secret, confirm key, bearer tokens."""
        found = [s.get_secret_value() for s in (self.api_secret, self.confirm_key) if s is not None]
        found += [s.get_secret_value() for s in self.confirm_previous_keys]
        if self.auth_tokens is not None:
            found += [item.rpartition(":")[2] for item in self.auth_tokens.get_secret_value().split(",")]
        if self.store is not None and (password := urlsplit(self.store.get_secret_value()).password):
            found.append(password)
        return [s.strip() for s in found if s.strip()]

    def livekit_credentials(self) -> tuple[str, str, SecretStr]:
        """The URL, key and secret to use, or `MissingCredentialsError` naming what is missing."""
        if self.credentials == "dev":
            return DEV_URL, DEV_API_KEY, SecretStr(DEV_API_SECRET)
        missing = [
            name
            for name, value in (
                ("LIVEKIT_URL", self.url),
                ("LIVEKIT_API_KEY", self.api_key),
                ("LIVEKIT_API_SECRET", self.api_secret.get_secret_value() if self.api_secret else None),
            )
            if not value
        ]
        if missing:
            raise MissingCredentialsError(
                f"missing {', '.join(missing)}: set them in the environment, "
                "add a project with `lk project add`, "
                "or pass --sandbox (built-in LiveKit sandbox) or --dev (a local `livekit-server --dev`)"
            )
        return self.url or "", self.api_key or "", self.api_secret or SecretStr("")

    @classmethod
    def load(cls, config_file: Path | None = None, **flags: Any) -> Settings:
        """Settings from flags, then the environment, then the TOML file, then defaults."""
        from_file: dict[str, Any] = {}
        if config_file is not None:
            try:
                from_file = tomllib.loads(config_file.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigFileError(f"cannot read {config_file}: {exc}") from exc
            unknown = sorted(set(from_file) - set(cls.model_fields))
            if unknown:
                raise ConfigFileError(f"{config_file}: unknown setting {', '.join(unknown)}")
            credentials = sorted(set(from_file) & {"url", "api_key", "api_secret", "credentials"})
            if credentials:
                raise ConfigFileError(
                    f"{config_file}: {', '.join(credentials)} cannot be set here; LiveKit credentials come from "
                    "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
                )
        # pydantic-settings owns the precedence of sources (see settings_customise_sources).
        reset = _config_file.set(config_file)
        try:
            settings = cls(**flags)
        finally:
            _config_file.reset(reset)
        settings._config_path = config_file
        return settings
