"""Attacks on the guardrails of destructive actions (issue 12, items 1, 2, 3 and 7's confirm tokens).

Each test plays a hostile or unlucky caller through the MCP SDK client against the sandbox, with confirmation on,
and checks LiveKit's state afterwards with `livekit-api`: nothing changed that was not confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitRequestParams, ElicitResult

from livekit_mcp.config import TOOLSETS
from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import (
    InProcess,
    LiveKitTarget,
    Served,
    call,
    fails,
    http_in_process,
    identities,
    ok,
    room_names,
    text,
)
from tests.test_guardrails import guarded, support_room

pytestmark = pytest.mark.anyio

ALICE_TOKEN = "alice-token-0123456789abcdef"
BOB_TOKEN = "bob-token-0123456789abcdef"


async def permission_of(lkapi: api.LiveKitAPI, room: str, identity: str) -> api.ParticipantPermission:
    p = await lkapi.room.get_participant(api.RoomParticipantIdentity(room=room, identity=identity))
    return p.permission


async def dispatch_ids(lkapi: api.LiveKitAPI, room: str, agent_name: str) -> set[str]:
    return {d.id for d in await lkapi.agent_dispatch.list_dispatch(room) if d.agent_name == agent_name}


# --- 1. Kinds that cannot be forged ------------------------------------------------------------------


async def test_update_participant_cannot_turn_a_protected_sip_caller_into_an_agent(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await support_room(admin)
    server = in_process(env=guarded(livekit, protected_kinds="SIP"))
    forged = {"agent": True, "can_subscribe": True, "can_publish": True, "can_publish_data": True}
    async with Client(server) as bot:
        update = await fails(bot, "update_participant", room="support", identity="caller", permission=forged)
        removing = await fails(bot, "remove_participant", room="support", identity="caller")
        deleting = await fails(bot, "delete_room", room="support")
        agents = await fails(bot, "remove_agent", room="support", identity="caller")
    assert "permission.agent" in update
    assert not (await permission_of(lkapi, "support", "caller")).agent
    assert "protected_kinds" in removing
    assert "protected_kinds" in deleting
    assert "no agent matching" in agents
    assert await identities(lkapi, "support") == {"customer", "caller", agent["identity"]}


async def test_a_sip_caller_with_the_agent_bit_is_judged_by_its_kind(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "sip_+15550100", kind="SIP", permission={"agent": True, "can_subscribe": True})
    await admin.join("support", "customer")
    server = in_process(env=guarded(livekit, protected_kinds="SIP"))
    async with Client(server) as bot:
        removing = await fails(bot, "remove_participant", room="support", identity="sip_+15550100")
        agents = await fails(bot, "remove_agent", room="support")
        found = await ok(bot, "find_agent", room="support")
        listed = await ok(bot, "list_participants", room="support", kind="SIP")
        detail = await ok(bot, "get_participant", room="support", identity="sip_+15550100")
    assert "refused by policy (protected_kinds)" in removing
    assert "no agent matching" in agents
    assert found["agents"] == []
    assert [p["identity"] for p in listed["participants"]] == ["sip_+15550100"]
    assert detail["kind"] == "SIP"
    assert await identities(lkapi, "support") == {"sip_+15550100", "customer"}


async def test_update_participant_keeps_the_agent_bit_and_refuses_to_change_it(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "older-agent", permission={"agent": True, "can_subscribe": True})
    await admin.join("r", "guest", permission={"can_subscribe": True})
    server = in_process(env=guarded(livekit))
    async with Client(server) as bot:
        kept = await ok(bot, "update_participant", room="r", identity="older-agent", permission={"can_publish": True})
        clearing = await fails(bot, "update_participant", room="r", identity="older-agent", permission={"agent": False})
        setting = await fails(bot, "update_participant", room="r", identity="guest", permission={"agent": True})
        same = await ok(bot, "update_participant", room="r", identity="guest", permission={"agent": False})
    assert kept["participant"]["kind"] == "AGENT"
    older, guest = await permission_of(lkapi, "r", "older-agent"), await permission_of(lkapi, "r", "guest")
    assert older.agent
    assert older.can_publish
    assert not guest.agent
    for message in (clearing, setting):
        assert "invalid 'permission.agent'" in message
    assert same["changed"] == ["permission"]


# --- 2. What is confirmed is what is done ------------------------------------------------------------


async def test_a_delete_room_token_for_an_empty_room_does_not_delete_it_once_people_joined(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="standup"))
    server = in_process(env=guarded(livekit))
    async with Client(server) as bot:
        preview = await ok(bot, "delete_room", room="standup")
        assert preview["total_disconnected"] == 0
        for i in range(5):
            await admin.join("standup", f"person-{i}")
        refused = await fails(bot, "delete_room", room="standup", confirm_token=preview["confirm_token"])
    assert "the target changed" in refused
    assert "standup" in await room_names(lkapi)
    assert await identities(lkapi, "standup") == {f"person-{i}" for i in range(5)}


async def test_a_yes_to_deleting_an_empty_room_is_asked_again_once_people_joined(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="standup"))
    server = in_process(env=guarded(livekit))
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:  # while the user reads the question, five people join
            for i in range(5):
                await admin.join("standup", f"person-{i}")
            return ElicitResult(action="accept", content={"room": "standup"})
        return ElicitResult(action="decline")

    async with Client(server, mode=mode, elicitation_callback=user) as client:
        data = await ok(client, "delete_room", room="standup")
    assert len(asked) == 2, asked
    assert "disconnects 0 participant(s)" in asked[0]
    assert "disconnects 5 participant(s): 5 STANDARD" in asked[1]
    assert data["outcome"] == "declined"
    assert "standup" in await room_names(lkapi)
    assert await identities(lkapi, "standup") == {f"person-{i}" for i in range(5)}


async def test_a_yes_for_a_participant_who_rejoined_meanwhile_is_asked_again(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await support_room(admin)
    server = in_process(env=guarded(livekit))
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:  # the same identity, someone else (a new sid) by the time the user says yes
            await admin.leave("support", "customer")
            await admin.join("support", "customer", name="Dana")
        return ElicitResult(action="accept", content={"confirm": len(asked) > 1})

    async with Client(server, mode=mode, elicitation_callback=user) as client:
        data = await ok(client, "remove_participant", room="support", identity="customer")
    assert len(asked) == 2, asked
    assert asked[0] != asked[1]  # the question carries the plan's reference
    assert data["outcome"] == "done"
    assert "customer" not in await identities(lkapi, "support")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_confirm_token_only_works_for_the_principal_it_was_issued_to(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    tokens = f"alice:write:{ALICE_TOKEN},bob:write:{BOB_TOKEN}"
    async with http_in_process(guarded(livekit, auth_tokens=tokens)) as server:
        async with server.client(bearer(ALICE_TOKEN)) as alice:
            token = (await ok(alice, "remove_participant", room="support", identity="customer"))["confirm_token"]
        async with server.client(bearer(BOB_TOKEN)) as bob:
            refused = await fails(bob, "remove_participant", room="support", identity="customer", confirm_token=token)
        assert "issued to another principal" in refused
        assert "customer" in await identities(lkapi, "support")
        async with server.client(bearer(ALICE_TOKEN)) as alice:
            done = await ok(alice, "remove_participant", room="support", identity="customer", confirm_token=token)
    assert done["outcome"] == "done"
    assert "customer" not in await identities(lkapi, "support")


async def test_the_rate_limit_counts_actions_that_happened_not_attempts(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    for name in ("a", "b"):
        await admin.join("r", name)
    server = in_process(env=guarded(livekit, max_destructive_per_minute="1"))
    async with Client(server) as bot:
        token = (await ok(bot, "remove_participant", room="r", identity="a"))["confirm_token"]
        await admin.fault("RoomService/RemoveParticipant", error=("internal", "node unavailable"), times=1)
        failed = await fails(bot, "remove_participant", room="r", identity="a", confirm_token=token)
        assert await identities(lkapi, "r") == {"a", "b"}
        done = await ok(bot, "remove_participant", room="r", identity="a", confirm_token=token)
        beyond = await fails(bot, "remove_participant", room="r", identity="b")
    assert "node unavailable" in failed
    assert done["outcome"] == "done"
    assert "refused by policy (max_destructive_per_minute)" in beyond
    assert await identities(lkapi, "r") == {"b"}


# --- Every destructive tool under confirmation, cancel_dispatch included -----------------------------


async def test_every_destructive_tool_previews_then_acts_with_its_token_and_only_then(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await support_room(admin)
    (dispatch,) = await dispatch_ids(lkapi, "support", "support-agent")
    await admin.join_agent("other", "helper")
    (other_dispatch,) = await dispatch_ids(lkapi, "other", "helper")
    await admin.join("third", "someone")
    server = in_process(env=guarded(livekit))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("remove_participant", {"room": "support", "identity": "customer"}),
        ("cancel_dispatch", {"room": "support", "dispatch_id": dispatch}),
        ("remove_agent", {"room": "other"}),
        ("delete_room", {"room": "third"}),
    ]
    async with Client(server) as bot:
        previews = {tool: await ok(bot, tool, **args) for tool, args in calls}
        assert {p["outcome"] for p in previews.values()} == {"confirmation_required"}
        assert await identities(lkapi, "support") == {"customer", "caller", agent["identity"]}
        assert await dispatch_ids(lkapi, "support", "support-agent") == {dispatch}
        assert await dispatch_ids(lkapi, "other", "helper") == {other_dispatch}
        assert await room_names(lkapi) == {"support", "other", "third"}
        for tool, args in calls:
            done = await ok(bot, tool, **args, confirm_token=previews[tool]["confirm_token"])
            assert done["outcome"] == "done", tool
    assert "customer" not in await identities(lkapi, "support")
    assert await dispatch_ids(lkapi, "support", "support-agent") == set()
    assert await dispatch_ids(lkapi, "other", "helper") == set()
    assert "helper" not in str(await identities(lkapi, "other"))
    assert "third" not in await room_names(lkapi)


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_cancel_dispatch_asks_the_user_and_respects_the_answer(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    mode: str,
    answer: str,
) -> None:
    agent = await admin.join_agent("support", "support-agent")
    (dispatch,) = await dispatch_ids(lkapi, "support", "support-agent")
    server = in_process(env=guarded(livekit))
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return (
            ElicitResult(action="accept", content={"confirm": True})
            if answer == "accept"
            else ElicitResult(action="decline")
        )

    async with Client(server, mode=mode, elicitation_callback=user) as client:
        result = await call(client, "cancel_dispatch", room="support", dispatch_id=dispatch)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == ("done" if answer == "accept" else "declined")
    (question,) = asked
    assert f"deletes dispatch {dispatch} of agent 'support-agent'" in question
    assert agent["identity"] in question
    assert (await dispatch_ids(lkapi, "support", "support-agent") == set()) is (answer == "accept")


# --- 3. Write-ahead audit ----------------------------------------------------------------------------


async def test_a_process_killed_mid_change_leaves_the_attempted_line(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await support_room(admin)
    audit = tmp_path / "audit.jsonl"
    server = serve_http(env=livekit.env(LIVEKIT_MCP_AUDIT_LOG=str(audit)))  # confirmation off: acts at once
    await admin.fault("RoomService/DeleteRoom", latency_ms=20_000, times=1)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []

    async with anyio.create_task_group() as tg:

        async def deleting() -> None:
            async with Client(server.url) as client:
                await call(client, "delete_room", room="support")

        tg.start_soon(deleting)
        for _ in range(200):  # a bounded wait (10 s) for the line, written before DeleteRoom is sent
            if lines():
                break
            await anyio.sleep(0.05)
        server.process.kill()
        server.process.wait(10)
        tg.cancel_scope.cancel()
    (line,) = lines()
    assert (line["tool"], line["outcome"]) == ("delete_room", "attempted")
    assert line["arguments"] == {"room": "support"}
    assert line["before"]["targets"][0].startswith("RM_")


async def test_a_log_that_cannot_take_the_attempted_line_stops_the_change(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
) -> None:
    await support_room(admin)
    audit = tmp_path / "audit.jsonl"
    server = in_process(env=guarded(livekit, audit_log=str(audit)))
    async with Client(server) as bot:
        token = (await ok(bot, "remove_participant", room="support", identity="customer"))["confirm_token"]
        audit.unlink()
        audit.mkdir()  # the path can no longer be appended to
        refused = await fails(bot, "remove_participant", room="support", identity="customer", confirm_token=token)
    assert "no change was made" in refused
    assert "customer" in await identities(lkapi, "support")


# --- More of the same kind ----------------------------------------------------------------------------

# Arguments that would succeed on the room if policy let them through: with confirmation off, a destructive tool
# that slipped past allowed_rooms would act at once.
ON_THE_SECRET_ROOM: dict[str, dict[str, Any]] = {
    "get_room": {},
    "room_history": {},
    "create_room": {"metadata": "taken"},
    "update_room_metadata": {"metadata": "taken"},
    "delete_room": {},
    "list_participants": {},
    "get_participant": {"identity": "board-member"},
    "update_participant": {"identity": "board-member", "metadata": "taken"},
    "mute_track": {"identity": "board-member", "track_sid": "TR_x", "muted": True},
    "remove_participant": {"identity": "board-member"},
    "find_agent": {},
    "list_dispatches": {},
    "dispatch_agent": {"agent_name": "spy"},
    "cancel_dispatch": {"dispatch_id": "AD_x"},
    "remove_agent": {},
    "send_data": {"data": "hello"},
    "perform_rpc": {"destination_identity": "board-member", "method": "ping"},
    "create_join_token": {"identity": "spy"},
    "create_sip_participant": {},  # the sandbox's trunk and a number: in the test
    "transfer_sip_participant": {"identity": "sip_+15550111", "transfer_to": "tel:+15550100"},
    "list_egress": {},
    "start_room_egress": {},
    "list_ingress": {},
    "create_ingress": {"input_type": "RTMP", "participant_identity": "spy"},
}


async def test_no_tool_and_no_resource_reaches_a_room_outside_allowed_rooms(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("secret-board", "board-member")
    await admin.join_agent("secret-board", "note-taker")
    # A phone call, a recording and an ingress of the secret room, and a trunk any call could go through.
    trunk = api.SIPOutboundTrunkInfo(name="t", address="sip.example.com", numbers=["+15550199"])
    trunk_id = (await lkapi.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=trunk))).sip_trunk_id
    cases = {**ON_THE_SECRET_ROOM, "create_sip_participant": {"sip_trunk_id": trunk_id, "sip_call_to": "+15550100"}}
    call_in = api.CreateSIPParticipantRequest(room_name="secret-board", sip_trunk_id=trunk_id, sip_call_to="+15550111")
    await lkapi.sip.create_sip_participant(call_in)
    output = api.EncodedFileOutput(filepath="board.mp4")
    recording = api.RoomCompositeEgressRequest(room_name="secret-board", file_outputs=[output])
    egress_id = (await lkapi.egress.start_room_composite_egress(recording)).egress_id
    stream = api.CreateIngressRequest(
        input_type=api.IngressInput.RTMP_INPUT, room_name="secret-board", participant_identity="cam"
    )
    ingress_id = (await lkapi.ingress.create_ingress(stream)).ingress_id
    before_people = await identities(lkapi, "secret-board")
    before_dispatches = await dispatch_ids(lkapi, "secret-board", "note-taker")
    env = livekit.env(
        LIVEKIT_MCP_ALLOWED_ROOMS="support*", LIVEKIT_MCP_CONFIRM="off", LIVEKIT_MCP_EGRESS_OUTPUT="rtmp://x.test/a/k"
    )
    server = in_process(env=env, toolsets=",".join(TOOLSETS))
    async with Client(server) as attacker:
        tools = (await attacker.list_tools()).tools
        with_room = [t.name for t in tools if "room" in (t.input_schema.get("properties") or {})]
        assert set(with_room) <= set(cases), "a tool that takes a room has no case here"
        for name in with_room:
            answer = await call(attacker, name, room="secret-board", **cases[name])
            assert answer.is_error, name
            assert "refused by policy (allowed_rooms)" in text(answer), (name, text(answer))
        # By id, the secret room's recording and ingress are not there at all; in lists neither.
        assert "does not exist" in await fails(attacker, "stop_egress", egress_id=egress_id)
        assert "does not exist" in await fails(attacker, "delete_ingress", ingress_id=ingress_id)
        assert (await ok(attacker, "list_egress"))["egress"] == []
        assert (await ok(attacker, "list_ingress"))["ingress"] == []
        with pytest.raises(MCPError, match=r"refused by policy \(allowed_rooms\)"):
            await attacker.read_resource("livekit://rooms/secret-board")
    assert "secret-board" in await room_names(lkapi)
    assert [e.status for e in (await lkapi.egress.list_egress(api.ListEgressRequest())).items] == [
        api.EgressStatus.EGRESS_ACTIVE
    ]
    assert [i.ingress_id for i in (await lkapi.ingress.list_ingress(api.ListIngressRequest())).items] == [ingress_id]
    assert await identities(lkapi, "secret-board") == before_people
    assert await dispatch_ids(lkapi, "secret-board", "note-taker") == before_dispatches
    room = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["secret-board"]))).rooms[0]
    assert room.metadata != "taken"


async def test_a_delete_room_token_replayed_on_a_room_recreated_under_the_same_name_is_refused(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("retro", "early-bird")
    server = in_process(env=guarded(livekit))
    async with Client(server) as bot:
        token = (await ok(bot, "delete_room", room="retro"))["confirm_token"]
        assert (await ok(bot, "delete_room", room="retro", confirm_token=token))["outcome"] == "done"
        await admin.join("retro", "early-bird")  # someone else's new call, under the old name: a new room sid
        replayed = await fails(bot, "delete_room", room="retro", confirm_token=token)
    assert "the target changed" in replayed
    assert await identities(lkapi, "retro") == {"early-bird"}
