"""Running as a service over HTTP: who is calling, logs that say so, health, and a graceful stop.

- `Caller`: the authenticated principal (or none) and the on-behalf-of header, for roles, logs and the audit log.
- `CallerMiddleware`: per MCP request, tags log lines with the request id and the caller, and hides the change
  tools from tools/list for a token without the write scope (the change tools refuse such callers themselves).
- `/healthz`: the process is up, and whether LiveKit answered the last check (made at most every 5 s).
- `serve_http`: uvicorn with a grace period on SIGTERM, so calls in flight finish and new ones are refused.
"""

from __future__ import annotations

import contextvars
import functools
import getpass
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from livekit_mcp.auth import WRITE_SCOPE
from livekit_mcp.errors import LiveKitError
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import iso

log = logging.getLogger(__name__)

ON_BEHALF_OF = "x-on-behalf-of"
"""Header a bot sets to name the person it acts for: recorded, never taken as an identity."""
HEALTH_CACHE = 5.0


@dataclass(frozen=True)
class Caller:
    principal: str
    on_behalf_of: str | None = None
    can_write: bool = True


def _user_of(request: object) -> AuthenticatedUser | None:
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user if isinstance(user, AuthenticatedUser) else None


def caller_of(request: object, headers: Mapping[str, str] | None) -> Caller:
    """Who is calling: the HTTP token's principal, anonymous HTTP, or the local user on stdio."""
    token = get_access_token()
    user = _user_of(request)
    if token is None and user is not None:
        token = user.access_token
    on_behalf_of = headers.get(ON_BEHALF_OF) if headers is not None else None
    if token is not None:
        return Caller(token.client_id, on_behalf_of, WRITE_SCOPE in token.scopes)
    if headers is not None:
        return Caller("anonymous (HTTP)", on_behalf_of)
    return Caller(f"{_local_user()} (stdio)")


@functools.cache
def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no LOGNAME/USER
        return "local user"


# --- Logs that say which request and who -------------------------------------------------------------

_request: contextvars.ContextVar[tuple[str, Caller] | None] = contextvars.ContextVar("request", default=None)


class _RequestFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _request.get()
        record.request_id = current[0] if current else "-"
        record.principal = current[1].principal if current else "-"
        record.on_behalf_of = (current[1].on_behalf_of or "-") if current else "-"
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": iso(record.created) or "",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "principal": getattr(record, "principal", "-"),
            "on_behalf_of": getattr(record, "on_behalf_of", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Logs to stderr (stdout is the protocol in stdio mode), each line with its request id and caller."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestFields())
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s principal=%(principal)s "
            "on_behalf_of=%(on_behalf_of)s] %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class CallerMiddleware:
    """SDK server middleware: request id and caller into the logs; change tools unlisted for read-only callers."""

    def __init__(self, change_tools: Collection[str]) -> None:
        self._change_tools = frozenset(change_tools)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_of(ctx.request, getattr(ctx.request, "headers", None))
        reset = _request.set((str(ctx.request_id) if ctx.request_id is not None else "-", caller))
        try:
            result = await call_next(ctx)
        finally:
            _request.reset(reset)
        if ctx.method == "tools/list" and not caller.can_write and isinstance(result, dict):
            result = {
                **result,
                "tools": [t for t in result.get("tools", []) if t.get("name") not in self._change_tools],
            }
        return result


# --- Health ------------------------------------------------------------------------------------------


class Health:
    """`GET /healthz`: 200 while the process serves; the body says whether LiveKit answered the last check."""

    def __init__(self, livekit: Callable[[], LiveKit | None]) -> None:
        self._livekit = livekit
        self._last: tuple[float, dict[str, Any]] | None = None

    async def endpoint(self, request: Request) -> JSONResponse:
        now = time.monotonic()
        if self._last is None or now - self._last[0] > HEALTH_CACHE:
            self._last = (now, await self._check())
        return JSONResponse({"status": "ok", "livekit": self._last[1]})

    async def _check(self) -> dict[str, Any]:
        lk = self._livekit()
        checked_at = iso(time.time())
        if lk is None:
            return {"ok": False, "error": "not connected yet", "checked_at": checked_at}
        try:
            await lk.list_rooms(["healthz-probe"])
        except LiveKitError as exc:
            # The kind of failure, not the message: it names internal URLs, and /healthz needs no token.
            return {"ok": False, "error": type(exc).__name__, "checked_at": checked_at}
        return {"ok": True, "checked_at": checked_at}


# --- Serving -----------------------------------------------------------------------------------------


async def serve_http(app: Starlette, host: str, port: int, *, grace: int, log_level: str) -> None:
    """Serve until SIGINT/SIGTERM; then refuse new connections and give calls in flight `grace` seconds."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        log_config=None,  # keep our handler: uvicorn's own would print to stderr in another format
        timeout_graceful_shutdown=grace,
    )
    await uvicorn.Server(config).serve()
