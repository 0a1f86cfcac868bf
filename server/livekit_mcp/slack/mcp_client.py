"""The Slack app's way to LiveKit: an MCP client of livekit-mcp, so every guardrail, policy and audit line applies.

Two ways to reach the server:
- stdio (the default): one `livekit-mcp serve` child process, started with our environment and the server flags
  given to `livekit-mcp slack`, and started again if it is lost (the call that found it gone fails in one line).
  (Tests hand a server object instead, connected in memory: `server=`.)
  Stdio has no headers: the person a call is made for travels as the request's `_meta` entry
  `livekit-mcp/on-behalf-of`, which the server records as it records the header.
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
import anyio.abc
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, RequestParamsMeta, TextContent, Tool

from livekit_mcp.errors import ServerLost
from livekit_mcp.service import CONFIRM_TOKEN, ON_BEHALF_OF, ON_BEHALF_OF_META, failure_summary

log = logging.getLogger(__name__)

_SDK_PREFIX = re.compile(r"^Error executing tool \S+: ")
RESTART_PAUSE = 1.0
"""Seconds between starting a lost stdio server again, so one that cannot start does not spin."""
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
    return CONFIRM_TOKEN.sub("(withheld)", text)


class LiveKitTools:
    """Calls livekit-mcp's tools for a person; every failure becomes an `Answer` with one readable line."""

    def __init__(
        self,
        *,
        server_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        url: str | None = None,
        token: str | None = None,
        project: str | None = None,
        server: Any = None,
    ) -> None:
        self._params: Any = server or StdioServerParameters(
            command=sys.executable, args=["-m", "livekit_mcp", "serve", *server_args], env=env
        )
        self.project = project
        """`slack --project NAME`: every call names NAME, so the bot operates NAME alone (on a stdio server and on a
        service of several projects alike), whatever a model asks for."""
        self._url = url
        self._token = token
        self._stack = AsyncExitStack()
        self._stdio: Client | None = None
        self._lost = anyio.Event()

    async def __aenter__(self) -> LiveKitTools:
        if self._url is None:
            tasks = await self._stack.enter_async_context(anyio.create_task_group())
            self._stack.callback(tasks.cancel_scope.cancel)
            await tasks.start(self._keep_server)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _keep_server(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Own the stdio server for the app's life (the SDK's client must be closed by the task that opened it),
        and start it again when it is lost: a crashed server must not leave Slack without LiveKit."""
        started = False
        while True:
            try:
                async with Client(self._params) as client:
                    self._stdio, self._lost = client, anyio.Event()
                    if not started:
                        started = True
                        task_status.started()
                    await self._lost.wait()
            except Exception as exc:
                if not started:
                    raise
                log.warning("the livekit-mcp server could not be started again: %s", failure_summary(exc))
            self._stdio = None
            log.warning("the livekit-mcp server was lost; starting it again")
            await anyio.sleep(RESTART_PAUSE)

    @asynccontextmanager
    async def _client(self, person: str) -> AsyncIterator[tuple[Client, RequestParamsMeta | None]]:
        if self._url is None:
            if self._stdio is None:
                raise ServerLost
            try:
                yield self._stdio, cast(RequestParamsMeta, {ON_BEHALF_OF_META: person})
            except MCPError as exc:
                if exc.error.code == CONNECTION_CLOSED:
                    self._lost.set()
                    raise ServerLost from exc
                raise
            return
        headers = {ON_BEHALF_OF: person}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(self._url, http_client=http)) as client,
        ):
            yield client, None

    async def call(self, tool: str, arguments: dict[str, Any], person: str) -> Answer:
        """Call `tool` for `person` (recorded by the server as on-behalf-of), in the app's project if it has one."""
        if self.project is not None:
            arguments = {**arguments, "project": self.project}
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                async with self._client(person) as (client, meta):
                    result = await client.call_tool(tool, arguments, meta=meta)
        except TimeoutError:
            return Answer(False, f"livekit-mcp did not answer {tool} within {CALL_TIMEOUT:g} s; try again")
        except ServerLost:
            return Answer(False, f"livekit-mcp stopped while asked for {tool}; it is starting again: try again")
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
