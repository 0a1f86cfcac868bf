"""The HTTP server: Twirp routes in LiveKit's order of checks, the admin API beside them, start and stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType

from aiohttp import web
from livekit.api.access_token import Claims

from ._admin import add_admin_routes
from ._auth import AuthRejected, authenticate
from ._services import METHODS, SERVICES
from ._state import State
from ._twirp import PROTOBUF, TwirpError, bad_route, content_kind, decode, encode, plain_text
from ._versions import V1_13_5, LiveKitVersion, version
from ._webhooks import Sink, Webhooks

# livekit-server 1.13.5 sets no body limit on its Twirp routes; the sandbox keeps one, far above any
# real request, only to protect itself.
MAX_BODY = 64 * 1024 * 1024
TWIRP_PREFIX = "/twirp/livekit."
# livekit-server waits ~3 s before answering a call nobody claims; the sandbox waits this long by default.
NO_RESPONSE_S = 0.1
# Field 31 with wire type 7, which does not exist: no protobuf message decodes this.
GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff"
DEFAULT_KEYS = {"devkey": "secret"}


class _Twirp:
    def __init__(self, state: State, keys: Mapping[str, str], no_response_s: float) -> None:
        self.state = state
        self.keys = keys
        self.no_response_s = no_response_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        limit = self.state.version.max_body
        if limit is not None and (request.content_length or 0) > limit:
            # 1.13.11's body limiter runs before the auth middleware (see _versions.py): no token is read.
            return plain_text(413, "request body too large")
        # The auth middleware runs before Twirp sees the request: its rejections are plain text.
        try:
            claims = authenticate(request, self.keys, self.state.version)
        except AuthRejected as exc:
            return plain_text(401, exc.text)
        try:
            with self.state.serving(request.path.lstrip("/").removeprefix(TWIRP_PREFIX[1:])):
                return await self._serve(request, claims)
        except TwirpError as err:
            return err.response()
        except ConnectionResetError:
            # The client hung up mid-request (e.g. its own timeout during injected latency): nobody to answer.
            return web.Response(status=499)

    async def _serve(self, request: web.Request, claims: Claims | None) -> web.StreamResponse:
        # livekit-server's RemoveDoubleSlashes middleware drops one leading slash (pkg/service/utils.go).
        path = request.path.removeprefix("/") if request.path.startswith("//") else request.path
        if request.method != "POST":
            raise bad_route(f'unsupported method "{request.method}" (only POST is allowed)', request.method, path)
        key = path.removeprefix(TWIRP_PREFIX) if path.startswith(TWIRP_PREFIX) else ""
        if not key.startswith(SERVICES):
            return await _page_not_found(request)  # Twirp never sees a path outside its services
        method = METHODS.get(key)
        if method is None:
            raise bad_route(f'no handler for path "{path}"', request.method, path)
        content_type = request.headers.get("Content-Type", "")
        kind = content_kind(content_type)
        if kind is None:
            raise bad_route(f'unexpected Content-Type: "{content_type}"', request.method, path)

        fault = self.state.faults.take(key)
        if fault is not None:
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.drop:
                if request.transport is not None:
                    request.transport.close()
                return web.Response()  # never sent: aiohttp drops a response to a closed connection
            if fault.error_code is not None:
                raise TwirpError(fault.error_code, fault.error_msg)
            if fault.malformed:
                return web.Response(body=GARBAGE, headers={"Content-Type": PROTOBUF})

        if (request.content_length or 0) > MAX_BODY:
            return plain_text(413, "request body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return plain_text(413, "request body too large")
        message = decode(body, kind, method.request)
        method.precheck(message)
        if not method.grant(claims, message):
            raise TwirpError("unauthenticated", "permissions denied")
        try:
            return encode(method.call(self.state, message), kind)
        except TwirpError as err:
            if err.unanswered:
                await asyncio.sleep(self.no_response_s)
            raise


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="OK")  # livekit-server answers "/" the same way


async def _page_not_found(request: web.Request) -> web.Response:
    return plain_text(404, "404 page not found\n")  # Go's http.NotFound, as livekit-server answers


def build_app(state: State, keys: Mapping[str, str], no_response_s: float = NO_RESPONSE_S) -> web.Application:
    # One byte over the limit so that a body of exactly MAX_BODY is still read.
    app = web.Application(client_max_size=MAX_BODY + 1)
    app.router.add_get("/", _health)
    twirp = _Twirp(state, keys, no_response_s).handle
    app.router.add_route("*", "/twirp/{tail:.*}", twirp)
    app.router.add_route("*", "//twirp/{tail:.*}", twirp)  # one leading slash too many: see RemoveDoubleSlashes
    add_admin_routes(app, state, keys)
    app.router.add_route("*", "/{tail:.*}", _page_not_found)
    return app


class Sandbox:
    """A LiveKit RoomService + AgentDispatchService emulator on a real HTTP port.

    `keys` maps API keys to secrets (default devkey/secret); `seed` loads the demo rooms; `no_response_s`
    is how long a call routed to a room or participant that is not live waits for its 503 (livekit-server:
    about 3 s); `livekit_version` is the livekit-server release it answers as, "1.13.5" (the real server of the
    contract tests) or "1.13.11" (read from its source: _versions.py).
    """

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        seed: bool = True,
        *,
        no_response_s: float = NO_RESPONSE_S,
        webhook_urls: Sequence[str] = (),
        webhook_sinks: Sequence[Sink] = (),
        livekit_version: str = V1_13_5.name,
    ) -> None:
        self.version: LiveKitVersion = version(livekit_version)
        self.keys = dict(keys if keys is not None else DEFAULT_KEYS)
        if not self.keys or not all(self.keys.values()):
            raise ValueError("the sandbox needs at least one API key, each with a non-empty secret")
        # Webhooks are signed with the first key, as livekit-server signs with its `webhook.api_key`.
        self.webhooks = Webhooks(self.api_key, self.api_secret)
        self.webhooks.set_urls(webhook_urls)
        for n, sink in enumerate(webhook_sinks):
            self.webhooks.add(f"in-process receiver {n}", sink)
        # Seeding sends the demo rooms' events too: a sandbox with webhooks is made on a running loop.
        self.state = State(self.webhooks, self.version)
        self.state.reset(seed=seed)
        self.no_response_s = no_response_s
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def api_key(self) -> str:
        return next(iter(self.keys))

    @property
    def api_secret(self) -> str:
        return self.keys[self.api_key]

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = a free port) and return the base URL, e.g. http://127.0.0.1:7880."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already started")
        # A short shutdown timeout: stop() must not wait for requests stalled by an injected latency.
        runner = web.AppRunner(
            build_app(self.state, self.keys, self.no_response_s), access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner, self._url = self._runner, None, None
            await runner.cleanup()
        await self.webhooks.aclose()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def serve_forever(
    host: str, port: int, *, seed: bool, webhook_urls: Sequence[str] = (), livekit_version: str = V1_13_5.name
) -> None:
    """Run the sandbox with the dev key until SIGINT or SIGTERM (`livekit-mcp sandbox`)."""
    asyncio.run(_serve_until_signal(host, port, seed, webhook_urls, livekit_version))


async def _serve_until_signal(
    host: str, port: int, seed: bool, webhook_urls: Sequence[str], livekit_version: str
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sandbox = Sandbox(seed=seed, webhook_urls=webhook_urls, livekit_version=livekit_version)
    url = await sandbox.start(host, port)
    try:
        # Only the public dev secret is ever printed; stdout stays untouched.
        print(
            f"LiveKit sandbox (an emulator, not LiveKit, answering as livekit-server {sandbox.version.name}) on {url}"
            f" - api key {sandbox.api_key}, "
            f"secret {sandbox.api_secret}{'' if seed else ', no demo rooms'}"
            f"{''.join(f', webhooks to {url}' for url in webhook_urls)}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await sandbox.stop()
