"""The Bolt app: Slack's requests in (Socket Mode or signed HTTP), `Commands` and `Assistant` behind them.

Every listener acknowledges first (Slack wants it within 3 s) and answers afterwards: a slash command and a
click through the response URL (their messages are ephemeral), an AI answer with chat.postMessage in the thread,
the outcome of a click on a posted message with chat.update.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from livekit_mcp.config import Settings
from livekit_mcp.limits import BodyDeadline
from livekit_mcp.service import failure_summary, listen, serve_http, started
from livekit_mcp.slack import blocks
from livekit_mcp.slack.blocks import Block
from livekit_mcp.slack.commands import Access, Commands, Person
from livekit_mcp.slack.mcp_client import LiveKitTools
from livekit_mcp.slack.settings import SlackSettings, server_environment

if TYPE_CHECKING:
    from livekit_mcp.slack.ai import Assistant

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MENTION = re.compile(r"<@[A-Z0-9]+>")


def build_app(settings: SlackSettings, tools: LiveKitTools) -> AsyncApp:
    """The Bolt app over `tools`, its Web API client pointed at LIVEKIT_MCP_SLACK_API_URL."""
    assert settings.bot_token is not None
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    # Socket Mode has no signatures to check (the WebSocket is ours); HTTP mode checks every request.
    app = AsyncApp(
        token=settings.bot_token.get_secret_value(),
        signing_secret=secret,
        request_verification_enabled=settings.mode() == "http",
    )
    # Bolt takes the base URL only with a client of our own, and then warns that the token (which it reads from
    # the environment by itself) goes unused: its own client, pointed where the settings say, says nothing.
    client: AsyncWebClient = app.client
    client.base_url = settings.api_url.rstrip("/") + "/"

    async def members(group: str) -> set[str]:
        try:
            answer = await client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            log.warning("members of user group %s unknown: %s", group, exc.response.get("error"))
            return set()
        return set(answer.get("users") or [])

    commands = Commands(tools, settings, Access(settings, members))
    assistant = _assistant(settings, commands)

    @app.command("/livekit")
    async def slash(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        person = Person(command["user_id"], command.get("user_name", ""))
        shown = await _guarded(commands.run(command.get("text", ""), person, command["channel_id"]))
        await respond(blocks=shown, text=_fallback(shown), response_type="ephemeral")

    @app.action(blocks.MORE)
    async def more(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        value = json.loads(action["value"])
        shown = await _guarded(commands.run(str(value["c"]), _clicker(body), _channel(body), int(value["o"])))
        await respond(blocks=shown, text=_fallback(shown), response_type="ephemeral", replace_original=True)

    async def clicked(body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, confirmed: bool) -> None:
        person = _clicker(body)
        try:
            shown, note = await commands.click(action["value"], confirmed, person)
        except Exception as exc:
            log.error("a click failed: %s", failure_summary(exc))
            shown, note = None, "That click failed inside the Slack app; nothing more is known. Try the command again."
        if note is not None:
            await respond(text=note, response_type="ephemeral", replace_original=False)
        if shown is None:
            return
        container = body.get("container", {})
        if container.get("is_ephemeral") or "message_ts" not in container:
            await respond(blocks=shown, text=_fallback(shown), replace_original=True)
        else:
            await client.chat_update(
                channel=container["channel_id"], ts=container["message_ts"], blocks=shown, text=_fallback(shown)
            )

    @app.action(blocks.CONFIRM)
    async def confirm(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await clicked(body, action, respond, True)

    @app.action(blocks.CANCEL)
    async def cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await clicked(body, action, respond, False)

    async def ask(event: dict[str, Any]) -> None:
        channel, thread = event["channel"], event.get("thread_ts") or event["ts"]
        person = Person(event["user"])

        async def post_buttons(shown: list[Block]) -> None:
            await client.chat_postMessage(channel=channel, thread_ts=thread, blocks=shown, text=_fallback(shown))

        if assistant is None:
            said = "The AI mode is off (no ANTHROPIC_API_KEY is set); `/livekit help` lists the commands."
        else:
            question = MENTION.sub("", event.get("text", "")).strip()
            try:
                said = await assistant.answer(question, person, channel, post_buttons)
            except Exception as exc:
                log.error("an AI answer failed: %s", failure_summary(exc))
                said = "Answering that failed inside the Slack app; `/livekit` still works."
        await client.chat_postMessage(channel=channel, thread_ts=thread, text=said)

    @app.event("app_mention")
    async def mentioned(event: dict[str, Any]) -> None:
        await ask(event)

    @app.event("message")
    async def direct(event: dict[str, Any]) -> None:
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            await ask(event)

    return app


def _assistant(settings: SlackSettings, commands: Commands) -> Assistant | None:
    """The AI mode, or None without an Anthropic key."""
    if settings.anthropic_api_key is None:
        return None
    import anthropic  # a few seconds to import: only the AI mode pays for it

    from livekit_mcp.slack.ai import Assistant

    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(), base_url=settings.anthropic_base_url, max_retries=1
    )
    return Assistant(commands, client, settings.model, settings.max_turns)


async def _guarded(work: Any) -> list[Block]:
    """A command's blocks, or one line if something failed that `LiveKitTools` did not already turn into one."""
    try:
        shown: list[Block] = await work
    except Exception as exc:
        log.error("a command failed: %s", failure_summary(exc))
        return [blocks.section(":x: That failed inside the Slack app; nothing more is known. Try again.")]
    return shown


def _clicker(body: dict[str, Any]) -> Person:
    user = body.get("user", {})
    return Person(str(user.get("id", "")), str(user.get("username") or user.get("name") or ""))


def _channel(body: dict[str, Any]) -> str:
    return str(body.get("channel", {}).get("id") or body.get("container", {}).get("channel_id") or "")


def _fallback(shown: list[Block]) -> str:
    """The notification text of a message (Slack wants one beside the blocks)."""
    for block in shown:
        text = block.get("text", {}).get("text")
        if text:
            return str(text)[:300]
    return "livekit"


SIGNATURE, TIMESTAMP = "x-slack-signature", "x-slack-request-timestamp"
MAX_SKEW = 300
"""Seconds a request's timestamp may be off: Slack's own rule (and Bolt's), against replays."""


def _refusal(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers={"connection": "close"})


class SignedHeadersFirst:
    """ASGI middleware: a request to /slack/events without Slack's signature headers, or whose timestamp is not a
    number within five minutes of now, gets 401 before its body is read (the signature itself needs the body)."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == EVENTS_PATH:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
            stamp = headers.get(TIMESTAMP, "")
            fresh = stamp.isascii() and stamp.isdigit() and abs(self.clock() - int(stamp)) <= MAX_SKEW
            if not fresh or not headers.get(SIGNATURE):
                await _refusal(401, "invalid request")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _signed_by(secret: bytes, body: bytes, timestamp: str, signature: str) -> bool:
    """Slack's v0 signature over the raw bytes (slack_sdk's verifier decodes the body as UTF-8 first, and fails on
    a body that is not)."""
    base = b"v0:" + timestamp.encode("latin-1") + b":" + body
    expected = b"v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, signature.encode("latin-1"))


def events_app(app: AsyncApp, settings: Settings, signing_secret: str) -> Starlette:
    """HTTP mode: slash commands, interactivity and events all at /slack/events, with the service's limits
    (limits.py, as /mcp and the webhook receiver): Slack's signature headers before the body is read, the body
    whole within the body deadline and the size limit, its signature checked before anything parses it, and a
    body that is not the UTF-8 JSON or form Slack sends answered 400 (the header deadline and the connection limit
    are the server's, `serve_http`)."""
    secret = signing_secret.encode()

    async def events(request: Request) -> Response:
        body = await request.body()  # whole already, and bounded: BodyDeadline read it
        if not _signed_by(secret, body, request.headers.get(TIMESTAMP, ""), request.headers.get(SIGNATURE, "")):
            return _refusal(401, "invalid request")  # what Bolt answers, before Bolt parses anything
        try:
            parsed = to_async_bolt_request(request, body)
        # Signed, yet not what Slack sends: not UTF-8, not JSON or a form, nested past the parser's depth, or of
        # another shape than the object Bolt reads its context from.
        except (UnicodeDecodeError, ValueError, RecursionError, AttributeError, TypeError, KeyError):
            return _refusal(400, "the body is not the UTF-8 JSON or form that Slack sends")
        return to_starlette_response(await app.async_dispatch(parsed))

    routes = [
        Route(EVENTS_PATH, events, methods=["POST"]),
        Route("/healthz", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]),
    ]
    starlette = Starlette(routes=routes)
    starlette.add_middleware(BodyDeadline, seconds=settings.body_timeout)
    starlette.add_middleware(SignedHeadersFirst)  # outermost: an unsigned body is never read
    return starlette


async def serve(settings: Settings, slack: SlackSettings, server_args: list[str]) -> None:
    """`livekit-mcp slack`: connect to livekit-mcp, then take Slack's requests until interrupted."""
    token = slack.mcp_token.get_secret_value() if slack.mcp_token else None
    async with LiveKitTools(
        server_args=server_args, env=server_environment(), url=slack.mcp_url, token=token, project=settings.project
    ) as tools:
        app = build_app(slack, tools)
        if slack.mode() == "socket":
            assert slack.app_token is not None
            handler = AsyncSocketModeHandler(app, slack.app_token.get_secret_value(), web_client=app.client)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            started.info("connected to Slack in Socket Mode")
            try:
                await anyio.sleep_forever()
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
        else:
            sock = listen(slack.host, slack.port)
            assert slack.signing_secret is not None  # HTTP mode: SlackSettings.check required it
            await serve_http(
                events_app(app, settings, slack.signing_secret.get_secret_value()), settings, sock, what="Slack events"
            )
