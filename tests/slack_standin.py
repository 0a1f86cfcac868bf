"""Slack's side of the Slack app's tests, on real loopback sockets, speaking Slack's documented wire formats.

- `SlackStandIn`: the Web API (`/api/<method>`: auth.test, chat.postMessage, chat.update, usergroups.users.list,
  apps.connections.open), response URLs (`/response/<n>`), and a Socket Mode WebSocket (`/socket`) that sends a
  `hello`, then envelopes, and records the acks. It runs in a thread with its own event loop, like the sandbox:
  the app under test is another process, and the test's own loop may block while that process starts.
- `signed`: the headers Slack signs a request with (v0 HMAC-SHA256 of `v0:<timestamp>:<body>`).
- `slash_body`, `click_body`, `event_body`: requests as Slack sends them (form-encoded slash commands,
  `payload=<json>` interactions, JSON Events API callbacks).
- `ModelStandIn`: Anthropic's Messages API (`POST /v1/messages`), playing scripted answers and recording requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from aiohttp import WSMsgType, web

TEAM = "T0LIVEKIT"
BOT_USER = "U0BOT"
APP_ID = "A0LIVEKIT"


@dataclass
class Call:
    method: str
    payload: dict[str, Any]
    authorization: str


class _Threaded:
    """An aiohttp app served on a free loopback port from a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            self.routes(app)
            self._runner = web.AppRunner(app, shutdown_timeout=0.2)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve())
            ready.set()
            self.loop.run_forever()
            if self._runner is not None:
                self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        assert ready.wait(10), f"{type(self).__name__} did not start"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)


class SlackStandIn(_Threaded):
    def __init__(self, group_members: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.group_members = group_members or {}
        self._ws: web.WebSocketResponse | None = None
        self._ts = itertools.count(1)
        self._urls = itertools.count(1)

    def forget(self) -> None:
        """An empty record of calls, responses and acknowledgements (the stand-in serves on)."""
        self.calls.clear()
        self.responses.clear()
        self.acks.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{n}", self._response)
        app.router.add_get("/socket", self._socket)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/response/{next(self._urls)}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        payload: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            if request.content_type == "application/json":
                payload |= json.loads(body)
            else:
                payload |= dict(parse_qsl(body.decode()))
        self.calls.append(Call(method, payload, request.headers.get("Authorization", "")))
        answer: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            answer |= {"url": "https://livekit-test.slack.com/", "team": "test", "user": "livekit"}
            answer |= {"team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0BOT"}
        elif method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            answer |= {"channel": payload.get("channel"), "ts": ts, "message": {"text": payload.get("text", "")}}
        elif method == "chat.update":
            answer |= {"channel": payload.get("channel"), "ts": payload.get("ts")}
        elif method == "usergroups.users.list":
            answer |= {"users": self.group_members.get(str(payload.get("usergroup")), [])}
        elif method == "apps.connections.open":
            answer |= {"url": self.url.replace("http://", "ws://") + "/socket"}
        return web.json_response(answer)

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append({"url": str(request.url), **json.loads(await request.read())})
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        hello = {"type": "hello", "num_connections": 1, "debug_info": {"host": "standin"}}
        await ws.send_str(json.dumps(hello | {"connection_info": {"app_id": APP_ID}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        return ws

    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def send_envelope(self, envelope: dict[str, Any]) -> None:
        """Push a Socket Mode envelope to the connected app."""
        assert self._ws is not None, "no Socket Mode connection"
        asyncio.run_coroutine_threadsafe(self._ws.send_str(json.dumps(envelope)), self.loop).result(5)

    def posted(self, method: str) -> list[dict[str, Any]]:
        return [c.payload for c in self.calls if c.method == method]


@dataclass
class ModelStandIn(_Threaded):
    """Anthropic's Messages API: each request gets the next scripted answer (a list of content blocks)."""

    script: list[list[dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.requests.append(body)
        if not self.script:
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": "script ended"}}, status=500
            )
        content = self.script.pop(0)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return web.json_response(
            {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10},
            }
        )


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signature headers for `body` (https://api.slack.com/authentication/verifying-requests-from-slack)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_payload(text: str, user: str, user_name: str, channel: str, response_url: str) -> dict[str, str]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "livekit-test",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": user_name,
        "command": "/livekit",
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    }


def slash_body(*args: str) -> bytes:
    return urlencode(slash_payload(*args)).encode()


def click_payload(
    action_id: str, value: str, user: str, user_name: str, channel: str, response_url: str, message_ts: str | None
) -> dict[str, Any]:
    """A block_actions payload: from an ephemeral message (message_ts None) or a posted one."""
    container: dict[str, Any] = {"type": "message", "channel_id": channel, "is_ephemeral": message_ts is None}
    if message_ts is not None:
        container["message_ts"] = message_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "team": {"id": TEAM, "domain": "livekit-test"},
        "channel": {"id": channel, "name": "ops"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
                "text": {"type": "plain_text", "text": action_id},
            }
        ],
    }
    if message_ts is not None:
        payload["message"] = {"type": "message", "ts": message_ts, "text": "", "user": BOT_USER}
    return payload


def click_body(*args: Any) -> bytes:
    return urlencode({"payload": json.dumps(click_payload(*args))}).encode()


def event_payload(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{int(time.time() * 1000)}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }


async def until(what: str, found: Callable[[], Any], seconds: float = 30) -> Any:
    """Bounded wait for `found()` to give something truthy (another process answers in its own time)."""
    try:
        with anyio.fail_after(seconds):
            while not (value := found()):  # noqa: ASYNC110 - polling what another process sent
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {seconds:g} s") from None
    return value


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of a message's blocks, in order: what a person reads."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return "\n".join(walk(blocks))
