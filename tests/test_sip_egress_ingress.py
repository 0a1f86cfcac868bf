"""The sip, egress and ingress toolsets end to end: the MCP SDK client -> livekit-mcp built in process -> the
sandbox, and over streamable HTTP -> a livekit-mcp process -> the REAL livekit-server (with Redis: its SIP trunk and
dispatch-rule store, its egress and ingress lists) with real participants. No SIP, egress or ingress service runs
beside the real server here, so there the tests check what a user is told when one is missing. LiveKit's state is
checked with `livekit-api` after a change.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.server.mcpserver import MCPServer

from livekit_mcp.config import TOOLSETS
from livekit_mcp.sandbox import SandboxAdmin
from realkit.participants import RealPeople
from tests.conftest import InProcess, LiveKitTarget, Served, call, fails, http_in_process, identities, ok, text
from tests.test_attacks_guardrails import bearer
from tests.test_attacks_service import refused
from tests.test_real_tools import unique

pytestmark = pytest.mark.anyio

ALL = ",".join(TOOLSETS)
NEW_TOOLS = {
    "list_sip_trunks",
    "list_sip_dispatch_rules",
    "create_sip_participant",
    "transfer_sip_participant",
    "list_egress",
    "start_room_egress",
    "stop_egress",
    "list_ingress",
    "create_ingress",
    "delete_ingress",
}
STREAM_KEY = "live-key-never-shown-0123"
STREAM = f"rtmp://live.example.com/app/{STREAM_KEY}"
NOTHING_SENT = "nothing was sent to LiveKit"
READ_TOKEN = "viewer-token-0123456789abcdef"
WRITE_TOKEN = "operator-token-0123456789abcdef"


@pytest.fixture
def everything(livekit: LiveKitTarget, in_process: InProcess) -> MCPServer[Any]:
    """Every toolset on the sandbox, recording to a stream (whose key must never be shown), acting at once."""
    return in_process(env=livekit.env(LIVEKIT_MCP_EGRESS_OUTPUT=STREAM), toolsets=ALL)


@pytest.fixture
def audit_log(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def confirming(
    livekit: LiveKitTarget, in_process: InProcess, audit_log: Path, caplog: pytest.LogCaptureFixture
) -> MCPServer[Any]:
    """Every toolset on the sandbox with confirmation on (the SDK client does not elicit: confirm tokens) and an
    audit log; every record it logs, at any level, in `caplog`."""
    caplog.set_level(logging.DEBUG)
    env = livekit.env(
        LIVEKIT_MCP_CONFIRM="auto", LIVEKIT_MCP_EGRESS_OUTPUT=STREAM, LIVEKIT_MCP_AUDIT_LOG=str(audit_log)
    )
    return in_process(env=env, toolsets=ALL)


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (what a process prints on stderr), each record's message and exception in full."""
    return caplog.text + "".join(record.getMessage() for record in caplog.records)


async def outbound_trunk(lk: api.LiveKitAPI, name: str = "desk") -> api.SIPOutboundTrunkInfo:
    trunk = api.SIPOutboundTrunkInfo(
        name=name, address="sip.example.com", numbers=["+15550100"], auth_username="user", auth_password="pass-word"
    )
    return await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=trunk))


async def inbound_trunk_and_rule(lk: api.LiveKitAPI, room: str) -> tuple[str, str]:
    inbound = api.SIPInboundTrunkInfo(name="lines", numbers=["+15550199"], auth_username="in", auth_password="in-pw")
    trunk = await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=inbound))
    rule = await lk.sip.create_dispatch_rule(
        api.CreateSIPDispatchRuleRequest(
            rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=room, pin="8642")),
            trunk_ids=[trunk.sip_trunk_id],
            name="front desk",
            room_config=api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name="receptionist")]),
        )
    )
    return trunk.sip_trunk_id, rule.sip_dispatch_rule_id


async def names(server: MCPServer[Any]) -> set[str]:
    async with Client(server) as client:
        return {t.name for t in (await client.list_tools()).tools}


# --- toolsets ----------------------------------------------------------------------------------------


async def test_sip_egress_and_ingress_are_off_by_default_on_when_named_and_read_only_keeps_their_lists(
    in_process: InProcess, everything: MCPServer[Any]
) -> None:
    assert not await names(in_process()) & NEW_TOOLS
    assert await names(everything) >= NEW_TOOLS
    read_only = await names(in_process(toolsets="sip,egress,ingress", read_only=True))
    assert read_only == {"list_sip_trunks", "list_sip_dispatch_rules", "list_egress", "list_ingress", "list_projects"}


# --- SIP on the sandbox ------------------------------------------------------------------------------


async def test_trunks_and_rules_show_numbers_rooms_and_agents_never_passwords_or_pins(
    everything: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    out = await outbound_trunk(lkapi)
    trunk_id, rule_id = await inbound_trunk_and_rule(lkapi, "front")
    async with Client(everything) as client:
        trunks = await call(client, "list_sip_trunks")
        rules = await call(client, "list_sip_dispatch_rules")
    listed = {t["id"]: t for t in trunks.structured_content["trunks"]}
    assert listed[out.sip_trunk_id] | {"id": "x"} == {
        "id": "x",
        "direction": "outbound",
        "name": "desk",
        "numbers": ["+15550100"],
        "address": "sip.example.com",
        "auth_username": "user",
    }
    assert listed[trunk_id]["numbers"] == ["+15550199"]
    assert "+15550100 via sip.example.com" in text(trunks)
    (rule,) = rules.structured_content["rules"]
    assert rule == {
        "id": rule_id,
        "name": "front desk",
        "kind": "direct",
        "room": "front",
        "pin_required": True,
        "trunk_ids": [trunk_id],
        "numbers": [],
        "agents": ["receptionist"],
    }
    assert f"calls on trunk(s) {trunk_id} go to room 'front', agents receptionist, PIN required" in text(rules)
    for shown in (
        text(trunks),
        json.dumps(trunks.structured_content),
        text(rules),
        json.dumps(rules.structured_content),
    ):
        assert "pass-word" not in shown
        assert "in-pw" not in shown
        assert "8642" not in shown


async def test_a_dial_out_is_confirmed_with_its_blast_radius_then_the_caller_is_in_the_room(
    confirming: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    args = {"room": "support", "sip_trunk_id": trunk.sip_trunk_id, "sip_call_to": "+15550142"}
    async with Client(confirming) as client:
        preview = await ok(client, "create_sip_participant", **args)
        assert preview["outcome"] == "confirmation_required"
        assert not [r for r in (await admin.state())["rooms"] if r["name"] == "support"]
        said = text(await call(client, "create_sip_participant", **args, confirm_token="x" * 10))
        assert "confirm_token" in said
        done = await ok(client, "create_sip_participant", **args, confirm_token=preview["confirm_token"])
    assert done["outcome"] == "done"
    assert done["participant_identity"] == "sip_+15550142"
    p = await lkapi.room.get_participant(api.RoomParticipantIdentity(room="support", identity="sip_+15550142"))
    assert p.kind == api.ParticipantInfo.Kind.SIP
    assert p.attributes["sip.callID"] == done["sip_call_id"]


async def test_the_dial_out_question_names_the_number_the_trunk_and_the_cost(
    confirming: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    async with Client(confirming) as client:
        result = await call(
            client, "create_sip_participant", room="support", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142"
        )
    assert (
        "This calls +15550142 from +15550100 through trunk 'desk' (sip.example.com) and brings the call into room "
        "'support' as 'sip_+15550142': a real phone rings, and the call is billed." in text(result)
    )


async def test_a_transfer_shows_the_caller_asks_and_then_the_caller_leaves(
    confirming: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    await lkapi.sip.create_sip_participant(
        api.CreateSIPParticipantRequest(room_name="support", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142")
    )
    await admin.join("support", "agent-ann")
    args = {"room": "support", "identity": "sip_+15550142", "transfer_to": "tel:+15550177"}
    async with Client(confirming) as client:
        preview = await call(client, "transfer_sip_participant", **args)
        assert "transfers the phone call of 'sip_+15550142' (+15550142) in room 'support' to tel:+15550177" in text(
            preview
        )
        not_sip = await fails(client, "transfer_sip_participant", **{**args, "identity": "agent-ann"})
        assert "invalid 'identity': 'agent-ann' is a STANDARD participant; only a SIP caller is transferred" in not_sip
        token = preview.structured_content["confirm_token"]
        done = await ok(client, "transfer_sip_participant", **args, confirm_token=token)
    assert done["phone_number"] == "+15550142"
    left = await lkapi.room.list_participants(api.ListParticipantsRequest(room="support"))
    assert [p.identity for p in left.participants] == ["agent-ann"]


async def test_protected_sip_callers_are_never_transferred(
    livekit: LiveKitTarget, in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    await lkapi.sip.create_sip_participant(
        api.CreateSIPParticipantRequest(room_name="support", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142")
    )
    server = in_process(env=livekit.env(LIVEKIT_MCP_PROTECTED_KINDS="SIP"), toolsets="sip")
    async with Client(server) as client:
        refused = await fails(
            client, "transfer_sip_participant", room="support", identity="sip_+15550142", transfer_to="tel:+1555"
        )
    assert "refused by policy (protected_kinds)" in refused
    assert len((await lkapi.room.list_participants(api.ListParticipantsRequest(room="support"))).participants) == 1


async def test_a_missing_sip_service_is_one_line_naming_it(
    everything: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    # What livekit-server 1.13.5 answers when no SIP service is connected (tests/sandbox/test_sip_egress_ingress.py).
    await admin.fault(
        "SIP/CreateSIPParticipant", error=("unavailable", "twirp error unknown: no response from servers")
    )
    async with Client(everything) as client:
        said = await fails(
            client, "create_sip_participant", room="support", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142"
        )
    assert "LiveKit's SIP service is not running at " in said
    assert "no SIP service is connected to it" in said
    assert "nothing was done" in said
    assert "\n" not in said
    # Without Redis livekit-server has no SIP store: a read that meets it once is not retried (a retry would pass).
    await admin.fault("SIP/ListSIPInboundTrunk", error=("internal", "sip not connected (redis required)"), times=1)
    async with Client(everything) as client:
        said = await fails(client, "list_sip_trunks")
    assert "ListSIPInboundTrunk was answered 'sip not connected (redis required)'" in said
    assert "livekit-server runs without Redis, which its SIP service needs" in said


async def test_the_demo_sandbox_has_a_phone_line_whose_caller_can_be_handed_over(
    in_process: InProcess,
) -> None:
    server = in_process(credentials="sandbox", toolsets="participants,sip")  # --sandbox
    async with Client(server) as client:
        trunks = await ok(client, "list_sip_trunks")
        (rule,) = (await ok(client, "list_sip_dispatch_rules"))["rules"]
        moved = await ok(
            client,
            "transfer_sip_participant",
            room="phone-intake-7",
            identity="sip_+15550100007",
            transfer_to="tel:+1555",
        )
        left = await ok(client, "list_participants", room="phone-intake-7")
    assert [(t["direction"], t["name"]) for t in trunks["trunks"]] == [
        ("inbound", "Main line"),
        ("outbound", "Provider"),
    ]
    assert (rule["kind"], rule["room_prefix"], rule["agents"]) == ("individual", "phone-intake-", ["intake-agent"])
    assert moved["sip_call_id"] == "SCL_demo7"
    assert [p["kind"] for p in left["participants"]] == ["AGENT"]


# --- egress and ingress on the sandbox ---------------------------------------------------------------


async def test_a_room_is_recorded_to_the_configured_stream_and_the_stop_names_what_stops(
    confirming: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI, caplog: pytest.LogCaptureFixture
) -> None:
    await admin.join("town-hall", "mayor")
    async with Client(confirming) as client:
        started = await call(client, "start_room_egress", room="town-hall")
        assert not started.is_error, text(started)
        egress_id = started.structured_content["egress"]["egress_id"]
        assert f"as {egress_id} to stream rtmp://live.example.com, ACTIVE" in text(started)
        listed = await ok(client, "list_egress", room="town-hall", active=True)
        preview = await call(client, "stop_egress", egress_id=egress_id)
        stopped = await ok(
            client,
            "stop_egress",
            egress_id=egress_id,
            confirm_token=preview.structured_content["confirm_token"],
        )
    assert [e["egress_id"] for e in listed["egress"]] == [egress_id]
    assert f"stops the room_composite recording {egress_id} of room 'town-hall' (ACTIVE since" in text(preview)
    assert stopped["egress"]["status"] == "ENDING"
    (info,) = (await lkapi.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
    assert info.status == api.EgressStatus.EGRESS_COMPLETE
    assert list(info.room_composite.stream_outputs[0].urls) == [STREAM]  # what LiveKit was given: the whole URL
    for shown in (
        text(started),
        json.dumps(started.structured_content),
        text(preview),
        json.dumps(stopped),
        server_log(caplog),
    ):
        assert STREAM_KEY not in shown


async def test_without_a_configured_output_nothing_is_recorded(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("town-hall", "mayor")
    async with Client(in_process(toolsets="egress")) as client:
        said = await fails(client, "start_room_egress", room="town-hall")
    assert "LIVEKIT_MCP_EGRESS_OUTPUT" in said
    assert "never taken from chat" in said
    assert list((await lkapi.egress.list_egress(api.ListEgressRequest())).items) == []


async def test_an_ingress_key_is_shown_once_never_logged_and_deleting_it_asks_first(
    confirming: MCPServer[Any],
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    audit_log: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Client(confirming) as client:
        made = (await ok(client, "create_ingress", input_type="RTMP", room="stage", participant_identity="obs"))[
            "ingress"
        ]
        listed = await call(client, "list_ingress", room="stage")
        preview = await call(client, "delete_ingress", ingress_id=made["ingress_id"])
        token = preview.structured_content["confirm_token"]
        await ok(client, "delete_ingress", ingress_id=made["ingress_id"], confirm_token=token)
    key = made["stream_key"]
    assert len(key) == 12
    assert key not in text(listed)
    assert key not in json.dumps(listed.structured_content)
    assert listed.structured_content["ingress"][0]["stream_key"] == "…" + key[-4:]
    assert "This deletes RTMP ingress" in text(preview)
    assert "nothing is streaming now" in text(preview)
    assert list((await lkapi.ingress.list_ingress(api.ListIngressRequest())).items) == []
    logged = await anyio.Path(audit_log).read_text()
    assert '"create_ingress"' in logged
    assert '"delete_ingress"' in logged
    assert key not in logged
    assert key not in server_log(caplog)


# --- policy: protected rooms, roles, the rate of destructive actions -----------------------------------


async def test_protected_rooms_are_never_dialled_into_recorded_or_streamed_into_nor_their_recordings_stopped(
    livekit: LiveKitTarget, in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    await admin.join("board", "chair")
    output = api.EncodedFileOutput(filepath="board.mp4")
    recording = api.RoomCompositeEgressRequest(room_name="board", file_outputs=[output])
    egress_id = (await lkapi.egress.start_room_composite_egress(recording)).egress_id
    env = livekit.env(LIVEKIT_MCP_PROTECTED_ROOMS="board", LIVEKIT_MCP_EGRESS_OUTPUT=STREAM)
    async with Client(in_process(env=env, toolsets=ALL)) as client:
        refusals = [
            await fails(
                client, "create_sip_participant", room="board", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+1555"
            ),
            await fails(client, "start_room_egress", room="board"),
            await fails(client, "create_ingress", input_type="WHIP", room="board", participant_identity="cam"),
            await fails(client, "stop_egress", egress_id=egress_id),
        ]
        listed = await ok(client, "list_egress", room="board")  # seen, never changed
    assert all("refused by policy (protected_rooms)" in r for r in refusals), refusals
    assert [e["egress_id"] for e in listed["egress"]] == [egress_id]
    assert await identities(lkapi, "board") == {"chair", egress_id}
    assert list((await lkapi.ingress.list_ingress(api.ListIngressRequest())).items) == []
    (info,) = (await lkapi.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
    assert info.status == api.EgressStatus.EGRESS_ACTIVE


async def test_a_read_only_caller_lists_but_changes_nothing_and_the_rate_limit_counts_every_destructive_tool(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("stage", "host")
    env = livekit.env(
        LIVEKIT_MCP_EGRESS_OUTPUT=STREAM,
        LIVEKIT_MCP_MAX_DESTRUCTIVE_PER_MINUTE="1",
        LIVEKIT_MCP_AUTH_TOKENS=f"viewer:read:{READ_TOKEN},operator:write:{WRITE_TOKEN}",
    )
    async with http_in_process(env, toolsets=ALL) as server:
        async with server.client(bearer(READ_TOKEN)) as viewer:
            assert (await ok(viewer, "list_ingress"))["ingress"] == []
            refused = await fails(viewer, "create_ingress", input_type="RTMP", room="stage", participant_identity="cam")
        assert "refused by policy (role)" in refused
        async with server.client(bearer(WRITE_TOKEN)) as operator:
            ingress_id = (
                await ok(operator, "create_ingress", input_type="RTMP", room="stage", participant_identity="cam")
            )["ingress"]["ingress_id"]
            egress_id = (await ok(operator, "start_room_egress", room="stage"))["egress"]["egress_id"]
            await ok(operator, "delete_ingress", ingress_id=ingress_id)
            beyond = await fails(operator, "stop_egress", egress_id=egress_id)
    assert "refused by policy (max_destructive_per_minute)" in beyond
    (info,) = (await lkapi.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
    assert info.status == api.EgressStatus.EGRESS_ACTIVE


@pytest.mark.parametrize("output", ["https://bucket.example.com/rec.mp4", "s3://key:secret@bucket/x.mp4", " "])
def test_an_egress_output_that_is_neither_a_file_path_nor_a_stream_is_refused_at_start(
    livekit: LiveKitTarget, output: str
) -> None:
    line = refused(livekit.env(LIVEKIT_MCP_EGRESS_OUTPUT=output))
    assert "LIVEKIT_MCP_EGRESS_OUTPUT must be a file path" in line
    assert "secret" not in line


# --- bad input: the field, what is allowed, and nothing sent ------------------------------------------


async def test_each_bad_argument_names_its_field_and_what_is_allowed_and_nothing_reaches_livekit(
    everything: MCPServer[Any], admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice")
    await admin.fault("*", error=("failed_precondition", "injected-first-call"), times=1)
    dial = {"room": "r", "sip_trunk_id": "ST_abc", "sip_call_to": "+15550100"}
    move = {"room": "r", "identity": "alice", "transfer_to": "tel:+15550100"}
    ingress = {"input_type": "RTMP", "room": "r", "participant_identity": "obs"}
    bad: list[tuple[str, dict[str, Any], str, str]] = [
        ("create_sip_participant", {**dial, "sip_call_to": "555 0100"}, "sip_call_to", "2-20 digits"),
        ("create_sip_participant", {**dial, "sip_call_to": "sip:bob@x"}, "sip_call_to", "E.164"),
        ("create_sip_participant", {**dial, "sip_call_to": "+1" + "5" * 20}, "sip_call_to", "at most 21"),
        ("create_sip_participant", {**dial, "sip_trunk_id": "abc"}, "sip_trunk_id", "'ST_' then letters or digits"),
        ("create_sip_participant", {**dial, "sip_trunk_id": "ST_../x"}, "sip_trunk_id", "'ST_' then"),
        ("create_sip_participant", {**dial, "participant_identity": " "}, "participant_identity", "must not be empty"),
        ("transfer_sip_participant", {**move, "transfer_to": "+15550100"}, "transfer_to", "tel:+15550100 or sip:"),
        ("transfer_sip_participant", {**move, "transfer_to": "sip:a b@x"}, "transfer_to", "sip:user@host"),
        ("transfer_sip_participant", {**move, "transfer_to": "tel:+1<x>"}, "transfer_to", "tel:"),
        ("stop_egress", {"egress_id": "EG_"}, "egress_id", "'EG_' then letters or digits"),
        ("stop_egress", {"egress_id": "IN_abc"}, "egress_id", "an egress id"),
        ("delete_ingress", {"ingress_id": "IN_a/b"}, "ingress_id", "an ingress id"),
        ("create_ingress", {**ingress, "input_type": "RTSP"}, "input_type", "'RTMP', 'WHIP' or 'URL'"),
        ("create_ingress", {**ingress, "input_type": "URL", "url": "ftp://x"}, "url", "http://, https:// or srt://"),
        ("create_ingress", {**ingress, "participant_identity": ""}, "participant_identity", "at least 1"),
        ("list_egress", {"room": "a\nb"}, "room", "control characters"),
    ]
    async with Client(everything) as client:
        for tool, args, field, allowed in bad:
            message = await fails(client, tool, **args)
            assert NOTHING_SENT in message, (tool, args, message)
            assert f"{field}:" in message, (tool, args, message)
            assert allowed in message, (tool, args, message)
        # Checked by the tool, before LiveKit: a URL ingress needs its URL, a pushed one takes none.
        assert "invalid 'url': required with input_type URL" in await fails(
            client, "create_ingress", **{**ingress, "input_type": "URL"}
        )
        assert "invalid 'url': only for input_type URL" in await fails(
            client, "create_ingress", **{**ingress, "url": "https://x"}
        )
    # The injected failure is still waiting for the first call that reaches LiveKit: none did.
    assert (await admin.state())["faults"]


# --- the real livekit-server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_everything(real_target: LiveKitTarget, serve_http: Callable[..., Served]) -> Served:
    return serve_http("--toolsets", ALL, env=real_target.env(LIVEKIT_MCP_EGRESS_OUTPUT=STREAM))


@pytest.fixture
async def real_room(real_lkapi: api.LiveKitAPI) -> AsyncIterator[str]:
    name = unique("sip")
    await real_lkapi.room.create_room(api.CreateRoomRequest(name=name))
    yield name
    with contextlib.suppress(api.TwirpError):
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_real_trunks_and_rules_are_listed_without_passwords_or_pins(
    real_everything: Served, real_lkapi: api.LiveKitAPI, real_room: str
) -> None:
    out = await outbound_trunk(real_lkapi, unique("desk"))
    trunk_id, rule_id = await inbound_trunk_and_rule(real_lkapi, real_room)
    try:
        async with Client(real_everything.url) as client:
            trunks = await ok(client, "list_sip_trunks")
            rules = await ok(client, "list_sip_dispatch_rules")
        listed = {t["id"]: t for t in trunks["trunks"]}
        assert (listed[out.sip_trunk_id]["address"], listed[out.sip_trunk_id]["numbers"]) == (
            "sip.example.com",
            ["+15550100"],
        )
        assert listed[trunk_id]["direction"] == "inbound"
        rule = next(r for r in rules["rules"] if r["id"] == rule_id)
        assert (rule["room"], rule["agents"], rule["pin_required"]) == (real_room, ["receptionist"], True)
        shown = json.dumps([trunks, rules])
        assert "pass-word" not in shown
        assert "in-pw" not in shown
        assert "8642" not in shown
    finally:
        await real_lkapi.sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule_id))
        for trunk in (out.sip_trunk_id, trunk_id):
            await real_lkapi.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk))


async def test_real_dial_out_and_transfer_without_a_sip_service_say_so_and_change_nothing(
    real_everything: Served, real_lkapi: api.LiveKitAPI, real_people: RealPeople, real_room: str
) -> None:
    trunk = await outbound_trunk(real_lkapi, unique("desk"))
    # A participant that looks like a phone caller to LiveKit: kind sip, with the call id a SIP service would set.
    await real_people.join(
        real_room, "caller", kind="sip", attributes={"sip.callID": "SCL_fake", "sip.phoneNumber": "+1555"}
    )
    try:
        async with Client(real_everything.url) as client:
            dialled = await fails(
                client,
                "create_sip_participant",
                room=real_room,
                sip_trunk_id=trunk.sip_trunk_id,
                sip_call_to="+15550142",
            )
            moved = await fails(
                client, "transfer_sip_participant", room=real_room, identity="caller", transfer_to="tel:+15550177"
            )
            missing = await fails(
                client, "create_sip_participant", room=real_room, sip_trunk_id="ST_nothere", sip_call_to="+15550142"
            )
    finally:
        await real_lkapi.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
    for said, method in ((dialled, "CreateSIPParticipant"), (moved, "TransferSIPParticipant")):
        assert "LiveKit's SIP service is not running at " in said, said
        assert f"{method} was answered 'twirp error unknown: no response from servers'" in said
    assert "SIP trunk 'ST_nothere' does not exist; outbound trunks:" in missing
    inside = await real_lkapi.room.list_participants(api.ListParticipantsRequest(room=real_room))
    assert [p.identity for p in inside.participants] == ["caller"]


async def test_real_egress_is_listed_and_starting_one_without_an_egress_service_says_so(
    real_everything: Served, real_lkapi: api.LiveKitAPI, real_room: str
) -> None:
    async with Client(real_everything.url) as client:
        listed = await ok(client, "list_egress", room=real_room)
        gone = await fails(client, "stop_egress", egress_id="EG_nothere")
        started = await fails(client, "start_room_egress", room=real_room)
    assert listed == {"egress": []}
    assert "egress 'EG_nothere' does not exist; list_egress shows the ones that do" in gone
    assert "LiveKit's egress service is not running at " in started, started
    assert list((await real_lkapi.egress.list_egress(api.ListEgressRequest(room_name=real_room))).items) == []


async def test_real_ingress_is_created_listed_and_deleted_and_a_url_ingress_needs_the_service(
    real_everything: Served, real_lkapi: api.LiveKitAPI, real_room: str
) -> None:
    async with Client(real_everything.url) as client:
        made = (await ok(client, "create_ingress", input_type="WHIP", room=real_room, participant_identity="cam"))[
            "ingress"
        ]
        (info,) = (await real_lkapi.ingress.list_ingress(api.ListIngressRequest(room_name=real_room))).items
        listed = await ok(client, "list_ingress", room=real_room)
        pulled = await fails(
            client,
            "create_ingress",
            input_type="URL",
            room=real_room,
            participant_identity="tv",
            url="https://1.1.1.1/a",  # a public address: the pull check lets it through to LiveKit
        )
        await ok(client, "delete_ingress", ingress_id=made["ingress_id"])
    assert (info.ingress_id, info.stream_key, info.participant_identity) == (
        made["ingress_id"],
        made["stream_key"],
        "cam",
    )
    assert listed["ingress"][0]["stream_key"] == "…" + made["stream_key"][-4:]
    assert "LiveKit's ingress service is not running at " in pulled, pulled
    assert list((await real_lkapi.ingress.list_ingress(api.ListIngressRequest(room_name=real_room))).items) == []
