"""Running as a service over HTTP: who is calling, logs that say so, health, and a graceful stop.

- `Caller`: the authenticated principal (or none) and the on-behalf-of header, for roles, logs and the audit log.
- `CallerMiddleware`: per MCP request, tags log lines with the request id and the caller, and hides the change
  tools from tools/list for a token without the write scope (the change tools refuse such callers themselves).
- `OnBehalfOfCheck`: an `X-On-Behalf-Of` header that is too long, repeated, or holds control characters gets a 400
  before anything else reads it, so what logs and the audit log record is one printable line of bounded length.
- `/healthz`: the process is up, and whether LiveKit answered the last check (made at most every 5 s).
- `serve_http`: uvicorn with a grace period on SIGTERM, so calls in flight finish and new ones are refused.
"""

from __future__ import annotations

import contextvars
import functools
import getpass
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from livekit_mcp.auth import WRITE_SCOPE, projects_of
from livekit_mcp.config import Settings
from livekit_mcp.errors import LiveKitError
from livekit_mcp.limits import head_deadline_protocol
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import iso
from livekit_mcp.text import unseen

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)
STARTED = "livekit_mcp.started"
"""The logger of healthy start-up notices (where the service listens): INFO, and shown at the default WARNING
level too, since whoever started the service needs them; nothing is wrong when they are printed."""

ON_BEHALF_OF = "x-on-behalf-of"
"""Header a bot sets to name the person it acts for: recorded, never taken as an identity."""
ON_BEHALF_OF_META = "livekit-mcp/on-behalf-of"
"""The same over stdio, which has no headers: a `_meta` entry of the request (honoured on stdio only; over HTTP
the header is the one way, checked by `OnBehalfOfCheck`)."""
MAX_ON_BEHALF_OF = 200
"""Characters of `X-On-Behalf-Of` accepted: a user id, an e-mail address or a name fits."""
HEALTH_CACHE = 5.0
started = logging.getLogger(STARTED)


def on_behalf_of_problem(value: str) -> str | None:
    """Why an `X-On-Behalf-Of` value is refused (too long, control or format characters), or None when it is fine.
    Format characters (bidi overrides such as U+202E, zero-width ones) would make the name read as another in the
    audit log and history: "Eve \u202etoor\u202c" shows as "Eve root"."""
    if len(value) > MAX_ON_BEHALF_OF:
        return f"X-On-Behalf-Of is longer than {MAX_ON_BEHALF_OF} characters"
    if found := unseen(value):
        return (
            f"X-On-Behalf-Of holds control or format characters ({found}); send the name of the person on one "
            "printable line"
        )
    return None


def _decoded(raw: bytes) -> str:
    """A header value as its sender meant it: UTF-8 when it is that, else Latin-1 (what HTTP/1.1 allows)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _clean_on_behalf_of(value: str | None) -> str | None:
    # Headers reach us as Latin-1 (ASGI); the HTTP check (OnBehalfOfCheck) has refused what is unsafe, and this
    # keeps any other path (a transport without that check) to the same bound.
    if value is None:
        return None
    text = _decoded(value.encode("latin-1", errors="replace"))
    if on_behalf_of_problem(text) is not None:
        text = "".join("?" if unseen(ch) else ch for ch in text)
        text = text[:MAX_ON_BEHALF_OF] + ("…" if len(text) > MAX_ON_BEHALF_OF else "")
    return text


class OnBehalfOfCheck:
    """ASGI middleware: a request whose `X-On-Behalf-Of` is too long, repeated or holds control characters gets
    400 with the reason, before authentication or MCP see it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = [_decoded(v) for k, v in scope.get("headers", ()) if k.lower() == ON_BEHALF_OF.encode()]
            problem = "X-On-Behalf-Of is given more than once" if len(values) > 1 else None
            problem = problem or (on_behalf_of_problem(values[0]) if values else None)
            if problem is not None:
                response = JSONResponse({"error": "invalid_request", "error_description": problem}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Caller:
    principal: str
    on_behalf_of: str | None = None
    can_write: bool = True
    projects: frozenset[str] | None = None
    """The projects the caller's token is limited to; None: every project."""


def _user_of(request: object) -> AuthenticatedUser | None:
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user if isinstance(user, AuthenticatedUser) else None


def caller_of(request: object, headers: Mapping[str, str] | None, meta: Mapping[str, Any] | None = None) -> Caller:
    """Who is calling: the HTTP token's principal, anonymous HTTP, or the local user on stdio (with the person a
    local bot acts for, from the request's `_meta`)."""
    token = get_access_token()
    user = _user_of(request)
    if token is None and user is not None:
        token = user.access_token
    on_behalf_of = _clean_on_behalf_of(headers.get(ON_BEHALF_OF)) if headers is not None else None
    if token is not None:
        return Caller(token.client_id, on_behalf_of, WRITE_SCOPE in token.scopes, projects_of(token.scopes))
    if headers is not None:
        return Caller("anonymous (HTTP)", on_behalf_of)
    named = meta.get(ON_BEHALF_OF_META) if meta is not None else None
    # Whoever can write to a stdio server's stdin is the local user already: like the header, a name recorded.
    on_behalf_of = _clean_on_behalf_of(named.encode().decode("latin-1")) if isinstance(named, str) else None
    return Caller(f"{_local_user()} (stdio)", on_behalf_of)


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
        # Text lines quote what a caller chose, so `principal=` inside it cannot pass for a field of the line.
        on_behalf_of = current[1].on_behalf_of if current else None
        record.on_behalf_of_quoted = json.dumps(on_behalf_of, ensure_ascii=False) if on_behalf_of else "-"
        return True


def failure_summary(exc: BaseException) -> str:
    """What failed, in one line and without the exception's text (which may carry a caller's data): the type
    and the innermost place, for each failure of a group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(failure_summary(inner) for inner in exc.exceptions[:5])
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{where}"


# A confirm token (`v<n>.<expiry>.<digests…>.<hmac>`): the SDK's transports log whole messages at DEBUG (the SSE
# transport every message in and out), and a token in a log is a token anyone reading the log can use.
CONFIRM_TOKEN = re.compile(r"\bv\d+\.\d{6,}(?:\.[A-Za-z0-9_-]+){2,6}")


class _OneLine(logging.Formatter):
    """A record with an exception is one line (what failed, where) unless `tracebacks` (--log-level DEBUG).
    Whatever the level, confirm tokens and the configured `secrets` are blanked out of every line."""

    def __init__(self, fmt: str | None = None, *, tracebacks: bool, secrets: Collection[str] = ()) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redacted(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "(secret)")
        return CONFIRM_TOKEN.sub("(confirm token)", text)

    def exception_text(self, record: logging.LogRecord) -> str | None:
        if not record.exc_info or record.exc_info[1] is None:
            return None
        if self.tracebacks:
            return self.formatException(record.exc_info)
        return f"{failure_summary(record.exc_info[1])}; the traceback at --log-level DEBUG"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not self.tracebacks:
            summary = self.exception_text(record)
            record = logging.makeLogRecord(
                {**record.__dict__, "msg": f"{record.getMessage()} ({summary})", "args": (), "exc_info": None}
            )
            record.exc_text = None
        return self.redacted(super().format(record))


class _JsonFormatter(_OneLine):
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
        if (exception := self.exception_text(record)) is not None:
            line["exception"] = exception
        return self.redacted(json.dumps(line, ensure_ascii=False))


def configure_logging(level: str, fmt: str, secrets: Collection[str] = ()) -> None:
    """Logs to stderr (stdout is the protocol in stdio mode), each line with its request id and caller; a
    traceback only at DEBUG; never a confirm token or one of `secrets` (API secret, confirm key, bearer tokens)."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestFields())
    tracebacks = level == "DEBUG"
    handler.setFormatter(
        _JsonFormatter(tracebacks=tracebacks, secrets=secrets)
        if fmt == "json"
        else _OneLine(
            "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s principal=%(principal)s "
            "on_behalf_of=%(on_behalf_of_quoted)s] %(message)s",
            tracebacks=tracebacks,
            secrets=secrets,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = logging.getLevelName(level) > logging.WARNING  # --log-level ERROR hides them, as it did
    started.setLevel(level if quiet else logging.INFO)


ProjectNames = tuple[list[str], str]
"""The names of the projects served, and the default's ("" for the unnamed one)."""
MAX_PROJECT_ENUM = 10
"""Up to this many project names are listed in the `project` argument's schema; more are named by list_projects."""


class CallerMiddleware:
    """SDK server middleware: request id and caller into the logs; at tools/list, change tools unlisted for read-only
    callers, and the `project` argument described with the names this caller may use (never the others)."""

    def __init__(self, change_tools: Collection[str], projects: Callable[[], ProjectNames | None]) -> None:
        self._change_tools = frozenset(change_tools)
        self._projects = projects

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_of(ctx.request, getattr(ctx.request, "headers", None), ctx.meta)
        reset = _request.set((str(ctx.request_id) if ctx.request_id is not None else "-", caller))
        try:
            result = await call_next(ctx)
        finally:
            _request.reset(reset)
        if ctx.method == "tools/list" and isinstance(result, dict):
            tools = [t for t in result.get("tools", []) if caller.can_write or t.get("name") not in self._change_tools]
            argument = self._project_argument(caller)
            if argument is not None:
                tools = [_with_project(t, argument) for t in tools]
            result = {**result, "tools": tools}
        return result

    def _project_argument(self, caller: Caller) -> dict[str, Any] | None:
        """The `project` property for this caller: with several projects, the names it may use and the default."""
        served = self._projects()
        if served is None or len(served[0]) < 2:
            return None
        names, default = served
        allowed = [n for n in names if n and (caller.projects is None or n in caller.projects)]
        if not allowed or len(allowed) > MAX_PROJECT_ENUM:
            return None
        said = f"default {default}" if default and default in allowed else "omit for the default"
        return {"type": "string", "enum": allowed, "description": f"LiveKit project ({said})"}


def _with_project(tool: dict[str, Any], argument: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict):
        return tool
    properties = schema.get("properties")
    if not isinstance(properties, dict) or "project" not in properties:
        return tool
    return {**tool, "inputSchema": {**schema, "properties": {**properties, "project": argument}}}


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
        except Exception as exc:
            # The kind of failure, not the message: it names internal URLs, and /healthz needs no token. Whatever
            # failed, /healthz answers: the process serves, LiveKit is what is not ok.
            if not isinstance(exc, LiveKitError):
                log.warning("health check failed: %s", type(exc).__name__)
                log.debug("health check failure in detail", exc_info=exc)
            return {"ok": False, "error": type(exc).__name__, "checked_at": checked_at}
        return {"ok": True, "checked_at": checked_at}


# --- Serving -----------------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the app is built: with port 0 the kernel picks a free port, and what the
    app says about itself (the OAuth resource metadata) must name the port actually bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP. Without it Nagle
    # holds a response's body until the client ACKs its head, which the client delays (~40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock


async def serve_http(app: Starlette, settings: Settings, sock: socket.socket, what: str = "MCP") -> None:
    """Serve on `sock` until SIGINT/SIGTERM; then refuse new connections and give calls in flight `shutdown_grace`
    seconds."""
    await http_server(app, settings, what).serve(sockets=[sock])


def http_server(app: ASGIApp, settings: Settings, what: str = "MCP") -> uvicorn.Server:
    """uvicorn with the service's limits (the header deadline, the connection limit, the grace period): what
    `serve_http` runs, and what a test runs in its own process and stops with `should_exit`. uvicorn is imported
    here, by an HTTP start: a stdio server's first answer does not need it."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, saying the port it serves on once it does: whoever started us with port 0 reads it back."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for sock in sockets or ():
                if self.started:
                    started.info("serving %s over HTTP on %s port %d", what, *sock.getsockname()[:2])

    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our handler: uvicorn's own would print to stderr in another format
        timeout_graceful_shutdown=settings.shutdown_grace,
        http=head_deadline_protocol(settings.header_timeout),
        # uvicorn answers 503 once its count, the connection asking included, reaches the limit: +1 so that
        # max_connections connections are served.
        limit_concurrency=settings.max_connections + 1,
    )
    return Server(config)
