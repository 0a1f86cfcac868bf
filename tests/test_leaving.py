"""Everything that can make someone leave goes through one confirmation flow (tools/_registry.py), whose plan names
who leaves and why: a dial-out or ingress taking an identity already present, an RPC or data message asking an
agent to end its session. Policy (protected_kinds) applies to that plan whichever tool made it; LiveKit's state is
checked afterwards (the same sid still there), on the sandbox and, for RPC and data, on the real server with a real
`livekit-agents` worker."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from livekit_mcp.models import SHUTDOWN_METHOD, SHUTDOWN_TOPIC
from livekit_mcp.sandbox import SandboxAdmin
from realkit.agents import RealAgentWorker
from realkit.participants import RealPeople
from realkit.processes import until
from tests.conftest import MODES, InProcess, LiveKitTarget, call, fails, ok, text
from tests.test_real_tools import one_agent, participants, unique
from tests.test_sip_egress_ingress import outbound_trunk

pytestmark = pytest.mark.anyio
ALL = "rooms,participants,agents,data,rpc,sip,ingress"


def server_env(target: LiveKitTarget, **settings: str) -> dict[str, str]:
    return target.env(LIVEKIT_MCP_CONFIRM="auto", **{f"LIVEKIT_MCP_{k.upper()}": v for k, v in settings.items()})


async def sid_of(lk: api.LiveKitAPI, room: str, identity: str) -> str:
    return (await participants(lk, room))[identity].sid


# --- On the sandbox -------------------------------------------------------------------------------------


async def test_a_dial_out_taking_a_protected_callers_identity_is_refused_and_they_stay(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    caller = await admin.join("support", "sip_+15550142", kind="SIP")
    agent = await admin.join_agent("support", "support-agent")
    server = in_process(env=server_env(livekit, protected_kinds="SIP,AGENT"), toolsets=ALL)
    dial = {"room": "support", "sip_trunk_id": trunk.sip_trunk_id, "sip_call_to": "+15550142"}
    async with Client(server) as client:
        by_default = await fails(client, "create_sip_participant", **dial)  # LiveKit's identity: sip_<number>
        named = await fails(client, "create_sip_participant", **dial, participant_identity=agent["identity"])
    for said in (by_default, named):
        assert "refused by policy (protected_kinds)" in said
    assert await sid_of(lkapi, "support", "sip_+15550142") == caller["sid"]
    assert await sid_of(lkapi, "support", agent["identity"]) == agent["sid"]


async def test_a_dial_out_replacing_someone_names_them_and_acts_only_on_that_plan(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    trunk = await outbound_trunk(lkapi)
    dana = await admin.join("support", "dana", name="Dana")
    server = in_process(env=server_env(livekit), toolsets=ALL)
    dial = {"room": "support", "sip_trunk_id": trunk.sip_trunk_id, "sip_call_to": "+15550142"}
    async with Client(server) as client:
        asked = await call(client, "create_sip_participant", **dial, participant_identity="dana")
        preview = asked.structured_content or {}
        assert preview["outcome"] == "confirmation_required"
        assert [(p["identity"], p["kind"]) for p in preview["leaving"]] == [("dana", "STANDARD")]
        assert "disconnecting STANDARD participant 'dana'" in preview["question"]
        assert await sid_of(lkapi, "support", "dana") == dana["sid"]  # nothing done yet
        # Dana rejoins (a new sid): the confirmation was about the one who was there, and is refused now.
        await admin.join("support", "dana", name="Dana")
        stale = await fails(
            client,
            "create_sip_participant",
            **dial,
            participant_identity="dana",
            confirm_token=preview["confirm_token"],
        )
        assert "target changed" in stale
        fresh = (await ok(client, "create_sip_participant", **dial, participant_identity="dana"))["confirm_token"]
        done = await ok(client, "create_sip_participant", **dial, participant_identity="dana", confirm_token=fresh)
    assert done["outcome"] == "done"
    now = (await participants(lkapi, "support"))["dana"]
    assert now.kind == api.ParticipantInfo.Kind.SIP  # the call took the identity


async def test_an_ingress_taking_a_protected_identity_is_refused_and_a_new_one_acts_at_once(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await admin.join_agent("support", "support-agent")
    server = in_process(env=server_env(livekit, protected_kinds="AGENT"), toolsets=ALL)
    async with Client(server) as client:
        refused = await fails(
            client, "create_ingress", input_type="RTMP", room="support", participant_identity=agent["identity"]
        )
        made = await ok(client, "create_ingress", input_type="RTMP", room="support", participant_identity="camera-1")
    assert "refused by policy (protected_kinds)" in refused
    assert made["outcome"] == "done"
    assert made["ingress"]["participant_identity"] == "camera-1"
    listed = await lkapi.ingress.list_ingress(api.ListIngressRequest(room_name="support"))
    assert [i.participant_identity for i in listed.items] == ["camera-1"]
    assert await sid_of(lkapi, "support", agent["identity"]) == agent["sid"]


async def test_the_shutdown_rpc_and_data_topic_are_confirmed_and_refused_for_protected_agents(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await admin.join_agent("support", "support-agent")
    await admin.join("support", "dana")
    protected = in_process(env=server_env(livekit, protected_kinds="AGENT"))
    confirming = in_process(env=server_env(livekit))
    rpc = {"room": "support", "destination_identity": agent["identity"], "method": SHUTDOWN_METHOD}
    data = {"room": "support", "data": "{}", "topic": SHUTDOWN_TOPIC}
    async with Client(protected) as client:
        refusals = [
            await fails(client, "perform_rpc", **rpc),
            await fails(client, "send_data", **data),
            await fails(client, "send_data", **data, destination_identities=[agent["identity"]]),
        ]
        other_topic = await ok(client, "send_data", room="support", data="{}", topic="chat")  # nobody leaves: at once
    for said in refusals:
        assert "refused by policy (protected_kinds): this would disconnect 1 AGENT" in said
    assert other_topic["outcome"] == "done"
    async with Client(confirming) as client:
        asked_rpc = await ok(client, "perform_rpc", **rpc)
        asked_data = await ok(client, "send_data", **data)
    for asked in (asked_rpc, asked_data):
        assert asked["outcome"] == "confirmation_required"
        assert [p["identity"] for p in asked["leaving"]] == [agent["identity"]]  # the agent, not dana
    assert await sid_of(lkapi, "support", agent["identity"]) == agent["sid"]


async def test_an_ingress_replacing_someone_is_confirmed_naming_them(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    dana = await admin.join("support", "dana", name="Dana")
    server = in_process(env=server_env(livekit), toolsets=ALL)
    args = {"input_type": "WHIP", "room": "support", "participant_identity": "dana"}
    async with Client(server) as client:
        preview = await ok(client, "create_ingress", **args)
        assert preview["outcome"] == "confirmation_required"
        assert [(p["identity"], p["why"]) for p in preview["leaving"]] == [
            ("dana", "replaced by the ingress, which publishes with their identity once its stream starts")
        ]
        assert (await lkapi.ingress.list_ingress(api.ListIngressRequest(room_name="support"))).items == []
        made = await ok(client, "create_ingress", **args, confirm_token=preview["confirm_token"])
    assert made["outcome"] == "done"
    listed = await lkapi.ingress.list_ingress(api.ListIngressRequest(room_name="support"))
    assert [i.participant_identity for i in listed.items] == ["dana"]
    assert await sid_of(lkapi, "support", "dana") == dana["sid"]  # until a stream starts, Dana is there


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_elicits_is_asked_about_the_shutdown_message_in_both_protocol_eras(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, mode: str
) -> None:
    agent = await admin.join_agent("support", "support-agent")
    await admin.join("support", "dana")
    server = in_process(env=server_env(livekit))
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": len(asked) > 1})

    data = {"room": "support", "data": "{}", "topic": SHUTDOWN_TOPIC}
    async with Client(server, mode=mode, elicitation_callback=user) as client:
        declined = await ok(client, "send_data", **data)
        sent = await ok(client, "send_data", **data)
        chat = await ok(client, "send_data", room="support", data="hello", topic="chat")
    assert len(asked) == 2, asked  # the chat message asked nothing
    assert f"to '{agent['identity']}' (support-agent) in room 'support'" in asked[0]
    assert declined["outcome"] == "declined"
    assert sent["outcome"] == "done"
    assert chat["outcome"] == "done"


# --- On the real server, with a real agent worker ----------------------------------------------------------


async def stays(lk: api.LiveKitAPI, room: str, identity: str, sid: str, seconds: float = 3.0) -> None:
    """Watches the room for a while: the participant stays, as the same sid (bounded, polled)."""
    with anyio.move_on_after(seconds):
        while True:
            assert (await participants(lk, room))[identity].sid == sid, f"'{identity}' left '{room}'"
            await anyio.sleep(0.2)


async def test_a_real_agent_is_not_made_to_leave_by_rpc_or_data_when_protected_and_leaves_once_confirmed(
    real_target: LiveKitTarget,
    in_process: InProcess,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    agent_worker: Callable[[str], RealAgentWorker],
) -> None:
    agent_worker("polite-helper")  # leaves when asked by the RPC method or the data topic
    room = unique("leave")
    await real_people.join(room, "customer")
    protected = in_process(env=server_env(real_target, protected_kinds="AGENT"))
    confirming = in_process(env=server_env(real_target))
    try:
        async with Client(protected) as client:
            await ok(client, "dispatch_agent", room=room, agent_name="polite-helper")
            identity = await one_agent(real_lkapi, room, "polite-helper")
            sid = await sid_of(real_lkapi, room, identity)
            rpc = {"room": room, "destination_identity": identity, "method": SHUTDOWN_METHOD}
            refused_rpc = await fails(client, "perform_rpc", **rpc)
            refused_data = await fails(client, "send_data", room=room, data="{}", topic=SHUTDOWN_TOPIC)
        assert "refused by policy (protected_kinds)" in refused_rpc
        assert "refused by policy (protected_kinds)" in refused_data
        await stays(real_lkapi, room, identity, sid)
        async with Client(confirming) as client:
            asked = await call(client, "perform_rpc", **rpc)
            preview = asked.structured_content or {}
            assert preview["outcome"] == "confirmation_required", text(asked)
            await stays(real_lkapi, room, identity, sid, seconds=1.0)
            done = await ok(client, "perform_rpc", **rpc, confirm_token=preview["confirm_token"])
        assert done["outcome"] == "answered"

        async def gone() -> bool:
            return identity not in await participants(real_lkapi, room)

        await until(f"agent '{identity}' leaves '{room}' once the confirmed request reached it", gone, 15)
    finally:
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
