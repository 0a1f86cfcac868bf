"""The Slack app's guards built in this process (issue 22, findings 4, 6 and 10): the server is built from its
settings and reached in memory (`LiveKitTools(server=…)`), the sandbox is the session's, the model is the
Anthropic stand-in on a loopback socket, and the Slack endpoint's limits are tested over a real socket.

- Finding 10: the role is asked of Slack afresh when something is about to change; the cache serves the rest.
- Finding 6: the model never reads a join token or a stream key, and the person is told where to get them.
- Finding 4: /slack/events has the service's limits, checked before anything is parsed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
import anyio
import pytest
from livekit import api
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE

from livekit_mcp.config import Settings
from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.service import http_server, listen
from livekit_mcp.slack.ai import JWT, Assistant, tool_definitions
from livekit_mcp.slack.app import build_app, events_app
from livekit_mcp.slack.blocks import CONFIRM, Block
from livekit_mcp.slack.commands import Access, Commands, Person
from livekit_mcp.slack.mcp_client import LiveKitTools
from livekit_mcp.slack.settings import SlackSettings
from tests.conftest import InProcess, LiveKitTarget, identities
from tests.slack_standin import ModelStandIn, signed, texts

pytestmark = pytest.mark.anyio

OPS = "C0OPS"
ASKER = Person("U0ASKER", "asker")
BOSS = Person("U0BOSS", "boss")
WRITERS, APPROVERS = "S0WRITERS", "S0APPROVERS"


@dataclass
class Groups:
    """Slack's user groups as usergroups.users.list answers them, and how often it was asked."""

    members: dict[str, set[str]] = field(default_factory=dict)
    asked: int = 0

    async def __call__(self, group: str) -> set[str]:
        self.asked += 1
        return set(self.members.get(group, set()))


@dataclass
class Bot:
    commands: Commands
    groups: Groups


@asynccontextmanager
async def bot(in_process: InProcess, livekit: LiveKitTarget, **slack: Any) -> AsyncIterator[Bot]:
    """`/livekit`'s commands over a server built in this process (confirmation by token, as over stdio)."""
    server = in_process(env=livekit.env(LIVEKIT_MCP_CONFIRM="auto"), toolsets="rooms,participants,tokens,ingress")
    groups = Groups({WRITERS: {ASKER.user_id}, APPROVERS: {BOSS.user_id}})
    settings = SlackSettings(bot_token="xoxb-test", writers=[WRITERS], approvers=[APPROVERS], **slack)
    async with LiveKitTools(server=server) as tools:
        yield Bot(Commands(tools, settings, Access(settings, groups)), groups)


def pending_key(shown: list[Block]) -> str:
    (value,) = [e["value"] for b in shown if b["type"] == "actions" for e in b["elements"] if e["action_id"] == CONFIRM]
    return str(value)


# --- Finding 10: a writer taken out of the group -----------------------------------------------------------


async def test_a_writer_who_lost_the_role_cannot_confirm_their_own_request_even_within_the_cache(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    async with bot(in_process, livekit) as b:
        key = pending_key(await b.commands.run("remove support customer", ASKER, OPS))
        b.groups.members[WRITERS] = set()  # taken out of the writers' group, seconds later
        shown, note = await b.commands.click(key, True, ASKER)
        assert shown is None
        assert note == (
            "Not done: You have the read role for LiveKit here: ask someone with the write role. "
            "(you may still cancel it)."
        )
        assert "customer" in await identities(lkapi, "support")
        cancelled, _ = await b.commands.click(key, False, ASKER)  # cancelling changes nothing: still theirs
        assert cancelled is not None
        assert "Cancelled by <@U0ASKER>" in texts(cancelled)
    assert "customer" in await identities(lkapi, "support")


async def test_an_approver_still_confirms_and_a_removed_approver_no_longer_can(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    async with bot(in_process, livekit) as b:
        key = pending_key(await b.commands.run("remove support customer", ASKER, OPS))
        b.groups.members[APPROVERS] = set()
        shown, note = await b.commands.click(key, True, BOSS)
        assert (shown, note) == (None, "Only <@U0ASKER> or an approver may answer this request.")
        assert "customer" in await identities(lkapi, "support")
        b.groups.members[APPROVERS] = {BOSS.user_id}
        shown, note = await b.commands.click(key, True, BOSS)
        assert note is None
        assert shown is not None
        assert "Done, confirmed by <@U0BOSS>" in texts(shown)
    assert "customer" not in await identities(lkapi, "support")


async def test_the_cache_serves_only_what_changes_nothing(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    await admin.join("support", "customer")
    await admin.join("sales", "lead")
    async with bot(in_process, livekit) as b:
        await b.commands.run("remove support customer", ASKER, OPS)
        asked = b.groups.asked
        await b.commands.run("remove sales lead", ASKER, OPS)  # a question shown: the cached role
        assert b.groups.asked == asked


# --- The model ---------------------------------------------------------------------------------------------


@pytest.fixture
def model() -> Iterator[ModelStandIn]:
    standin = ModelStandIn()
    standin.start()
    yield standin
    standin.stop()


@asynccontextmanager
async def assistant(b: Bot, model: ModelStandIn) -> AsyncIterator[Assistant]:
    async with anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=model.url, max_retries=0) as client:
        yield Assistant(b.commands, client, "claude-test", max_turns=4)


def tool_results(model: ModelStandIn) -> list[dict[str, Any]]:
    """The tool results the model was sent, in the last request (which carries the whole conversation)."""
    return [
        c for m in model.requests[-1]["messages"] if m["role"] == "user" for c in m["content"] if isinstance(c, dict)
    ]


async def no_buttons(_: list[Block]) -> None:
    raise AssertionError("no destructive step was expected")


async def test_a_change_the_model_makes_asks_slack_for_the_role_afresh(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, model: ModelStandIn
) -> None:
    await admin.join("support", "customer")
    change = {"room": "support", "metadata": "changed by someone without the role"}
    model.script = [
        [{"type": "tool_use", "id": "tu_1", "name": "update_room_metadata", "input": change}],
        [{"type": "text", "text": "ok"}],
    ]
    async with bot(in_process, livekit) as b:
        await b.commands.run("remove support customer", ASKER, OPS)  # the writers' group is in the cache
        b.groups.members[WRITERS] = set()
        async with assistant(b, model) as ai:
            assert await ai.answer("change it", ASKER, OPS, no_buttons) == "ok"
    offered = {t["name"] for t in model.requests[0]["tools"]}
    assert "update_room_metadata" in offered  # offered by the cached role: a question, nothing changed
    (result,) = tool_results(model)
    assert result["is_error"] is True
    assert "read role" in result["content"]
    (room,) = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["support"]))).rooms
    assert room.metadata != change["metadata"]


# --- Finding 6: secrets never reach the model ----------------------------------------------------------------


async def test_join_tokens_and_stream_keys_are_withheld_from_the_model_and_the_person_told_where_to_get_them(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, model: ModelStandIn
) -> None:
    await admin.join("support", "customer")
    model.script = [
        [
            {
                "type": "tool_use",
                "id": "tu_1",
                "name": "create_join_token",
                "input": {"room": "support", "identity": "viewer-1"},
            },
            {
                "type": "tool_use",
                "id": "tu_2",
                "name": "create_ingress",
                "input": {"input_type": "RTMP", "room": "support", "participant_identity": "streamer"},
            },
        ],
        [{"type": "text", "text": "Made both."}],
    ]
    async with bot(in_process, livekit) as b, assistant(b, model) as ai:
        said = await ai.answer("a token for viewer-1 and an RTMP ingress into support", ASKER, OPS, no_buttons)
    (made,) = list((await lkapi.ingress.list_ingress(api.ListIngressRequest(room_name="support"))).items)
    assert made.participant_identity == "streamer"  # it was made, by the model's call
    assert len(made.stream_key) >= 8
    sent = json.dumps(model.requests)
    assert made.stream_key not in sent
    assert not JWT.search(sent), JWT.search(sent)
    token_result, ingress_result = tool_results(model)
    assert not token_result["is_error"]
    assert not ingress_result["is_error"]
    assert "withheld from the model" in token_result["content"]
    assert made.ingress_id in ingress_result["content"]  # the rest of the answer is the model's to read
    assert made.stream_key not in said
    assert not JWT.search(said)
    assert said.startswith("Made both.")
    assert "`lk token create --join --room support --identity viewer-1`" in said
    assert f"The stream key of ingress {made.ingress_id} is not shown here or to the model: `lk ingress list`" in said


async def test_a_bot_with_one_project_offers_the_model_no_project_argument(
    in_process: InProcess, livekit: LiveKitTarget
) -> None:
    async with bot(in_process, livekit) as b:
        listed = await b.commands.tools.tools("slack:U0ASKER")
    free = tool_definitions(listed, may_change=True)
    pinned = tool_definitions(listed, may_change=True, pinned=True)
    assert "list_projects" in {d["name"] for d in free}
    assert "project" in {p for d in free for p in d["input_schema"]["properties"]}
    assert {d["name"] for d in pinned} == {d["name"] for d in free} - {"list_projects"}
    assert "project" not in {p for d in pinned for p in d["input_schema"]["properties"]}


# --- Finding 4: /slack/events has the service's limits -----------------------------------------------------------

SIGNING_SECRET = "signing-secret-never-shown-0123"


@asynccontextmanager
async def slack_events(**limits: Any) -> AsyncIterator[int]:
    """`livekit-mcp slack`'s HTTP mode, served by uvicorn in this process on a free loopback port (its server is
    never reached: what is tested is refused before, or answered by Bolt itself)."""
    settings = Settings.load(None, **limits)
    slack = SlackSettings(bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_url="http://127.0.0.1:9/api/")
    tools = LiveKitTools(url="http://127.0.0.1:9/mcp")
    app = events_app(build_app(slack, tools), settings, SIGNING_SECRET)
    sock = listen("127.0.0.1", 0)
    server = http_server(app, settings, "Slack events")  # what serve_http runs
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True


def head(port: int, length: int, headers: dict[str, str]) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(port: int, data: bytes, within: float = 20) -> bytes:
    """Send `data` on a new connection and read what comes back until the server closes it (a bounded wait)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        with anyio.fail_after(within):
            return await reader.read()
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


CHALLENGE = json.dumps({"token": "legacy", "challenge": "c-123", "type": "url_verification"}).encode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
CLOSE = {"Connection": "close"}


async def test_an_unsigned_body_is_refused_before_it_is_read_and_a_signed_one_still_served() -> None:
    async with slack_events() as port:
        # 800 MiB announced, not a byte of it sent: answered at once, nothing read.
        refused = await exchange(port, head(port, 800 * 1024 * 1024, FORM))
        assert status_of(refused) == 401
        stale = signed(b"x", SIGNING_SECRET, timestamp=int(time.time()) - 600)
        assert status_of(await exchange(port, head(port, 800 * 1024 * 1024, FORM | stale))) == 401
        garbled = {"X-Slack-Request-Timestamp": "12x", "X-Slack-Signature": "v0=00"}
        assert status_of(await exchange(port, head(port, 1, FORM | garbled) + b"x")) == 401
        sent = head(port, len(CHALLENGE), JSON | signed(CHALLENGE, SIGNING_SECRET) | CLOSE) + CHALLENGE
        served = await exchange(port, sent)
        assert status_of(served) == 200
        assert json.loads(served.partition(b"\r\n\r\n")[2]) == {"challenge": "c-123"}


async def test_a_body_past_the_size_limit_gets_413_and_a_trickled_one_408() -> None:
    async with slack_events(body_timeout=1.0) as port:
        big = b"a" * (DEFAULT_MAX_REQUEST_BODY_SIZE + 1)
        answer = await exchange(port, head(port, len(big), FORM | signed(big, SIGNING_SECRET)) + big)
        assert status_of(answer) == 413
        body = b"token=x&text=rooms"
        trickled = await exchange(port, head(port, len(body), FORM | signed(body, SIGNING_SECRET)) + body[:5])
        assert status_of(trickled) == 408
        assert b"not received within 1 s" in trickled


async def test_signed_bodies_that_are_not_what_slack_sends_get_400_not_500(caplog: pytest.LogCaptureFixture) -> None:
    nested = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    bodies = [
        (b"payload=\xff\xfe\xfd", FORM),  # not UTF-8
        (nested, JSON),  # deeper than the JSON parser goes
        (b"payload=%7Bnot%20json", FORM),  # an interaction whose payload is not JSON
        (b"[1, 2]", JSON),  # JSON, not an object
    ]
    async with slack_events() as port:
        for body, kind in bodies:
            answer = await exchange(port, head(port, len(body), kind | signed(body, SIGNING_SECRET) | CLOSE) + body)
            assert status_of(answer) == 400, (body[:40], answer[:200])
            assert b"not the UTF-8 JSON or form that Slack sends" in answer
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_silent_connection_is_closed_by_the_header_deadline_and_past_the_limit_503() -> None:
    async with slack_events(header_timeout=1.0) as port:
        assert await exchange(port, b"") == b""  # connected, sent nothing: closed
    async with slack_events(max_connections=2, header_timeout=60.0) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        try:
            answer = await exchange(port, head(port, len(CHALLENGE), JSON | signed(CHALLENGE, SIGNING_SECRET)))
            assert status_of(answer) == 503
        finally:
            for _, writer in idle:
                writer.close()
