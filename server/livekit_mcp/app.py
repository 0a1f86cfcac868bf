"""Builds the MCP server from settings, and runs it on the chosen transport."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import mcp.server.mcpserver.server as mcpserver_module
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.utilities.logging import configure_logging as _sdk_configure_logging
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, CompleteRequestParams, CompleteResult, InputRequiredResult, Resource
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from livekit_mcp import __version__, heap
from livekit_mcp.audit import AuditLog, record_invalid
from livekit_mcp.auth import READ_SCOPE, StaticTokens, parse_tokens, read_token_file
from livekit_mcp.completions import complete
from livekit_mcp.config import Settings
from livekit_mcp.confirm import Guard, Tokens
from livekit_mcp.errors import (
    AuthConfigError,
    InvalidInput,
    LiveKitMCPError,
    MissingCredentialsError,
    PolicyRefusal,
    ProjectsError,
    StartupError,
    StoreError,
)
from livekit_mcp.history import WEBHOOK_PATH, WebhookEndpoint
from livekit_mcp.limits import BodyDeadline, SessionQuota, principal_lookup
from livekit_mcp.livekit_backend import LiveKit, webhook_verifier
from livekit_mcp.policy import Budget
from livekit_mcp.projects import Project, Projects, ProjectSpec, policy_for, project_specs, read_only_for
from livekit_mcp.request_state import KeyRing, audience_of, protect, request_state_policy
from livekit_mcp.resources import register_resources
from livekit_mcp.scope import AppContext, app_of, caller_in
from livekit_mcp.service import (
    CallerMiddleware,
    Health,
    OnBehalfOfCheck,
    failure_summary,
    listen,
    serve_http,
    started,
)
from livekit_mcp.store import MemoryStore, Retention, Store, open_store
from livekit_mcp.tools import build_tools, invalid_arguments

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Operate the rooms of a LiveKit server: see who is in a room, find the AI agent, remove a participant,
delete a room. Agents are participants of kind AGENT (older ones: STANDARD with the agent permission);
find_agent finds them. Removing a participant does not revoke their token. Destructive tools act on live
calls: they may ask the user to confirm, or answer outcome=confirmation_required with a confirm_token; then
show the user what would happen and call again with the token only if they agree. Several LiveKit projects
may be served: list_projects names them, and every tool takes one as `project` (the default when omitted)."""

SANDBOX_PROJECTS = ("staging", "production")
"""The demo projects of --sandbox, each its own sandbox with its own key; the first is the default."""

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def token_verifier(settings: Settings) -> StaticTokens | None:
    """The configured bearer tokens (LIVEKIT_MCP_AUTH_TOKENS and LIVEKIT_MCP_AUTH_FILE), or None for no auth."""
    try:
        entries = parse_tokens(settings.auth_tokens.get_secret_value()) if settings.auth_tokens else []
        if settings.auth_file is not None:
            entries += read_token_file(settings.auth_file)
        tokens = StaticTokens(entries)
    except AuthConfigError as exc:
        raise StartupError(f"auth tokens: {exc}") from exc
    return tokens or None


def public_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104 - compared, not bound
    return settings.public_url or f"http://{host}:{settings.port}/mcp"


def _sdk_logging_unless_ours(level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO") -> None:
    """The SDK's logging set-up, which every MCPServer runs when built, only when nothing has set up logging: it
    is `logging.basicConfig` with rich's handler, a no-op once the root logger has a handler (ours, set up by the
    command line before the server is built), and importing rich for it cost the cold start ~50 ms for nothing."""
    if not logging.getLogger().handlers:
        _sdk_configure_logging(level)


# The name the SDK's server module calls (it imported the function by name), so replaced there.
mcpserver_module.configure_logging = _sdk_logging_unless_ours  # type: ignore[attr-defined]


class _Server(MCPServer[AppContext]):
    """The SDK's server, with argument errors a model can read at a glance (see tools.invalid_arguments), recorded
    in the audit log for the change tools (whose runner never starts then), and errors of a named project saying
    which project failed."""

    def __init__(self, *args: Any, change_tools: frozenset[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._change_tools = change_tools
        # Not the SDK's `completion()` decorator: its handler is not given the request, so it could not know the
        # caller, and completions are in the request's scope as every other surface is (completions.py).
        self._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, self._complete)

    async def _complete(
        self, ctx: ServerRequestContext[AppContext, Any], params: CompleteRequestParams
    ) -> CompleteResult:
        return CompleteResult(completion=await complete(Context(request_context=ctx, mcp_server=self), params))

    async def list_resources(self) -> list[Resource]:
        """The resources, and the templates whose variables are all optional (`livekit://rooms{?project}`) at their
        bare URI: a template is how a reader gets the request's scope, and the bare URI is what clients list."""
        listed = await super().list_resources()
        for template in await self.list_resource_templates():
            bare = template.uri_template.split("{?")[0]
            if "{" not in bare:
                listed.append(
                    Resource(
                        uri=bare,
                        name=template.name,
                        description=template.description,
                        mime_type=template.mime_type,
                    )
                )
        return listed

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppContext, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """The one place our errors become what the model reads: a LiveKitMCPError (from a resolver or the body)
        is a tool error with its own message; anything else is a crash, said without its text (`_reported`)."""
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, LiveKitMCPError):
                raise _reported(name, exc) from cause
            said = f"Error executing tool {name}: {cause}"
            named = arguments.get("project")
            if isinstance(named, str) and named and not _about_the_project(cause):
                # Which of several projects failed: the message of a LiveKit error names a URL at best.
                said = f"Error executing tool {name}: project '{named}': {cause}"
            raise ToolError(said) from cause
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            message = invalid_arguments(name, exc.__cause__)
            if name in self._change_tools and context is not None:
                caller = caller_in(context)
                audit = app_of(context).audit
                record_invalid(audit, name, arguments, caller.principal, caller.on_behalf_of, message)
            raise ToolError(message) from exc.__cause__


def _about_the_project(error: LiveKitMCPError) -> bool:
    """An error of the project's choice itself (unknown, or not the caller's), which names it already."""
    return (isinstance(error, InvalidInput) and error.field == "project") or (
        isinstance(error, PolicyRefusal) and error.rule == "projects"
    )


def _reported(tool: str, crash: UnexpectedToolError) -> ToolError:
    """A crash of a tool as one tool error the model can read, logged as one line (the traceback at DEBUG).

    A group of failures (a fan-out) is reported by the failures of ours in it, by their own messages."""
    cause = crash.__cause__
    if isinstance(cause, BaseExceptionGroup):
        ours, _ = cause.split(LiveKitMCPError)
        if ours is not None:
            messages = list(dict.fromkeys(str(e) for e in _leaves(ours)))
            return ToolError(
                "; ".join(messages[:3]) + (f" (and {len(messages) - 3} more)" if len(messages) > 3 else "")
            )
    what = failure_summary(cause) if cause is not None else "unknown"
    log.error("tool %s failed unexpectedly (%s)", tool, what)
    log.debug("tool %s failure in detail", tool, exc_info=cause)
    return ToolError(
        f"{tool} failed inside this server ({what.split(' ')[0]}); nothing more is known to it. "
        "If an argument was unusual, try a plain one; the server log has the detail."
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for inner in group.exceptions
        for leaf in (_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    ]


def build_server(
    settings: Settings,
    verifier: StaticTokens | None = None,
    store: Store | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> MCPServer[AppContext]:
    """The MCP server with every tool, connecting to LiveKit when it starts (in its lifespan); HTTP callers must
        present a token `verifier` accepts, when there is one. `store` holds what replicas share and, with history on,
        room history; then HTTP also receives LiveKit's webhooks at /webhooks/livekit. `clock` (Unix time) is what
    confirm tokens and the request state of 2026-07-28 expire by: a test hands one it moves on, not waiting."""
    history = store if settings.history == "on" else None
    sandboxed = settings.credentials == "sandbox"
    try:
        specs, default = ([], sandbox_default(settings)) if sandboxed else project_specs(settings)
    except (ProjectsError, MissingCredentialsError) as exc:
        raise StartupError(str(exc)) from None
    if verifier is not None and not sandboxed:
        known = {spec.name for spec in specs}
        for principal, names in verifier.projects_named().items():
            if unknown := sorted(set(names) - known):
                raise StartupError(
                    f"auth tokens: the token of '{principal}' names unknown project {', '.join(unknown)}"
                )
    # One key (and the previous ones, while rotating) for tokens and the request state: a token names its project,
    # checked on redeeming. Without LIVEKIT_MCP_CONFIRM_KEY a random one: what this process issues, it alone accepts.
    confirm_keys = settings.confirm_keys() or [secrets.token_bytes(32)]
    if settings.transport == "http" and settings.stateless and settings.confirm_key is None:
        log.warning(
            "stateless HTTP without LIVEKIT_MCP_CONFIRM_KEY: a confirmation started on one replica cannot be "
            "finished on another; give every replica the same key"
        )
    shared = None if store is None or isinstance(store, MemoryStore) else store  # memory: this process alone
    tokens = Tokens(confirm_keys[0], settings.confirm_ttl, clock, previous=confirm_keys[1:])
    ring = KeyRing(confirm_keys, settings.confirm_ttl, clock)
    opened: list[Projects] = []  # the projects of the running lifespan, for /healthz and tools/list
    # Fresh random secrets for --sandbox: nobody else needs them, and they are long enough for HS256.
    sandbox_secrets = [secrets.token_hex(32) for _ in SANDBOX_PROJECTS]
    receiver = None  # history is the default project's: its webhooks feed it
    if history is not None:
        own = SANDBOX_PROJECTS.index(default) if sandboxed else 0
        key, secret = ("sandbox", sandbox_secrets[own]) if sandboxed else webhook_key(settings)
        receiver = WebhookEndpoint(history, webhook_verifier(key, secret))

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppContext]) -> AsyncIterator[AppContext]:
        async with AsyncExitStack() as stack:
            serving = specs
            if sandboxed:
                from livekit_mcp.sandbox import Sandbox  # only --sandbox pays for importing it

                serving = []
                for name, secret in zip(SANDBOX_PROJECTS, sandbox_secrets, strict=True):
                    # The default project's webhooks go straight to our receiver (signed and verified all the
                    # same): history at once.
                    sinks = [receiver.status_of] if receiver is not None and name == default else []
                    sandbox = await stack.enter_async_context(
                        Sandbox(keys={"sandbox": secret}, seed=True, webhook_sinks=sinks)
                    )
                    serving.append(ProjectSpec(name, sandbox.url, sandbox.api_key, SecretStr(secret), "--sandbox"))
                    started.info("LiveKit sandbox with demo rooms at %s (project %s)", sandbox.url, name)
            running = []
            for spec in serving:
                policy = policy_for(spec, settings)
                # Each its own connection and limits: a project that is down slows none of the others.
                livekit = await stack.enter_async_context(
                    LiveKit(
                        spec.url,
                        spec.api_key,
                        spec.api_secret,
                        timeout=settings.timeout,
                        concurrency=settings.concurrency,
                        retries=settings.retries,
                        policy=policy,
                        egress_output=settings.egress_output,
                        ingress_pull_hosts=settings.ingress_pull_hosts,
                    )
                )
                # One budget and one record of used tokens per project: across the replicas when a store is shared.
                spent = shared or MemoryStore()
                budget = Budget(policy.max_destructive_per_minute, spent, spec.name, shared=shared is not None)
                guard = Guard(policy, tokens, budget, spent, settings.confirm)
                running.append(Project(spec, livekit, guard, read_only_for(spec, settings)))
            projects = Projects(running, default)
            opened.append(projects)
            try:
                yield AppContext(
                    projects=projects, audit=AuditLog(settings.audit_log, history, default), kept_history=history
                )
            finally:
                opened.remove(projects)

    # Change tools are listed while any project may change things; a read-only project refuses them (audit.py).
    read_only = settings.read_only if sandboxed else all(read_only_for(spec, settings) for spec in specs)
    tools = build_tools(toolsets=settings.toolsets, read_only=read_only, output_schemas=settings.output_schemas)
    auth = None
    if verifier is not None:
        url = public_url(settings)
        # Static tokens have no authorization server of their own: the issuer named is this server.
        # Static tokens name no resource (RFC 8707): there is no audience to check them against.
        auth = AuthSettings(
            issuer_url=url.removesuffix("/mcp"),
            resource_server_url=url,
            required_scopes=[READ_SCOPE],
            validate_token_resource=False,
        )
    change_tools = frozenset(t.name for t in tools if not (t.annotations and t.annotations.read_only_hint))
    server = _Server(
        "livekit-mcp",
        title="LiveKit operations",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        tools=tools,
        token_verifier=verifier,
        auth=auth,
        middleware=[CallerMiddleware(change_tools, lambda: _names(opened[-1]) if opened else None)],
        change_tools=change_tools,
        request_state_security=request_state_policy(ring, audience_of(settings.public_url)),
    )
    protect(server, ring, shared or MemoryStore())  # a requestState answers one round, across replicas sharing store
    register_resources(server)
    server.custom_route("/healthz", methods=["GET"])(
        Health(lambda: opened[-1].default.livekit if opened else None).endpoint
    )
    if receiver is not None:
        server.custom_route(WEBHOOK_PATH, methods=["POST"])(receiver.receive)
    return server


def sandbox_default(settings: Settings) -> str:
    """The default of --sandbox's projects: --project's, when it names one of them (StartupError otherwise)."""
    if settings.project is None:
        return SANDBOX_PROJECTS[0]
    if settings.project not in SANDBOX_PROJECTS:
        raise ProjectsError(
            f"--project/LIVEKIT_MCP_PROJECT names '{settings.project}', which is not a project of --sandbox "
            f"(known: {', '.join(SANDBOX_PROJECTS)})"
        )
    return settings.project


def _names(projects: Projects) -> tuple[list[str], str]:
    return [p.name for p in projects], projects.default.name


def webhook_key(settings: Settings) -> tuple[str, str]:
    """The API key and secret LiveKit signs its webhooks with: the default project's own (`webhook.api_key`).

    With --project NAME, NAME's pair, even when LIVEKIT_API_KEY/LIVEKIT_API_SECRET (of another deployment, maybe)
    are set: the flag comes first, as for `lk`, and another deployment's webhooks must never pass for NAME's."""
    if (
        settings.project is None
        and settings.credentials != "dev"
        and settings.api_key
        and settings.api_secret
        and settings.api_secret.get_secret_value()
    ):
        return settings.api_key, settings.api_secret.get_secret_value()
    try:
        specs, default = project_specs(settings)  # the default project's, as `lk` would pick it
    except (ProjectsError, MissingCredentialsError):
        raise StartupError(
            "webhooks need LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or a default project of `lk`'s): "
            "LiveKit signs them with that pair"
        ) from None
    spec = next(spec for spec in specs if spec.name == default)
    return spec.api_key, spec.api_secret.get_secret_value()


def open_shared_store(settings: Settings) -> Store:
    """The store of room history and of what replicas share (LIVEKIT_MCP_STORE); one line and no start if it is
    unusable. Opened with history off too: confirm tokens and the destructive budget are still shared through it.
    `--sandbox` keeps its made-up history in memory unless a store is named for it: it must never mix with the
    user's real history (nor show earlier runs' sessions as live)."""
    retention = Retention(settings.history_retention_days * 86_400, settings.history_max_events)
    if settings.credentials == "sandbox" and settings.store is None:
        return MemoryStore(retention)
    try:
        return open_store(settings.store.get_secret_value() if settings.store else None, retention)
    except StoreError as exc:
        raise StartupError(f"LIVEKIT_MCP_STORE: {exc}") from None


def webhooks_app(settings: Settings, store: Store) -> Starlette:
    """`livekit-mcp webhooks`: the receiver alone, for setups whose assistants use stdio (they read the store)."""
    routes = [
        Route(WEBHOOK_PATH, WebhookEndpoint(store, webhook_verifier(*webhook_key(settings))).receive, methods=["POST"]),
        Route("/healthz", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout, read_by_app={WEBHOOK_PATH})
    return app


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin checks, kept on whatever the bind address (the SDK drops them off loopback)."""
    hosts = [f"{h}:*" for h in ("127.0.0.1", "localhost", "[::1]")]
    origins = [f"http://{h}:*" for h in ("127.0.0.1", "localhost", "[::1]")]
    if settings.host not in LOOPBACK and settings.host not in ("0.0.0.0", "::"):  # noqa: S104 - compared, not bound
        hosts.append(f"{settings.host}:*")
        origins.append(f"http://{settings.host}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + settings.allowed_hosts,
        allowed_origins=origins + settings.allowed_origins,
    )


def http_app(server: MCPServer[AppContext], settings: Settings, verifier: StaticTokens | None = None) -> Starlette:
    """The ASGI app of the HTTP transports: MCP at /mcp (or /sse), plus /healthz, with the limits that keep a slow
    or greedy client from starving the others (see limits.py)."""
    security = transport_security(settings)
    if settings.transport == "sse":
        app = server.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security)
    else:
        app = server.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=settings.stateless,
            transport_security=security,
            max_sessions=settings.max_sessions,
            session_idle_timeout=settings.session_idle_timeout,
        )
    # Starlette runs the middleware added last first.
    if not settings.stateless or settings.transport == "sse":
        app.add_middleware(
            SessionQuota,
            per_principal=settings.max_sessions_per_principal,
            idle_timeout=settings.session_idle_timeout,
            principal_of=principal_lookup(verifier.verify_token if verifier is not None else None),
            sse_path="/sse" if settings.transport == "sse" else None,
        )
    app.add_middleware(OnBehalfOfCheck)  # before authentication and MCP read the header
    # Outermost: nothing runs on half a request (the receiver reads its own, after the signature; a gap past its limit).
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout, read_by_app={WEBHOOK_PATH})
    return app


def check_exposure(settings: Settings, authenticated: bool) -> None:
    """Refuse to serve LiveKit admin rights to a network without tokens, unless told to, loudly."""
    if settings.transport == "stdio" or settings.host in LOOPBACK or authenticated:
        return
    if not settings.allow_unauthenticated:
        raise StartupError(
            f"refusing to serve HTTP on {settings.host} without authentication: set LIVEKIT_MCP_AUTH_TOKENS "
            "or LIVEKIT_MCP_AUTH_FILE, or pass --allow-unauthenticated if something in front of it checks callers"
        )
    log.warning("serving on %s WITHOUT authentication: anyone who reaches this port can operate LiveKit", settings.host)


def run(settings: Settings) -> None:
    """Serve MCP on the configured transport until interrupted (or SIGTERM, over HTTP)."""
    verifier = token_verifier(settings) if settings.transport != "stdio" else None
    check_exposure(settings, authenticated=verifier is not None)
    store = open_shared_store(settings)
    if settings.transport == "stdio":
        server = build_server(settings, store=store)
        heap.settle()
        server.run()
        return
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        raise StartupError(str(exc)) from None
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})  # port 0: the one the kernel gave
    app = http_app(build_server(settings, verifier, store), settings, verifier)
    heap.settle()
    anyio.run(lambda: serve_http(app, settings, sock))


def run_webhooks(settings: Settings) -> None:
    """Receive LiveKit's webhooks into the store until interrupted (`livekit-mcp webhooks`)."""
    if settings.history == "off":
        raise StartupError("LIVEKIT_MCP_HISTORY is off: there is nothing to receive webhooks for")
    store = open_shared_store(settings)
    app = webhooks_app(settings, store)
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        raise StartupError(str(exc)) from None
    anyio.run(lambda: serve_http(app, settings, sock, what="LiveKit webhooks"))
