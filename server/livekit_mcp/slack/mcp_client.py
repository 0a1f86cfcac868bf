"""The Slack app's way to LiveKit: an MCP client of livekit-mcp, so every guardrail, policy and audit line applies.

Two ways to reach the server:
- stdio (the default): one `livekit-mcp serve` child process for the app's life, started with our environment and
  the server flags given to `livekit-mcp slack`. Stdio has no headers: the person a call is made for travels as
  the request's `_meta` entry `livekit-mcp/on-behalf-of`, which the server records as it records the header.
- HTTP (`--mcp-url`): a running service, with a bearer token; the person is the `X-On-Behalf-Of` header. The
  SDK's HTTP transport sends a connection's headers with every request, so each call gets a connection of its own.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, RequestParamsMeta, TextContent, Tool

from livekit_mcp.service import _CONFIRM_TOKEN, ON_BEHALF_OF, ON_BEHALF_OF_META, failure_summary

log = logging.getLogger(__name__)

_SDK_PREFIX = re.compile(r"^Error executing tool \S+: ")
CALL_TIMEOUT = 90.0
"""Seconds one tool call may take, end to end (the server bounds each LiveKit call itself; remove_agent with a
grace period waits up to a minute)."""


@dataclass
class Answer:
    """A tool's answer as the Slack app uses it: whether it worked, its text, and its structured content."""

    ok: bool
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return str(self.data.get("outcome", "done")) if self.ok else "failed"


def _text(result: CallToolResult) -> str:
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent)).strip()
    # The SDK puts this before a tool's own error message; in Slack the message alone reads better.
    return _SDK_PREFIX.sub("", text) if result.is_error else text


def withheld(text: str) -> str:
    """`text` without any confirm token in it: what a model or a Slack message may be shown."""
    return _CONFIRM_TOKEN.sub("(withheld)", text)


class LiveKitTools:
    """Calls livekit-mcp's tools for a person; every failure becomes an `Answer` with one readable line."""

    def __init__(
        self,
        *,
        server_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        self._server_args = list(server_args)
        self._env = env
        self._url = url
        self._token = token
        self._stack = AsyncExitStack()
        self._stdio: Client | None = None

    async def __aenter__(self) -> LiveKitTools:
        if self._url is None:
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "livekit_mcp", "serve", *self._server_args], env=self._env
            )
            self._stdio = await self._stack.enter_async_context(Client(params))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @asynccontextmanager
    async def _client(self, person: str) -> AsyncIterator[tuple[Client, RequestParamsMeta | None]]:
        if self._stdio is not None:
            yield self._stdio, cast(RequestParamsMeta, {ON_BEHALF_OF_META: person})
            return
        assert self._url is not None
        headers = {ON_BEHALF_OF: person}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(self._url, http_client=http)) as client,
        ):
            yield client, None

    async def call(self, tool: str, arguments: dict[str, Any], person: str) -> Answer:
        """Call `tool` for `person` (recorded by the server as on-behalf-of)."""
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                async with self._client(person) as (client, meta):
                    result = await client.call_tool(tool, arguments, meta=meta)
        except TimeoutError:
            return Answer(False, f"livekit-mcp did not answer {tool} within {CALL_TIMEOUT:g} s; try again")
        except Exception as exc:  # the server unreachable, a protocol error: one line, the detail at DEBUG
            log.warning("calling %s failed: %s", tool, failure_summary(exc))
            log.debug("calling %s failed in detail", tool, exc_info=exc)
            return Answer(False, f"livekit-mcp could not be reached for {tool} ({_reason(exc)})")
        data = result.structured_content if isinstance(result.structured_content, dict) else {}
        return Answer(not result.is_error, _text(result) or ("failed" if result.is_error else "done"), data)

    async def tools(self, person: str) -> list[Tool]:
        """The tools the server offers (to this caller: a read-only token lists only the read tools)."""
        async with self._client(person) as (client, _):
            return list((await client.list_tools()).tools)


def _reason(exc: BaseException) -> str:
    """A connection failure in a few words, never its text (which may hold a URL with a token)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.TransportError | OSError):
        return "connection failed"
    return type(exc).__name__
