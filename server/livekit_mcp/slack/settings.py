"""The Slack app's settings: the one place its variables are read (the server's own stay in `config.py`).

Slack's and Anthropic's variables keep the names their own SDKs and docs use (`SLACK_BOT_TOKEN`,
`SLACK_SIGNING_SECRET`, `SLACK_APP_TOKEN`, `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`); ours are prefixed
`LIVEKIT_MCP_SLACK_`.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from livekit_mcp.config import CommaList
from livekit_mcp.errors import MissingSlackSetting

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_MODEL = "claude-sonnet-5-5"
Role = Literal["read", "write"]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name.lower(), name)


class SlackSettings(BaseSettings):
    """Everything `livekit-mcp slack` is configured with, besides the server's own settings."""

    model_config = SettingsConfigDict(env_prefix="LIVEKIT_MCP_SLACK_", extra="ignore", populate_by_name=True)

    bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    """The bot's token (`xoxb-…`), for the Web API."""
    signing_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    """Slack signs every HTTP request with it; HTTP mode refuses any request whose signature does not match."""
    app_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_APP_TOKEN"))
    """An app-level token (`xapp-…`, scope connections:write): Socket Mode, no public URL needed."""
    api_url: str = SLACK_API_URL
    """The Web API's base URL (LIVEKIT_MCP_SLACK_API_URL)."""

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    """Where HTTP mode serves /slack/events."""

    mcp_url: str | None = None
    """A running livekit-mcp HTTP service (`…/mcp`) to use instead of starting the server over stdio."""
    mcp_token: SecretStr | None = None
    """The bearer token for mcp_url."""

    change_channels: CommaList = Field(default_factory=lambda: ["*"])
    """Channel ids (globs) where change and destructive commands may run; elsewhere only reads."""
    writers: CommaList = Field(default_factory=lambda: ["*"])
    """Slack user ids (U…) or user group ids (S…) with the write role; everyone else may only read."""
    approvers: CommaList = Field(default_factory=list)
    """User ids or user group ids who may confirm anyone's destructive request (the asker always may)."""

    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias=_env("ANTHROPIC_API_KEY"))
    """Turns the AI mode (mentions and DMs) on."""
    anthropic_base_url: str | None = Field(default=None, validation_alias=_env("ANTHROPIC_BASE_URL"))
    model: str = DEFAULT_MODEL
    """The Anthropic model of the AI mode."""
    max_turns: int = Field(default=8, ge=1, le=50)
    """Tool-calling rounds the model may take for one question."""

    page_size: int = Field(default=10, ge=1, le=40)
    """Rows of a list shown at once; a "more" button shows the next."""

    def mode(self) -> Literal["socket", "http"]:
        return "socket" if self.app_token is not None else "http"

    def check(self) -> None:
        """Refuse to start without what the mode needs (MissingSlackSetting names it)."""
        if self.bot_token is None:
            raise MissingSlackSetting("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…, under OAuth & Permissions)")
        if self.mode() == "http" and self.signing_secret is None:
            raise MissingSlackSetting(
                "HTTP mode needs SLACK_SIGNING_SECRET (Basic Information > Signing Secret), or set SLACK_APP_TOKEN "
                "for Socket Mode"
            )
        if self.mcp_token is not None and self.mcp_url is None:
            raise MissingSlackSetting("LIVEKIT_MCP_SLACK_MCP_TOKEN is set but --mcp-url is not")

    def secrets(self) -> list[str]:
        """Every token of these settings, for logs to blank out."""
        held = (self.bot_token, self.signing_secret, self.app_token, self.mcp_token, self.anthropic_api_key)
        return [s.get_secret_value() for s in held if s is not None and s.get_secret_value()]

    def may_change_in(self, channel: str) -> bool:
        return any(fnmatchcase(channel, pattern) for pattern in self.change_channels)


OWN_PREFIXES = ("SLACK_", "ANTHROPIC_", "LIVEKIT_MCP_SLACK_")


def server_environment() -> dict[str, str]:
    """The environment the stdio server is started with: ours, so it reads the same settings we were given, less
    the Slack and Anthropic tokens, which it has no use for."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(OWN_PREFIXES)}
