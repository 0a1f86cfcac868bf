"""Settings: the only module that reads the environment.

LiveKit's own variables keep the names `livekit-api` and `lk` use (`LIVEKIT_URL`, `LIVEKIT_API_KEY`,
`LIVEKIT_API_SECRET`); everything of ours is prefixed `LIVEKIT_MCP_`. Command-line flags override both.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Transport = Literal["stdio", "http", "sse"]
TOOLSETS = ("rooms", "participants", "agents", "data")
Credentials = Literal["env", "sandbox", "dev"]

# What `lk --dev` uses; public, and only ever used when asked for with --dev.
DEV_URL = "http://localhost:7880"
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"  # noqa: S105 - the well-known dev secret of `livekit-server --dev`


def _comma_list(value: object) -> object:
    """`a,b` in the environment or on the command line; a list from Python."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class MissingCredentialsError(Exception):
    """LiveKit credentials are needed and some are not set."""


class Settings(BaseSettings):
    """Everything the server can be configured with."""

    model_config = SettingsConfigDict(env_prefix="LIVEKIT_MCP_", extra="ignore", populate_by_name=True)

    url: str | None = Field(default=None, validation_alias=AliasChoices("url", "LIVEKIT_URL"))
    api_key: str | None = Field(default=None, validation_alias=AliasChoices("api_key", "LIVEKIT_API_KEY"))
    api_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("api_secret", "LIVEKIT_API_SECRET")
    )

    credentials: Credentials = "env"
    """Where LiveKit comes from: the environment, an in-process sandbox (--sandbox) or `lk --dev` (--dev)."""

    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds any one LiveKit call may take; `livekit-api` ignores its own timeout, so we enforce this."""

    concurrency: int = Field(default=16, ge=1, le=256)
    """LiveKit requests in flight at once when a tool fans out over many rooms."""

    allowed_hosts: CommaList = Field(default_factory=list)
    """Extra `Host` values accepted over HTTP (e.g. `mcp.example.com`, `10.0.0.5:*`); loopback is always allowed."""
    allowed_origins: CommaList = Field(default_factory=list)
    """Extra `Origin` values accepted over HTTP (e.g. `https://mcp.example.com`)."""

    toolsets: CommaList = Field(default_factory=lambda: ["rooms", "participants", "agents", "data"])
    """Toolsets whose tools are listed: rooms, participants, agents, data."""
    read_only: bool = False
    """List and allow only the tools that change nothing."""
    output_schemas: bool = False
    """Publish each tool's output schema in tools/list (twice the bytes; for clients that validate results)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("toolsets")
    @classmethod
    def _known_toolsets(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in TOOLSETS]
        if unknown or not value:
            raise ValueError(
                f"unknown toolset {', '.join(unknown) or '(none given)'}; choose from {', '.join(TOOLSETS)}"
            )
        return value

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
                "or pass --sandbox (built-in LiveKit sandbox) or --dev (a local `livekit-server --dev`)"
            )
        return self.url or "", self.api_key or "", self.api_secret or SecretStr("")
