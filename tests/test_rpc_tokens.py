"""perform_rpc, create_join_token and remove_agent(grace_seconds=N), end to end: the MCP SDK client -> livekit-mcp
built in process -> the sandbox, and over streamable HTTP -> a livekit-mcp process -> the REAL livekit-server with
real participants (WebRTC, the `livekit` SDK, registering RPC methods) and real `livekit-agents` workers (the demo
agent).

After each change LiveKit's state is checked with `livekit-api` (and the participant's own view where it has
one), not only the tool's answer. Waits are bounded (`until`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from livekit import api, rtc
from livekit.rtc.participant import PublishTrackError
from mcp import Client
from mcp.server.mcpserver import MCPServer

from livekit_mcp.config import TOOLSETS
from livekit_mcp.models import SHUTDOWN_METHOD, SHUTDOWN_TOPIC
from livekit_mcp.sandbox import SandboxAdmin
from realkit.agents import RealAgentWorker, start_real_agent_worker
from realkit.livekit_server import RealLiveKitServer
from realkit.participants import RealPeople
from realkit.processes import until
from tests.conftest import InProcess, LiveKitTarget, Served, call, fails, http_in_process, ok, text
from tests.test_real_tools import one_agent, participants, unique

pytestmark = pytest.mark.anyio

ALL_TOOLSETS = ",".join(TOOLSETS)
NOTHING_SENT = "nothing was sent to LiveKit"


async def tool_names(server: MCPServer[Any]) -> set[str]:
    async with Client(server) as client:
        return {t.name for t in (await client.list_tools()).tools}


@pytest.fixture(scope="module")
def real_with_tokens(real_target: LiveKitTarget, serve_http: Callable[..., Served]) -> Served:
    """Every toolset, tokens included, on the real server."""
    return serve_http("--toolsets", ALL_TOOLSETS, env=real_target.env())


@pytest.fixture
async def room(real_lkapi: api.LiveKitAPI) -> AsyncIterator[str]:
    name = unique("rpc")
    yield name
    with contextlib.suppress(api.TwirpError):  # never created, or deleted by the test
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


# --- toolsets ----------------------------------------------------------------------------------------


async def test_rpc_is_offered_by_default_tokens_only_when_asked_and_read_only_hides_both(
    in_process: InProcess,
) -> None:
    default = await tool_names(in_process())
    assert "perform_rpc" in default
    assert "create_join_token" not in default
    assert {"perform_rpc", "create_join_token"} <= await tool_names(in_process(toolsets=ALL_TOOLSETS))
    read_only = await tool_names(in_process(toolsets=ALL_TOOLSETS, read_only=True))
    assert "list_rooms" in read_only
    assert not read_only & {"perform_rpc", "create_join_token", "remove_agent"}


async def test_tools_list_of_every_toolset_stays_under_16_kb(in_process: InProcess) -> None:
    async with Client(in_process(toolsets=ALL_TOOLSETS)) as client:
        tools = (await client.list_tools()).tools
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"meta"}) for t in tools]
    size = len(json.dumps(listed, separators=(",", ":"), ensure_ascii=False))
    assert size < 16 * 1024, size


# --- bad input: the field, what is allowed, and nothing sent ------------------------------------------


async def test_each_bad_argument_names_its_field_and_what_is_allowed_and_nothing_reaches_livekit(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice")
    await admin.join_agent("r", "helper")
    # The first LiveKit call of any method fails with this (not retried): a bad call that sent anything takes it.
    await admin.fault("*", error=("failed_precondition", "injected-first-call"), times=1)
    rpc = {"room": "r", "destination_identity": "alice", "method": "m"}
    token = {"room": "r", "identity": "viewer"}
    bad: list[tuple[str, dict[str, Any], str, str]] = [
        ("perform_rpc", {**rpc, "method": ""}, "method", "at least 1 character"),
        ("perform_rpc", {**rpc, "method": "m" * 257}, "method", "at most 256 characters"),
        ("perform_rpc", {**rpc, "method": "a\nb"}, "method", "control characters"),
        ("perform_rpc", {**rpc, "destination_identity": ""}, "destination_identity", "at least 1 character"),
        ("perform_rpc", {**rpc, "payload": "é" * 7680 + "x"}, "payload", "15,360 bytes"),
        ("perform_rpc", {**rpc, "response_timeout": 0.5}, "response_timeout", "greater than or equal to 1"),
        ("perform_rpc", {**rpc, "response_timeout": 16}, "response_timeout", "less than or equal to 15"),
        ("create_join_token", {**token, "ttl_seconds": 901}, "ttl_seconds", "less than or equal to 900"),
        ("create_join_token", {**token, "ttl_seconds": 59}, "ttl_seconds", "greater than or equal to 60"),
        ("create_join_token", {**token, "identity": " "}, "identity", "must not be empty"),
        ("create_join_token", {**token, "name": "n" * 257}, "name", "at most 256 characters"),
        ("create_join_token", {**token, "can_publish": "maybe"}, "can_publish", "valid boolean"),
        ("remove_agent", {"room": "r", "grace_seconds": 61}, "grace_seconds", "less than or equal to 60"),
        ("remove_agent", {"room": "r", "grace_seconds": -1}, "grace_seconds", "greater than or equal to 0"),
    ]
    async with Client(in_process(toolsets=ALL_TOOLSETS)) as client:
        for tool, args, field, allowed in bad:
            message = await fails(client, tool, **args)
            assert NOTHING_SENT in message, (tool, args, message)
            assert f"{field}:" in message, (tool, args, message)
            assert allowed in message, (tool, args, message)
        # The fault is still armed: none of the calls above reached LiveKit.
        assert "injected-first-call" in await fails(client, "perform_rpc", **rpc)
    assert {p["identity"] for p in (await admin.state())["rooms"][0]["participants"]} >= {"alice"}


# --- perform_rpc on the sandbox ----------------------------------------------------------------------


async def test_on_the_sandbox_a_participant_without_a_client_never_acknowledges(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice")
    async with Client(in_process()) as client:
        result = await call(client, "perform_rpc", room="r", destination_identity="alice", method="m")
        missing = await fails(client, "perform_rpc", room="r", destination_identity="bob", method="m")
        ghost = await fails(client, "perform_rpc", room="ghost", destination_identity="bob", method="m")
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == "no_answer"
    assert result.structured_content["error"] == {"code": 1501, "message": "Connection timeout"}
    assert "did not acknowledge the request in time (2 s; 7 s on livekit-server 1.13.11)" in text(result)
    assert "participant 'bob' is not in room 'r'" in missing
    assert "room 'ghost' does not exist" in ghost


async def test_policy_applies_to_rpc_and_tokens(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    await admin.join("vip-1", "alice")
    await admin.join("secret-1", "alice")
    server = in_process(
        env=livekit.env(LIVEKIT_MCP_PROTECTED_ROOMS="vip-*", LIVEKIT_MCP_ALLOWED_ROOMS="vip-*,open-*"),
        toolsets=ALL_TOOLSETS,
    )
    async with Client(server) as client:
        rpc = await fails(client, "perform_rpc", room="vip-1", destination_identity="alice", method="m")
        token = await fails(client, "create_join_token", room="vip-1", identity="viewer")
        hidden = await fails(client, "create_join_token", room="secret-1", identity="viewer")
    assert "protected_rooms" in rpc
    assert "protected_rooms" in token
    assert "allowed_rooms" in hidden


# --- create_join_token: the token only in its answer ---------------------------------------------------


async def test_a_join_token_is_in_its_answer_only_never_in_logs_or_the_audit_log(
    livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await admin.join("r", "alice")
    audit = tmp_path / "audit.jsonl"
    caplog.set_level(logging.DEBUG)  # --log-level DEBUG: every record of the server and of the SDK's HTTP transport
    async with (
        http_in_process(livekit.env(), toolsets=ALL_TOOLSETS, audit_log=audit) as server,
        server.client() as client,
    ):
        made = await ok(client, "create_join_token", room="r", identity="listener", ttl_seconds=120, name="Ops")
        taken = await fails(client, "create_join_token", room="r", identity="alice")
    token = made["token"]
    claims = api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(token)
    assert claims.video is not None
    assert (claims.identity, claims.name, claims.video.room) == ("listener", "Ops", "r")
    assert "joining with it would disconnect them" in taken
    stderr = caplog.text + "".join(record.getMessage() for record in caplog.records)
    assert "create_join_token" in stderr  # the DEBUG log did see the call
    assert token not in stderr
    assert token.split(".")[2] not in stderr  # not even its signature
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    issued = [line for line in lines if line["tool"] == "create_join_token" and line["outcome"] == "done"]
    assert [(e["arguments"]["room"], e["arguments"]["identity"], e["arguments"]["ttl_seconds"]) for e in issued] == [
        ("r", "listener", 120)
    ]
    assert token not in audit.read_text()
    assert token.split(".")[2] not in audit.read_text()


# --- remove_agent(grace_seconds) on the sandbox --------------------------------------------------------


async def test_on_the_sandbox_an_agent_that_cannot_answer_is_asked_then_removed_after_the_grace(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "alice")
    agent = await admin.join_agent("r", "helper")
    async with Client(in_process()) as client:
        # keep_out=False: in the sandbox a deleted dispatch takes its agent with it at once (ended_with_dispatch).
        removed = await ok(client, "remove_agent", room="r", agent_name="helper", grace_seconds=1, keep_out=False)
    (departure,) = removed["departures"]
    assert (departure["identity"], departure["left"]) == (agent["identity"], "removed_after_grace")
    assert "1501" in departure["asked"]
    assert f"data message on topic {SHUTDOWN_TOPIC} sent" in departure["asked"]
    assert f"removed {agent['identity']} after the 1 s grace period" in removed["steps"]
    names = {
        p.identity for p in (await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))).participants
    }
    assert names == {"alice"}
    (room_state,) = (await admin.state())["rooms"]
    assert [(d["topic"], d["destination_identities"]) for d in room_state["data"]] == [
        (SHUTDOWN_TOPIC, [agent["identity"]])
    ]


async def test_a_graceful_removal_is_confirmed_like_any_other_with_its_grace_in_the_plan(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await admin.join_agent("r", "helper")
    server = in_process(env=livekit.env(LIVEKIT_MCP_CONFIRM="auto"))
    async with Client(server) as bot:
        preview = await ok(bot, "remove_agent", room="r", grace_seconds=1)
        assert preview["outcome"] == "confirmation_required"
        assert "to leave by themselves, waits up to 1 s" in text(
            await call(bot, "remove_agent", room="r", grace_seconds=1)
        )
        assert agent["identity"] in {
            p.identity for p in (await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))).participants
        }
        # The token is bound to the grace: without it the call is another plan.
        other = await fails(bot, "remove_agent", room="r", confirm_token=preview["confirm_token"])
        assert "issued for another call or other arguments" in other
        done = await ok(bot, "remove_agent", room="r", grace_seconds=1, confirm_token=preview["confirm_token"])
    assert done["departures"][0]["left"] == "ended_with_dispatch"  # the sandbox ends it with its dispatch, at once
    assert (await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))).participants == []


# --- perform_rpc on the real server --------------------------------------------------------------------


async def test_a_real_participant_answers_fails_or_does_not_answer_and_each_is_said_plainly(
    real_http: Served, real_lkapi: api.LiveKitAPI, real_people: RealPeople, room: str
) -> None:
    alice = await real_people.join(room, "alice")
    calls: list[rtc.RpcInvocationData] = []
    local = alice.room.local_participant

    async def echo(data: rtc.RpcInvocationData) -> str:
        calls.append(data)
        return f"echo:{data.payload}"

    async def refuse(data: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(42, "not today", '{"retry": "tomorrow"}')

    async def crash(data: rtc.RpcInvocationData) -> str:
        raise ValueError("a bug in the handler")

    async def slow(data: rtc.RpcInvocationData) -> str:
        await asyncio.sleep(2)
        return "too late"

    async def huge(data: rtc.RpcInvocationData) -> str:
        return "x" * 20_000

    local.register_rpc_method("echo", echo)
    local.register_rpc_method("refuse", refuse)
    local.register_rpc_method("crash", crash)
    local.register_rpc_method("slow", slow)
    local.register_rpc_method("huge", huge)
    rpc = {"room": room, "destination_identity": "alice"}
    async with Client(real_http.url) as client:
        answered = await ok(client, "perform_rpc", **rpc, method="echo", payload='{"q": "état?"}')
        refused = await call(client, "perform_rpc", **rpc, method="refuse")
        crashed = await call(client, "perform_rpc", **rpc, method="crash")
        unknown = await call(client, "perform_rpc", **rpc, method="nope")
        late = await call(client, "perform_rpc", **rpc, method="slow", response_timeout=1)
        too_big = await call(client, "perform_rpc", **rpc, method="huge")
        missing = await fails(client, "perform_rpc", room=room, destination_identity="bob", method="echo")
    assert (answered["outcome"], answered["payload"]) == ("answered", 'echo:{"q": "état?"}')
    assert [(c.payload, c.response_timeout) for c in calls] == [('{"q": "état?"}', 2.5)]

    def error(result: Any) -> dict[str, Any]:
        assert result.is_error, text(result)
        return dict(result.structured_content["error"])

    assert error(refused) == {"code": 42, "message": "not today", "data": '{"retry": "tomorrow"}'}
    assert 'answered \'refuse\' with its error 42: not today (data: {"retry": "tomorrow"})' in text(refused)
    assert error(crashed) == {"code": 1500, "message": "Application error in method handler"}
    assert "handler for 'crash' failed" in text(crashed)
    assert error(unknown) == {"code": 1400, "message": "Method not supported at destination"}
    assert "has no RPC method 'nope' registered" in text(unknown)
    assert error(late) == {"code": 1502, "message": "Response timeout"}
    assert "is in the room but did not answer 'slow' within 1 s" in text(late)
    assert late.structured_content is not None
    assert late.structured_content["outcome"] == "no_answer"
    assert error(too_big) == {"code": 1504, "message": "Response payload too large"}
    assert f"participant 'bob' is not in room '{room}'" in missing
    assert set(await participants(real_lkapi, room)) == {"alice"}  # nobody was disturbed
    assert alice.connected


# --- create_join_token on the real server --------------------------------------------------------------


async def test_a_listen_only_token_lets_a_real_client_subscribe_but_not_publish(
    real_with_tokens: Served,
    real_livekit: RealLiveKitServer,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    room: str,
) -> None:
    speaker = await real_people.join(room, "speaker", audio=True)
    async with Client(real_with_tokens.url) as client:
        made = await ok(client, "create_join_token", room=room, identity="listener", ttl_seconds=300)
    assert made["url"] == real_livekit.ws_url
    assert made["grants"] == {"can_publish": False, "can_subscribe": True, "can_publish_data": False}
    token = made["token"]
    claims = api.TokenVerifier(real_livekit.api_key, real_livekit.api_secret).verify(token)
    video = claims.video
    assert video is not None
    assert (video.room_join, video.room) == (True, room)
    assert not any(
        (video.room_admin, video.room_create, video.room_list, video.room_record, video.recorder, video.hidden)
    )
    assert not any((video.agent, video.ingress_admin, video.can_update_own_metadata, video.can_publish))
    raw = jwt.decode(token, options={"verify_signature": False})
    assert raw["exp"] - raw["nbf"] == 300
    assert abs(raw["exp"] - (time.time() + 300)) < 30

    listener = rtc.Room()
    subscribed: list[str] = []
    listener.on("track_subscribed", lambda track, publication, participant: subscribed.append(participant.identity))
    try:
        with anyio.fail_after(20):
            await listener.connect(made["url"], token)
        await until("the listener hears the speaker", lambda: "speaker" in subscribed, 20)
        permissions = listener.local_participant.permissions
        assert (permissions.can_subscribe, permissions.can_publish, permissions.can_publish_data) == (
            True,
            False,
            False,
        )
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        with pytest.raises(PublishTrackError), anyio.fail_after(20):  # the server refuses: no publish grant
            await listener.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
        info = (await participants(real_lkapi, room))["listener"]
        assert (info.permission.can_publish, info.permission.can_subscribe, info.permission.can_publish_data) == (
            False,
            True,
            False,
        )
        assert list(info.tracks) == []
        assert info.permission.hidden is False
    finally:
        await listener.disconnect()
    assert speaker.connected


# --- remove_agent(grace_seconds) with real livekit-agents workers ---------------------------------------


@pytest.fixture(scope="module")
def deaf_worker(real_livekit: RealLiveKitServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAgentWorker]:
    """A worker whose agent ignores the request to leave, as one written without the convention would."""
    worker = start_real_agent_worker(
        real_livekit, "deaf-helper", tmp_path_factory.mktemp("deaf-worker"), "--ignore-shutdown"
    )
    yield worker
    worker.stop()


async def test_a_real_agent_asked_to_leave_ends_its_session_itself(
    real_http: Served,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    agent_worker: Callable[[str], RealAgentWorker],
    room: str,
) -> None:
    agent_worker("polite-helper")
    await real_people.join(room, "customer")
    async with Client(real_http.url) as client:
        dispatch_id = (await ok(client, "dispatch_agent", room=room, agent_name="polite-helper"))["dispatch"]["id"]
        identity = await one_agent(real_lkapi, room, "polite-helper")
        removed = await ok(client, "remove_agent", room=room, agent_name="polite-helper", grace_seconds=15)
    (departure,) = removed["departures"]
    assert (departure["identity"], departure["left"]) == (identity, "by_itself"), removed
    assert departure["asked"] == f"RPC {SHUTDOWN_METHOD} answered 'leaving'"
    assert 0 <= departure["seconds"] <= 15
    assert any(step.startswith(f"{identity} left by itself") for step in removed["steps"])
    assert not any(step.startswith(f"removed {identity}") for step in removed["steps"])
    assert removed["cancelled_dispatches"] == [dispatch_id]
    assert set(await participants(real_lkapi, room)) == {"customer"}
    assert dispatch_id not in {d.id for d in await real_lkapi.agent_dispatch.list_dispatch(room)}


async def test_a_real_agent_that_ignores_the_request_is_removed_after_the_grace(
    real_http: Served, real_lkapi: api.LiveKitAPI, real_people: RealPeople, deaf_worker: RealAgentWorker, room: str
) -> None:
    await real_people.join(room, "customer")
    async with Client(real_http.url) as client:
        await ok(client, "dispatch_agent", room=room, agent_name=deaf_worker.agent_name)
        identity = await one_agent(real_lkapi, room, deaf_worker.agent_name)
        started = time.monotonic()
        removed = await ok(client, "remove_agent", room=room, agent_name=deaf_worker.agent_name, grace_seconds=3)
        took = time.monotonic() - started
    (departure,) = removed["departures"]
    assert (departure["identity"], departure["left"]) == (identity, "removed_after_grace"), removed
    assert "1400 Method not supported at destination" in departure["asked"]
    assert f"data message on topic {SHUTDOWN_TOPIC} sent" in departure["asked"]
    assert f"removed {identity} after the 3 s grace period" in removed["steps"]
    assert took >= 3  # it did wait for the agent
    assert set(await participants(real_lkapi, room)) == {"customer"}
