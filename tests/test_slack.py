"""`livekit-mcp slack`: the Slack app as Slack drives it, over livekit-mcp, on the sandbox and the real server.

The app runs as its own process (`livekit-mcp slack`, which starts the MCP server over stdio, or uses an HTTP
service with `--mcp-url`). Slack is `tests/slack_standin.py`: signed requests as Slack sends them, a Web API and
response URLs that record what the app sent, a Socket Mode WebSocket. The model of the AI mode is a stand-in of
Anthropic's Messages API playing scripted tool calls. Every destructive flow checks LiveKit's state afterwards
and the audit line with the clicker's id.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.types import RequestParamsMeta

from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.service import ON_BEHALF_OF_META
from livekit_mcp.slack.blocks import CANCEL, CONFIRM, MORE
from realkit.agents import RealAgentWorker
from realkit.livekit_server import RealLiveKitServer
from realkit.processes import stop

from .conftest import (
    LIVEKIT_MCP,
    LiveKitTarget,
    Served,
    identities,
    room_names,
    run_cli_here,
    stdio,
    wait_for_listening,
)
from .slack_standin import (
    ModelStandIn,
    SlackStandIn,
    click_body,
    click_payload,
    event_payload,
    signed,
    slash_body,
    slash_payload,
    texts,
    until,
)
from .test_projects import lk_file
from .test_real_tools import agent_participants, one_agent

pytestmark = pytest.mark.anyio

BOT_TOKEN = "xoxb-0000-never-shown-bot-token"
SIGNING_SECRET = "signing-secret-never-shown-0123"
APP_TOKEN = "xapp-1-never-shown-app-token"
MODEL_KEY = "sk-ant-never-shown-model-key"
SLACK_SECRETS = (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, MODEL_KEY)
ASKER, ASKER_NAME = "U0ASKER", "asker"
OTHER, OTHER_NAME = "U0OTHER", "other"
OPS = "C0OPS"
CONFIRM_TOKEN = re.compile(r"\bv\d+\.\d{6,}(?:\.[A-Za-z0-9_-]+){2,6}")
STARTUP = 90.0
"""Seconds the app and its server may take to start (the stdio server imports livekit-api and the MCP SDK)."""
MANIFEST = Path(__file__).parent.parent / "slack-manifest.json"


@pytest.fixture(scope="module")
def slack_server() -> Iterator[SlackStandIn]:
    standin = SlackStandIn(group_members={"S0APPROVERS": ["U0BOSS"]})
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def slack(slack_server: SlackStandIn) -> SlackStandIn:
    """Slack's side, with an empty record for each test. One stand-in serves the module: the app the tests share
    (`app`) keeps its URL; response URLs are never reused, so a late answer cannot land in another test's."""
    slack_server.forget()
    return slack_server


@dataclass
class SlackApp:
    """A running `livekit-mcp slack` in HTTP mode, and Slack's side of it."""

    url: str
    slack: SlackStandIn
    process: Any
    log: Path
    audit: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()] if self.audit.exists() else []

    async def post(self, body: bytes, headers: dict[str, str], content_type: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url, data=body, headers={**headers, "Content-Type": content_type}) as response,
        ):
            return response.status, await response.text()

    async def command(self, text: str, user: str = ASKER, name: str = ASKER_NAME, channel: str = OPS) -> dict[str, Any]:
        """`/livekit TEXT`, signed; the app's answer through the response URL."""
        response_url = self.slack.response_url()
        body = slash_body(text, user, name, channel, response_url)
        status, _ = await self.post(body, signed(body, SIGNING_SECRET), "application/x-www-form-urlencoded")
        assert status == 200
        return await self.answer(response_url)

    async def answer(self, response_url: str) -> dict[str, Any]:
        await until(f"an answer at {response_url}", lambda: self.responses(response_url))
        return self.responses(response_url)[-1]

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        return [r for r in self.slack.responses if r["url"] == response_url]

    async def click(
        self,
        action: str,
        value: str,
        user: str = ASKER,
        name: str = ASKER_NAME,
        message_ts: str | None = None,
        count: int = 1,
    ) -> str:
        """A click on a button, signed; the response URL it carried (answers arrive there, `count` of them)."""
        response_url = self.slack.response_url()
        body = click_body(action, value, user, name, OPS, response_url, message_ts)
        status, _ = await self.post(body, signed(body, SIGNING_SECRET), "application/x-www-form-urlencoded")
        assert status == 200
        if message_ts is None or count:
            await until("the click's answers", lambda: len(self.responses(response_url)) >= count)
        return response_url


def button(message: dict[str, Any], action_id: str) -> str:
    values = [
        element["value"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    assert values, f"no {action_id} button in {message}"
    return str(values[0])


def app_env(livekit: LiveKitTarget, slack: SlackStandIn, audit: Path, **extra: str) -> dict[str, str]:
    return livekit.env(
        LIVEKIT_MCP_CONFIRM="auto",
        LIVEKIT_MCP_AUDIT_LOG=str(audit),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        LIVEKIT_MCP_SLACK_API_URL=slack.api_url,
        **extra,
    )


def _start(slack: SlackStandIn, target: LiveKitTarget, where: Path, *flags: str, **extra: str) -> SlackApp:
    """`livekit-mcp slack` in HTTP mode on a free port, once it listens."""
    where.mkdir()
    audit = where / "audit.jsonl"
    log = where / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [LIVEKIT_MCP, "slack", "--port", "0", *flags], env=app_env(target, slack, audit, **extra), stderr=err
        )
    try:
        # The app, then the server it starts over stdio: on a loaded machine that can take a while.
        port = wait_for_listening(process, log, STARTUP)
    except AssertionError:
        stop(process)
        raise
    return SlackApp(f"http://127.0.0.1:{port}/slack/events", slack, process, log, audit)


def _no_secrets_sent(app: SlackApp, slack: SlackStandIn) -> None:
    no_secrets_in(app.stderr(), json.dumps([c.payload for c in slack.calls]), json.dumps(slack.responses))


@pytest.fixture
def start_app(slack: SlackStandIn, livekit: LiveKitTarget, tmp_path: Path) -> Iterator[Callable[..., SlackApp]]:
    """Start `livekit-mcp slack` with these flags and settings; stopped (and checked for secrets) at the end."""
    started: list[SlackApp] = []

    def start(*flags: str, target: LiveKitTarget | None = None, **extra: str) -> SlackApp:
        started.append(_start(slack, target or livekit, tmp_path / f"app{len(started)}", *flags, **extra))
        return started[-1]

    yield start
    for app in started:
        stop(app.process)
        _no_secrets_sent(app, slack)


@pytest.fixture(scope="module")
def default_app(
    slack_server: SlackStandIn, livekit: LiveKitTarget, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlackApp]:
    app = _start(slack_server, livekit, tmp_path_factory.mktemp("slack") / "app")
    yield app
    stop(app.process)
    no_secrets_in(app.stderr())


@pytest.fixture
def app(default_app: SlackApp, slack: SlackStandIn) -> Iterator[SlackApp]:
    """The app in its default settings, shared by the tests that only drive it (each start costs ~2 s): not for a
    test that needs a fresh app (Slack not yet met), other settings, or that stops its server."""
    assert default_app.process.poll() is None, default_app.stderr()
    yield default_app
    _no_secrets_sent(default_app, slack)


def no_secrets_in(*outputs: str) -> None:
    """No Slack or model token, and no confirm token, in the app's logs or in anything it sent to Slack."""
    for output in outputs:
        for secret in SLACK_SECRETS:
            assert secret not in output
        assert not CONFIRM_TOKEN.search(output), CONFIRM_TOKEN.search(output)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# --- Commands ----------------------------------------------------------------------------------------


async def test_rooms_and_who_are_ephemeral_block_kit_paged_with_a_more_button(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin
) -> None:
    for n in range(3):
        await admin.join(f"room-{n}", "someone")
    for n in range(3):
        await admin.join("room-0", f"guest-{n}", name=f"Guest {n}")
    app = start_app(LIVEKIT_MCP_SLACK_PAGE_SIZE="2")

    first = await app.command("rooms")
    assert first["response_type"] == "ephemeral"
    assert "*3 room(s)*" in texts(first["blocks"])
    fields = [f["text"] for b in first["blocks"] if "fields" in b for f in b["fields"]]
    assert fields == ["*room-0*\n4 participant(s)", "*room-1*\n1 participant(s)"]
    assert "1–2 of 3" in texts(first["blocks"])

    response_url = await app.click(MORE, button(first, MORE))
    (second,) = app.responses(response_url)
    assert second["replace_original"] is True
    fields = [f["text"] for b in second["blocks"] if "fields" in b for f in b["fields"]]
    assert fields == ["*room-2*\n1 participant(s)"]
    assert not [b for b in second["blocks"] if b["type"] == "actions"]  # the last page: no "more"

    who = await app.command("who room-0")
    shown = texts(who["blocks"])
    assert "4 participant(s) in room-0" in shown
    assert "*guest-0* (Guest 0)\nSTANDARD · ACTIVE" in shown


async def test_unknown_or_incomplete_commands_get_the_help(app: SlackApp) -> None:
    unknown = texts((await app.command("reboot everything"))["blocks"])
    assert "`reboot` is not a `/livekit` command." in unknown
    assert "`remove-agent ROOM`" in unknown
    incomplete = texts((await app.command("remove support"))["blocks"])
    assert "Usage: `/livekit remove ROOM IDENTITY`" in incomplete
    assert "`/livekit` commands" in texts((await app.command(""))["blocks"])


async def test_unsigned_stale_and_forged_requests_are_refused_before_anything_runs(
    start_app: Callable[..., SlackApp], slack: SlackStandIn
) -> None:
    app = start_app()
    body = slash_body("rooms", ASKER, ASKER_NAME, OPS, slack.response_url())
    form = "application/x-www-form-urlencoded"
    stale = signed(body, SIGNING_SECRET, timestamp=int(time.time()) - 600)
    forged = signed(body, "another-signing-secret-0000000")
    tampered_body = slash_body("close everything", ASKER, ASKER_NAME, OPS, slack.response_url())
    for headers, sent in [({}, body), (stale, body), (forged, body), (signed(body, SIGNING_SECRET), tampered_body)]:
        status, _ = await app.post(sent, headers, form)
        assert status == 401
    assert slack.responses == []
    assert [c.method for c in slack.calls] == []  # not even auth.test: refused before authorization


async def test_slacks_url_verification_is_answered_with_its_challenge(app: SlackApp) -> None:
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    ).encode()
    status, text = await app.post(body, signed(body, SIGNING_SECRET), "application/json")
    assert status == 200
    assert json.loads(text) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_livekit_and_mcp_failures_are_one_readable_line(
    app: SlackApp, start_app: Callable[..., SlackApp], admin: SandboxAdmin, tmp_path: Path
) -> None:
    missing = texts((await app.command("who no-such-room"))["blocks"])
    assert missing.startswith(":x: room 'no-such-room' does not exist")
    assert "\n" not in missing
    assert "Traceback" not in missing

    await admin.join("room-x", "someone")
    await admin.fault("RoomService/ListParticipants", error=("unavailable", "node overloaded"))
    down = texts((await app.command("who room-x"))["blocks"])
    assert down.startswith(":x: ")
    assert "\n" not in down
    assert "Traceback" not in down

    nowhere = start_app("--mcp-url", "http://127.0.0.1:9/mcp")  # discard port: nothing listens
    unreachable = texts((await nowhere.command("rooms"))["blocks"])
    assert unreachable == ":x: livekit-mcp could not be reached for list_rooms (connection failed)"
    assert "Traceback" not in nowhere.stderr()


# --- Confirmation as buttons -----------------------------------------------------------------------------


async def test_remove_is_confirmed_by_the_asker_alone_and_the_audit_line_names_the_clicker(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer", name="Dana")
    await admin.join("support", "caller", kind="SIP")
    app = start_app("--log-level", "DEBUG")  # the most the logs ever say: still no token of any kind

    asked = await app.command("remove support customer")
    shown = texts(asked["blocks"])
    assert asked["response_type"] == "ephemeral"
    assert "Confirmation required." in shown
    assert "'customer'" in shown
    assert re.search(r"expires at <!date\^\d+\^\{time_secs\}\|\d+>", shown)
    assert "confirm_token" not in shown
    value = button(asked, CONFIRM)

    refused_url = await app.click(CONFIRM, value, user=OTHER, name=OTHER_NAME)
    (refused,) = app.responses(refused_url)
    assert refused["text"] == f"Only <@{ASKER}> or an approver may answer this request."
    assert refused.get("replace_original") is False
    assert "customer" in await identities(lkapi, "support")

    done_url = await app.click(CONFIRM, value)
    (done,) = app.responses(done_url)
    assert done["replace_original"] is True
    assert f":white_check_mark: Done, confirmed by <@{ASKER}>." in texts(done["blocks"])
    assert await identities(lkapi, "support") == {"caller"}

    again_url = await app.click(CONFIRM, value)
    assert "no longer open" in app.responses(again_url)[0]["text"]

    preview, attempted, finished = [line for line in app.audit_lines() if line["tool"] == "remove_participant"]
    assert preview["outcome"] == "confirmation_required"
    assert preview["on_behalf_of"] == f"slack:{ASKER} ({ASKER_NAME})"
    assert (attempted["outcome"], finished["outcome"]) == ("attempted", "done")
    assert finished["on_behalf_of"] == f"slack:{ASKER} ({ASKER_NAME})"
    assert finished["principal"].endswith("(stdio)")
    assert finished["arguments"]["confirm_token"] == "(given)"

    history = texts((await app.command("history support"))["blocks"])
    assert f"for slack:{ASKER} ({ASKER_NAME}) ran remove_participant on 'customer'" in history


async def test_an_approver_may_confirm_and_cancel_changes_nothing(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin, lkapi: api.LiveKitAPI, slack: SlackStandIn
) -> None:
    await admin.join("support", "customer")
    await admin.join("sales", "lead")
    app = start_app(LIVEKIT_MCP_SLACK_APPROVERS="S0APPROVERS")

    asked = await app.command("remove support customer")
    done_url = await app.click(CONFIRM, button(asked, CONFIRM), user="U0BOSS", name="boss")
    assert "Done, confirmed by <@U0BOSS>." in texts(app.responses(done_url)[0]["blocks"])
    assert "customer" not in await identities(lkapi, "support")
    assert slack.posted("usergroups.users.list")[0]["usergroup"] == "S0APPROVERS"
    (finished,) = [line for line in app.audit_lines() if line["tool"] == "remove_participant"][-1:]
    assert finished["on_behalf_of"] == "slack:U0BOSS (boss)"

    other = await app.command("remove sales lead")
    cancelled_url = await app.click(CANCEL, button(other, CANCEL))
    assert f"Cancelled by <@{ASKER}>: nothing was changed." in texts(app.responses(cancelled_url)[0]["blocks"])
    assert "lead" in await identities(lkapi, "sales")


async def test_a_click_after_the_room_changed_says_so_and_deletes_nothing(
    app: SlackApp, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("standup", "alice")
    asked = await app.command("close standup")
    assert "1 participant" in texts(asked["blocks"]) or "alice" in texts(asked["blocks"])
    await admin.join("standup", "bob")  # someone joined between the question and the click

    url = await app.click(CONFIRM, button(asked, CONFIRM))
    shown = texts(app.responses(url)[0]["blocks"])
    assert shown.startswith(":x: Not done: ")
    assert "the target changed since it was issued" in shown
    assert "standup" in await room_names(lkapi)
    assert await identities(lkapi, "standup") == {"alice", "bob"}


async def test_a_click_after_expiry_says_so_and_does_nothing(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    app = start_app(LIVEKIT_MCP_CONFIRM_TTL="1")
    asked = await app.command("remove support customer")
    expires = int(re.findall(r"<!date\^(\d+)\^", texts(asked["blocks"]))[0])
    await until("the request expired", lambda: time.time() > expires + 1)

    url = await app.click(CONFIRM, button(asked, CONFIRM))
    shown = texts(app.responses(url)[0]["blocks"])
    assert shown.startswith(f"Expired before <@{ASKER}> confirmed it: nothing was changed.")
    assert "customer" in await identities(lkapi, "support")
    assert [line["outcome"] for line in app.audit_lines()] == ["confirmation_required"]


async def test_read_only_channels_and_readers_cannot_change_anything(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    app = start_app(LIVEKIT_MCP_SLACK_CHANGE_CHANNELS=OPS, LIVEKIT_MCP_SLACK_WRITERS=ASKER)
    elsewhere = texts((await app.command("remove support customer", channel="C0RANDOM"))["blocks"])
    assert elsewhere.startswith("Not done: This channel is read-only for `/livekit`")
    reader = texts((await app.command("close support", user=OTHER, name=OTHER_NAME))["blocks"])
    assert reader.startswith("Not done: You have the read role")
    assert "1 participant(s) in support" in texts(
        (await app.command("who support", user=OTHER, name=OTHER_NAME, channel="C0RANDOM"))["blocks"]
    )
    assert "customer" in await identities(lkapi, "support")
    assert app.audit_lines() == []  # refused before the server was asked anything


async def test_a_running_http_service_gets_the_person_as_x_on_behalf_of(
    start_app: Callable[..., SlackApp],
    serve_http: Callable[..., Served],
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
) -> None:
    await admin.join("support", "customer")
    service_audit = tmp_path / "service-audit.jsonl"
    token = "slack-bot-token-0123456789abcdef"
    service = serve_http(
        env=livekit.env(
            LIVEKIT_MCP_CONFIRM="auto",
            LIVEKIT_MCP_AUDIT_LOG=str(service_audit),
            LIVEKIT_MCP_AUTH_TOKENS=f"slack-bot:write:{token}",
        )
    )
    app = start_app("--mcp-url", service.url, LIVEKIT_MCP_SLACK_MCP_TOKEN=token)
    asked = await app.command("remove support customer")
    url = await app.click(CONFIRM, button(asked, CONFIRM))
    assert "Done" in texts(app.responses(url)[0]["blocks"])
    assert "customer" not in await identities(lkapi, "support")
    finished = [json.loads(line) for line in service_audit.read_text().splitlines()][-1]
    assert (finished["principal"], finished["outcome"]) == ("slack-bot", "done")
    assert finished["on_behalf_of"] == f"slack:{ASKER} ({ASKER_NAME})"
    assert token not in app.stderr()


# --- Socket Mode -------------------------------------------------------------------------------------------


async def test_socket_mode_acks_each_envelope_and_answers_through_the_response_url(
    slack: SlackStandIn, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, tmp_path: Path
) -> None:
    await admin.join("support", "customer")
    env = app_env(livekit, slack, tmp_path / "audit.jsonl", SLACK_APP_TOKEN=APP_TOKEN)
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs none
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen([LIVEKIT_MCP, "slack"], env=env, stderr=err)  # noqa: ASYNC220 - starts at once
    try:
        await until("the app connects over Socket Mode", slack.connected, STARTUP)
        opened = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert opened[0].authorization == f"Bearer {APP_TOKEN}"  # the app-level token, not the bot's
        response_url = slack.response_url()
        slack.send_envelope(
            {
                "envelope_id": "e-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": slash_payload("who support", ASKER, ASKER_NAME, OPS, response_url),
            }
        )
        await until("the envelope is acked", lambda: [a for a in slack.acks if a.get("envelope_id") == "e-1"])
        answer = await until("the answer", lambda: [r for r in slack.responses if r["url"] == response_url])
        assert "*customer*" in texts(answer[0]["blocks"])

        async def envelope(envelope_id: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
            """An envelope as Slack pushes it; the answer at the payload's response URL, once acked."""
            slack.send_envelope({"envelope_id": envelope_id, "type": kind, "payload": payload})
            await until(f"{envelope_id} is acked", lambda: [a for a in slack.acks if a["envelope_id"] == envelope_id])
            url = payload["response_url"]
            found = await until("the answer", lambda: [r for r in slack.responses if r["url"] == url])
            return dict(found[-1])

        asked = await envelope(
            "e-2",
            "slash_commands",
            slash_payload("remove support customer", ASKER, ASKER_NAME, OPS, slack.response_url()),
        )
        click = click_payload(CONFIRM, button(asked, CONFIRM), ASKER, ASKER_NAME, OPS, slack.response_url(), None)
        done = await envelope("e-3", "interactive", click)
        assert f"Done, confirmed by <@{ASKER}>." in texts(done["blocks"])
        assert "customer" not in await identities(lkapi, "support")
    finally:
        stop(process)
    no_secrets_in(log.read_text(errors="replace"))


# --- The AI mode -------------------------------------------------------------------------------------------


@pytest.fixture
def model() -> Iterator[ModelStandIn]:
    standin = ModelStandIn()
    standin.start()
    yield standin
    standin.stop()


async def mention(app: SlackApp, text: str, user: str = ASKER) -> None:
    body = json.dumps(
        event_payload({"type": "app_mention", "user": user, "text": text, "ts": "1700000000.000100", "channel": OPS})
    ).encode()
    status, _ = await app.post(body, signed(body, SIGNING_SECRET), "application/json")
    assert status == 200


async def test_the_ai_mode_uses_the_tools_and_turns_a_destructive_step_into_buttons(
    start_app: Callable[..., SlackApp],
    model: ModelStandIn,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    slack: SlackStandIn,
) -> None:
    await admin.join("support-call-1042", "customer")
    agent = await admin.join_agent("support-call-1042", "support-agent")
    model.script = [
        [{"type": "tool_use", "id": "tu_1", "name": "find_agent", "input": {"room": "support-call-1042"}}],
        [
            {"type": "text", "text": "I'll take it out."},
            {
                "type": "tool_use",
                "id": "tu_2",
                "name": "remove_agent",
                "input": {"room": "support-call-1042", "confirm_token": "v2.9999999999.a.b.c.d"},
            },
        ],
        [{"type": "text", "text": "I asked you to confirm removing support-agent."}],
    ]
    app = start_app(ANTHROPIC_API_KEY=MODEL_KEY, ANTHROPIC_BASE_URL=model.url)
    await mention(app, "<@U0BOT> take the agent out of support-call-1042")

    said = await until("the model's answer", lambda: [p for p in slack.posted("chat.postMessage") if "blocks" not in p])
    assert said[0]["text"] == "I asked you to confirm removing support-agent."
    assert said[0]["thread_ts"] == "1700000000.000100"
    first = model.requests[0]
    assert first["messages"][0]["content"] == "take the agent out of support-call-1042"
    offered = {t["name"]: t for t in first["tools"]}
    assert "remove_agent" in offered
    assert "confirm_token" not in offered["remove_agent"]["input_schema"]["properties"]
    results = [
        c for m in model.requests[-1]["messages"] if m["role"] == "user" for c in m["content"] if isinstance(c, dict)
    ]
    no_secrets_in(json.dumps(results), json.dumps(first["tools"]))  # the model never sees a confirm token
    assert agent["identity"] in results[0]["content"]
    assert "a person was shown Confirm / Cancel buttons" in results[1]["content"]
    assert agent["identity"] in await identities(lkapi, "support-call-1042")  # nothing done by the model

    (buttons,) = [p for p in slack.posted("chat.postMessage") if "blocks" in p]
    assert buttons["thread_ts"] == "1700000000.000100"
    blocks = json.loads(buttons["blocks"]) if isinstance(buttons["blocks"], str) else buttons["blocks"]
    value = button({"blocks": blocks}, CONFIRM)
    await app.click(CONFIRM, value, message_ts="1700000001.000200", count=0)
    (update,) = await until("the message is updated", lambda: slack.posted("chat.update"))
    assert (update["ts"], update["channel"]) == ("1700000001.000200", OPS)
    assert f"Done, confirmed by <@{ASKER}>." in texts(
        update["blocks"] if isinstance(update["blocks"], list) else json.loads(update["blocks"])
    )
    assert await identities(lkapi, "support-call-1042") == {"customer"}
    preview, *_, finished = [line for line in app.audit_lines() if line["tool"] == "remove_agent"]
    assert "confirm_token" not in preview["arguments"]  # the token the model made up was never sent
    assert (finished["outcome"], finished["on_behalf_of"]) == ("done", f"slack:{ASKER} ({ASKER_NAME})")


async def test_the_ai_mode_is_off_without_a_key_in_mentions_and_dms(app: SlackApp, slack: SlackStandIn) -> None:
    await mention(app, "<@U0BOT> who is in support?")
    (said,) = await until("the answer", lambda: slack.posted("chat.postMessage"))
    assert said["text"].startswith("The AI mode is off")
    assert (said["channel"], said["thread_ts"]) == (OPS, "1700000000.000100")

    dm = {"type": "message", "channel_type": "im", "user": ASKER, "text": "hi", "ts": "1700000002.000300"}
    dm["channel"] = "D0DIRECT"
    body = json.dumps(event_payload(dm)).encode()
    assert (await app.post(body, signed(body, SIGNING_SECRET), "application/json"))[0] == 200
    answers = await until("the DM's answer", lambda: slack.posted("chat.postMessage")[1:])
    assert (answers[0]["channel"], answers[0]["thread_ts"]) == ("D0DIRECT", "1700000002.000300")


# --- The real server ---------------------------------------------------------------------------------------


async def test_remove_agent_confirmed_in_slack_takes_a_real_agent_out_of_a_real_room(
    start_app: Callable[..., SlackApp],
    real_target: LiveKitTarget,
    real_livekit: RealLiveKitServer,
    real_lkapi: api.LiveKitAPI,
    real_people: Any,
    agent_worker: Callable[[str], RealAgentWorker],
) -> None:
    agent_name = "slack-helper"
    agent_worker(agent_name)
    room = unique("slack")
    await real_people.join(room, "customer")
    await real_lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room=room, agent_name=agent_name))

    identity = await one_agent(real_lkapi, room, agent_name)
    app = start_app(target=real_target)
    try:
        asked = await app.command(f"remove-agent {room}")
        assert identity in texts(asked["blocks"])
        url = await app.click(CONFIRM, button(asked, CONFIRM))
        assert "Done, confirmed by" in texts(app.responses(url)[0]["blocks"])
        assert await agent_participants(real_lkapi, room, agent_name) == []
        dispatches = await real_lkapi.agent_dispatch.list_dispatch(room)
        assert [d for d in dispatches if d.agent_name == agent_name] == []
        finished = [line for line in app.audit_lines() if line["tool"] == "remove_agent"][-1]
        assert (finished["outcome"], finished["on_behalf_of"]) == ("done", f"slack:{ASKER} ({ASKER_NAME})")
    finally:
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


# --- The app's setup ---------------------------------------------------------------------------------------


def test_the_manifest_asks_for_the_scopes_it_needs_and_nothing_more() -> None:
    manifest = json.loads(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
        "usergroups:read",
    ]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/livekit"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == ["app_mention", "message.im"]
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_without_a_bot_token_or_signing_secret_it_says_which_and_stops(livekit: LiveKitTarget) -> None:
    no_token = run_cli_here("slack", env=livekit.env())
    assert no_token.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in no_token.stderr
    no_secret = run_cli_here("slack", env=livekit.env(SLACK_BOT_TOKEN=BOT_TOKEN))
    assert no_secret.returncode == 2
    assert "HTTP mode needs SLACK_SIGNING_SECRET" in no_secret.stderr
    assert BOT_TOKEN not in no_secret.stderr + no_secret.stdout


async def test_the_acknowledgement_comes_at_once_and_slow_work_answers_later(
    app: SlackApp, admin: SandboxAdmin, slack: SlackStandIn
) -> None:
    await admin.join("support", "customer")
    await app.command("rooms")  # the app has met Slack (auth.test) and the server has answered once
    await admin.fault("RoomService/ListRooms", latency_ms=5000, times=1)  # beyond Slack's 3 s
    response_url = slack.response_url()
    body = slash_body("rooms", ASKER, ASKER_NAME, OPS, response_url)
    status, text = await app.post(body, signed(body, SIGNING_SECRET), "application/x-www-form-urlencoded")
    assert (status, text) == (200, "")
    assert app.responses(response_url) == []  # acknowledged while LiveKit was still answering
    assert "*support*" in texts((await app.answer(response_url))["blocks"])


async def test_the_readme_path_on_the_built_in_sandbox_ends_in_a_confirmed_remove_agent(
    start_app: Callable[..., SlackApp],
) -> None:
    app = start_app("--sandbox")  # the server it starts runs the sandbox, with its demo rooms
    found = texts((await app.command("agent support-call-1042"))["blocks"])
    assert "*1 agent(s)*" in found
    assert "support-agent" in found
    asked = await app.command("remove-agent support-call-1042")
    url = await app.click(CONFIRM, button(asked, CONFIRM))
    assert f"Done, confirmed by <@{ASKER}>." in texts(app.responses(url)[0]["blocks"])
    assert "*0 agent(s)*" in texts((await app.command("agent support-call-1042"))["blocks"])
    assert [line["outcome"] for line in app.audit_lines() if line["tool"] == "remove_agent"][-1] == "done"


async def test_a_stdio_server_records_the_person_of_the_requests_meta_on_one_line(
    livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    """The way the Slack app names the person to a stdio server (which has no headers): `_meta`, bounded and
    printable as the header is."""
    await admin.join("support", "customer")
    audit = tmp_path / "audit.jsonl"
    env = livekit.env(LIVEKIT_MCP_AUDIT_LOG=str(audit))
    async with Client(stdio(env)) as client:
        meta = cast(RequestParamsMeta, {ON_BEHALF_OF_META: 'slack:U1 (ann)\n{"principal": "admin"}'})
        result = await client.call_tool("remove_participant", {"room": "support", "identity": "customer"}, meta=meta)
        assert not result.is_error
        plain = await client.call_tool("update_room_metadata", {"room": "support", "metadata": "x"})
        assert not plain.is_error
    done, unnamed = [line for line in map(json.loads, audit.read_text().splitlines()) if line["outcome"] == "done"]
    assert done["on_behalf_of"] == 'slack:U1 (ann)?{"principal": "admin"}'
    assert done["principal"].endswith("(stdio)")
    assert "on_behalf_of" not in unnamed


def stdio_server_of(pid: int) -> int:
    """The process id of the livekit-mcp server the app `pid` started over stdio (from /proc: Linux only)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    (server,) = [int(child) for child in children if b"livekit_mcp" in Path(f"/proc/{child}/cmdline").read_bytes()]
    return server


async def test_a_lost_stdio_server_is_one_line_and_started_again(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin
) -> None:
    await admin.join("support", "customer")
    app = start_app()
    assert "*support*" in texts((await app.command("rooms"))["blocks"])
    os.kill(stdio_server_of(app.process.pid), signal.SIGKILL)

    lost = ":x: livekit-mcp stopped while asked for list_rooms; it is starting again: try again"
    first = texts((await app.command("rooms"))["blocks"])
    assert first == lost or "*support*" in first  # the new server may already be up
    answers: list[str] = []

    async def answered() -> bool:
        answers.append(texts((await app.command("rooms"))["blocks"]))
        return "*support*" in answers[-1]

    with anyio.fail_after(STARTUP):
        while not await answered():  # noqa: ASYNC110 - another process starts its server in its own time
            await anyio.sleep(0.2)
    assert set(answers[:-1]) <= {lost}
    assert "the livekit-mcp server was lost; starting it again" in app.stderr()
    assert "Traceback" not in app.stderr()


async def test_the_ai_mode_offers_no_change_in_a_read_only_channel_and_a_model_failure_is_one_line(
    start_app: Callable[..., SlackApp],
    model: ModelStandIn,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    slack: SlackStandIn,
) -> None:
    await admin.join("support", "customer")
    model.script = [
        [
            {
                "type": "tool_use",
                "id": "tu_1",
                "name": "remove_participant",
                "input": {"room": "support", "identity": "customer"},
            }
        ],
        [{"type": "text", "text": "I cannot do that here."}],
    ]
    app = start_app(
        ANTHROPIC_API_KEY=MODEL_KEY, ANTHROPIC_BASE_URL=model.url, LIVEKIT_MCP_SLACK_CHANGE_CHANNELS="C0ELSE"
    )
    await mention(app, "<@U0BOT> kick the customer out of support")
    (said,) = await until("the answer", lambda: slack.posted("chat.postMessage"))
    assert said["text"] == "I cannot do that here."
    offered = {t["name"] for t in model.requests[0]["tools"]}
    assert "list_participants" in offered
    assert not offered & {"remove_participant", "delete_room", "remove_agent", "update_room_metadata"}
    (result,) = [
        c for m in model.requests[-1]["messages"] if m["role"] == "user" for c in m["content"] if isinstance(c, dict)
    ]
    assert (result["content"], result["is_error"]) == (
        "remove_participant is not available to this person in this channel.",
        True,
    )
    assert "customer" in await identities(lkapi, "support")

    # The script has ended: the stand-in answers 500, as the API does when it fails.
    await mention(app, "<@U0BOT> and now?")
    failed = await until("the second answer", lambda: slack.posted("chat.postMessage")[1:])
    assert failed[0]["text"] == "The model could not answer (InternalServerError); `/livekit help` works without it."
    assert "Traceback" not in app.stderr()


async def test_the_project_flag_reaches_the_server_so_the_bot_operates_that_project_alone(
    start_app: Callable[..., SlackApp], admin: SandboxAdmin, livekit: LiveKitTarget, tmp_path: Path
) -> None:
    """`slack --project prod` with the LIVEKIT_* variables of another deployment set (issue 22, finding 3): the
    server it starts acts on prod, with prod's key, and every call names prod."""
    await admin.join("prod-room", "someone")
    elsewhere = LiveKitTarget("http://127.0.0.1:9", "APIelsewhere", "secret-of-another-deployment-0123456789")
    home = tmp_path / "home"
    home.mkdir()
    lk_file(home, {"prod": livekit, "other": elsewhere}, default="other")
    app = start_app("--project", "prod", target=elsewhere, HOME=str(home))
    shown = texts((await app.command("rooms"))["blocks"])
    assert "*prod-room*" in shown, shown
    asked = await app.command("close prod-room")
    assert "prod" in texts(asked["blocks"])  # the question names the project it would act on
    (preview,) = [line for line in app.audit_lines() if line["tool"] == "delete_room"]
    assert preview["project"] == "prod"
