"""Demo rooms that tell an operator's story; names and identities are fixed, sids are not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livekit.protocol import agent_dispatch as proto_dispatch
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

if TYPE_CHECKING:
    from ._state import State

MIC: dict[str, Any] = {"type": "AUDIO", "source": "MICROPHONE", "name": "microphone"}
CAMERA: dict[str, Any] = {"type": "VIDEO", "source": "CAMERA", "name": "camera"}
SCREEN: dict[str, Any] = {"type": "VIDEO", "source": "SCREEN_SHARE", "name": "screen", "width": 1920, "height": 1080}
AGENT_VOICE: dict[str, Any] = {"type": "AUDIO", "source": "MICROPHONE", "name": "agent_voice"}
VIEWERS = 40


def _room_with_agent(state: State, room: str, agent_name: str, metadata: str) -> None:
    state.create_room(
        proto_room.CreateRoomRequest(
            name=room, metadata=metadata, agents=[proto_dispatch.RoomAgentDispatch(agent_name=agent_name)]
        )
    )
    dispatch = next(iter(state.rooms[room].dispatches.values()))
    state.join_agent(room, agent_name, dispatch_id=dispatch.id, state="listening", tracks=[AGENT_VOICE])


def seed_demo(state: State) -> None:
    # A customer on a support call with a voice agent.
    _room_with_agent(state, "support-call-1042", "support-agent", '{"ticket": 1042, "queue": "billing"}')
    state.join(
        "support-call-1042",
        "customer-maria",
        name="Maria Lopez",
        metadata='{"plan": "pro"}',
        tracks=[MIC],
    )

    # A town hall: one presenter sharing camera, mic and screen; many viewers who only watch.
    state.create_room(proto_room.CreateRoomRequest(name="town-hall", max_participants=500))
    state.join("town-hall", "presenter-dana", name="Dana Kim", tracks=[CAMERA, MIC, SCREEN])
    viewer_permission = {"can_subscribe": True, "can_publish": False, "can_publish_data": True}
    for n in range(1, VIEWERS + 1):
        state.join("town-hall", f"viewer-{n:02d}", name=f"Viewer {n}", permission=viewer_permission)

    # A phone line: calls on it get a room of their own with the intake agent; calls out go through a provider.
    line = proto_sip.SIPInboundTrunkInfo(name="Main line", numbers=["+15550199999"])
    inbound = state.sip.create_inbound(proto_sip.CreateSIPInboundTrunkRequest(trunk=line))
    provider = proto_sip.SIPOutboundTrunkInfo(name="Provider", address="sip.example.com", numbers=["+15550199999"])
    state.sip.create_outbound(proto_sip.CreateSIPOutboundTrunkRequest(trunk=provider))
    each_call = proto_sip.SIPDispatchRuleIndividual(room_prefix="phone-intake-")
    state.sip.create_rule(
        proto_sip.CreateSIPDispatchRuleRequest(
            name="Intake",
            rule=proto_sip.SIPDispatchRule(dispatch_rule_individual=each_call),
            trunk_ids=[inbound.sip_trunk_id],
            room_config=proto_room.RoomConfiguration(
                agents=[proto_dispatch.RoomAgentDispatch(agent_name="intake-agent")]
            ),
        )
    )

    # A phone call on that line: a SIP caller and the intake agent that answers it.
    _room_with_agent(state, "phone-intake-7", "intake-agent", "")
    state.join(
        "phone-intake-7",
        "sip_+15550100007",
        kind="SIP",
        name="Phone +1 555 0100 007",
        attributes={
            "sip.callID": "SCL_demo7",
            "sip.trunkID": inbound.sip_trunk_id,
            "sip.phoneNumber": "+15550100007",
            "sip.trunkPhoneNumber": "+15550199999",
            "sip.callStatus": "active",
        },
        tracks=[MIC],
    )

    # An agent from before agent kinds existed: STANDARD, recognisable only by permission.agent.
    state.join(
        "legacy-bot-room",
        "legacy-bot",
        name="Legacy bot",
        attributes={"lk.agent_name": "legacy-bot"},
        permission={"can_subscribe": True, "can_publish": True, "can_publish_data": True, "agent": True},
        tracks=[MIC],
    )
    state.join("legacy-bot-room", "visitor-sam", name="Sam", tracks=[MIC])

    # Nobody here yet.
    state.create_room(proto_room.CreateRoomRequest(name="standup", empty_timeout=600))

    # Simulated workers serve the demo agents: dispatching one of them again brings a new agent at once.
    state.set_workers(["support-agent", "intake-agent"])
