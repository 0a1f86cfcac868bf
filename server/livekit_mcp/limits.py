"""Holding up under abuse over HTTP: what a slow or greedy client gets, so the others are still served.

- `head_deadline_protocol`: uvicorn's h11 protocol with a deadline for each request's head. uvicorn arms no timer
  before a connection's first response, and any byte cancels its keep-alive timer, so a client that connects and
  sends nothing, or sends its headers a byte at a time, would otherwise hold a connection for ever.
- `BodyDeadline`: the whole request body within a deadline (and within the size limit), read before the app sees
  it; a client that trickles a body gets 408 and the connection closed.
- `SessionQuota`: MCP sessions per principal (the token's, or "anonymous" without tokens), so one caller, even
  a read-only one, cannot take every session of the server.

The connection limit itself is uvicorn's (`limit_concurrency`): past it, a request gets 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.types import INTERNAL_ERROR, ErrorData, JSONRPCError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"


def head_deadline_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request head has not arrived within `seconds` of
    the connection opening or of the previous response ending. uvicorn and h11 are imported here, by an HTTP
    start: a stdio server's first answer needs neither."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection that sent no complete request head within %g s", seconds)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the head is in: the body has its own deadline
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeadDeadline


def _json_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """The JSON-RPC error body the SDK itself answers transport refusals with."""
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INTERNAL_ERROR, message=message))
    return Response(
        body.model_dump_json(by_alias=True, exclude_unset=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class BodyDeadline:
    """ASGI middleware: the request body, whole, within `seconds` and `max_bytes`, before the app runs. The SDK reads
    the whole body anyway, so holding it here costs no more memory than the app would use."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        seconds: float,
        max_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
        read_by_app: Collection[str] = (),
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.read_by_app = frozenset(read_by_app)
        """Paths whose app reads the body itself, within its own limit, once it has checked the request (the webhook
        receiver: the signature first, so an unsigned body is never read; a signed one past its limit is a gap in
        history, never a 413 LiveKit would take as delivered). The deadline still holds: a body that is not in
        within it is a disconnect to the app."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.read_by_app:
            await self.app(scope, _within(receive, anyio.current_time() + self.seconds), send)
            return
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.seconds) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    response = _json_error(
                        f"request body larger than {self.max_bytes} bytes", 413, {"connection": "close"}
                    )
                    await response(scope, receive, send)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            log.info("refusing a request whose body did not arrive within %g s", self.seconds)
            response = _json_error(f"request body not received within {self.seconds:g} s", 408, {"connection": "close"})
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # what follows the body: the client going away

        await self.app(scope, replay, send)


def _within(receive: Receive, deadline: float) -> Receive:
    """`receive`, its body due by `deadline` (anyio time): a body not in by then reads as the client gone."""
    done = False

    async def timed() -> Message:
        nonlocal done
        if done:
            return await receive()  # what follows the body: the client going away
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            message = await receive()
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message
        log.info("a request whose body did not arrive in time: the app sees the client gone")
        done = True
        return {"type": "http.disconnect"}

    return timed


@dataclass
class _Session:
    principal: str
    in_flight: int = 0
    last_seen: float = field(default_factory=time.monotonic)


class SessionQuota:
    """ASGI middleware: at most `per_principal` open MCP sessions for each caller.

    A streamable HTTP session is opened by a request without `Mcp-Session-Id` whose answer carries one; it ends with
    a DELETE, a 404 for its id, or `idle_timeout` seconds without a request in flight (the SDK's own idle timeout,
    given the same value). An SSE session lasts as long as its GET /sse stream. `principal_of` names the caller of a
    request from its Authorization header (None: a token that authentication will refuse anyway)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_principal: int,
        idle_timeout: float,
        principal_of: Callable[[str | None], Awaitable[str | None]],
        sse_path: str | None = None,
        mcp_path: str = "/mcp",
    ) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.per_principal = per_principal
        self.idle_timeout = idle_timeout
        self.principal_of = principal_of
        self.sse_path = sse_path
        self._sessions: dict[str, _Session] = {}

    def _open_for(self, principal: str) -> int:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if s.in_flight == 0 and now - s.last_seen > self.idle_timeout:
                del self._sessions[sid]
        return sum(1 for s in self._sessions.values() if s.principal == principal)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        sid = headers.get(SESSION_HEADER)
        if sid is not None and sid in self._sessions:
            await self._in_session(sid, scope, receive, send)
            return
        opens_sse = self.sse_path is not None and scope["method"] == "GET" and scope["path"] == self.sse_path
        opens_mcp = self.sse_path is None and scope["method"] == "POST" and scope["path"] == self.mcp_path
        opens_session = sid is None and (opens_sse or opens_mcp)
        principal = await self.principal_of(headers.get("authorization")) if opens_session else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        if self._open_for(principal) >= self.per_principal:
            log.warning("refusing a new session for %s: %d open, the limit", principal, self.per_principal)
            response = _json_error(
                f"too many open sessions for {principal} (the limit is {self.per_principal}): end one "
                f"(HTTP DELETE with its Mcp-Session-Id) or let idle ones expire after {self.idle_timeout:g} s",
                503,
            )
            await response(scope, receive, send)
            return
        if opens_sse:
            await self._sse_session(principal, scope, receive, send)
        else:
            await self._opening(principal, scope, receive, send)

    async def _opening(self, principal: str, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                for key, value in message.get("headers", ()):
                    if key.decode("latin-1").lower() == SESSION_HEADER:
                        self._sessions[value.decode("latin-1")] = _Session(principal)
            await send(message)

        await self.app(scope, receive, watch)

    async def _in_session(self, sid: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions[sid]
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        session.in_flight += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            session.in_flight -= 1
            session.last_seen = time.monotonic()
            gone = status and (status[0] == 404 or (scope["method"] == "DELETE" and status[0] < 300))
            if gone:
                self._sessions.pop(sid, None)

    async def _sse_session(self, principal: str, scope: Scope, receive: Receive, send: Send) -> None:
        key = f"sse:{id(scope)}"
        self._sessions[key] = _Session(principal, in_flight=1)
        try:
            await self.app(scope, receive, send)
        finally:
            self._sessions.pop(key, None)


def principal_lookup(verify: Callable[[str], Awaitable[Any]] | None) -> Callable[[str | None], Awaitable[str | None]]:
    """The caller a request's Authorization header names: the token's principal, "anonymous" when the server takes
    no tokens, None for a token it will refuse (authentication answers that request, not the quota)."""

    async def principal_of(authorization: str | None) -> str | None:
        if verify is None:
            return "anonymous"
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        access = await verify(token.strip())
        return None if access is None else str(access.client_id)

    return principal_of
