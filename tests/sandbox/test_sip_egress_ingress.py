"""The SIP, Egress and Ingress services on both backends: the trunk and dispatch-rule store, the egress and ingress
lists, their grants and errors, and what livekit-server 1.13.5 answers when no SIP, egress or ingress service runs
beside it (the real target has none). What a connected service does (dial out, transfer, record) is the sandbox's
alone, and marked so."""

from __future__ import annotations

import pytest
from livekit import api

from .conftest import Twirp, real_only, sandbox_only
from .support import Crowd, code_of, unique

pytestmark = pytest.mark.anyio

NO_SERVICE = ("unavailable", "twirp error unknown: no response from servers", 503)
DENIED = {"code": "unauthenticated", "msg": "permissions denied"}


def outbound(name: str, **fields: object) -> api.CreateSIPOutboundTrunkRequest:
    trunk = api.SIPOutboundTrunkInfo(name=name, **fields)  # type: ignore[arg-type]
    return api.CreateSIPOutboundTrunkRequest(trunk=trunk)


async def new_outbound(lk: api.LiveKitAPI) -> api.SIPOutboundTrunkInfo:
    request = outbound(unique("out"), address="sip.example.com", numbers=["+15550100"])
    request.trunk.auth_username, request.trunk.auth_password = "user", "pass-word"
    return await lk.sip.create_outbound_trunk(request)


# --- trunks and dispatch rules: livekit-server's own store ----------------------------------------------


async def test_trunks_are_stored_listed_and_deleted(lk: api.LiveKitAPI) -> None:
    out = await new_outbound(lk)
    inbound = api.SIPInboundTrunkInfo(name=unique("in"), numbers=["+15550199"], allowed_addresses=["10.0.0.1"])
    made = await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=inbound))
    assert out.sip_trunk_id.startswith("ST_")
    assert made.sip_trunk_id.startswith("ST_")
    listed_out = {
        t.sip_trunk_id: t for t in (await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items
    }
    listed_in = {t.sip_trunk_id: t for t in (await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items}
    assert (listed_out[out.sip_trunk_id].address, list(listed_out[out.sip_trunk_id].numbers)) == (
        "sip.example.com",
        ["+15550100"],
    )
    assert listed_out[out.sip_trunk_id].auth_password == "pass-word"  # LiveKit hands it out: the seam drops it
    assert list(listed_in[made.sip_trunk_id].allowed_addresses) == ["10.0.0.1"]
    for trunk_id in (out.sip_trunk_id, made.sip_trunk_id):
        assert (await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))).sip_trunk_id == trunk_id
    after = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    assert out.sip_trunk_id not in {t.sip_trunk_id for t in after.items}


async def test_a_trunk_without_what_livekit_requires_is_refused(lk: api.LiveKitAPI) -> None:
    assert await code_of(lk.sip.create_outbound_trunk(outbound("x"))) == (
        "invalid_argument",
        "no trunk numbers specified",
        400,
    )
    assert await code_of(lk.sip.create_outbound_trunk(outbound("x", numbers=["+15550100"]))) == (
        "invalid_argument",
        "no outbound address specified",
        400,
    )
    bare = api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="x"))
    assert await code_of(lk.sip.create_inbound_trunk(bare)) == (
        "invalid_argument",
        "for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers",
        400,
    )


async def test_deleting_a_trunk_that_does_not_exist_succeeds_but_a_missing_rule_is_not_found(
    lk: api.LiveKitAPI,
) -> None:
    gone = await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id="ST_nothere"))
    assert gone.sip_trunk_id == "ST_nothere"
    missing = api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id="SDR_nothere")
    assert await code_of(lk.sip.delete_dispatch_rule(missing)) == (
        "not_found",
        "requested sip dispatch rule does not exist",
        404,
    )


async def test_a_dispatch_rule_keeps_its_room_pin_trunks_and_agents(lk: api.LiveKitAPI) -> None:
    room = unique("calls")
    rule = api.CreateSIPDispatchRuleRequest(
        rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=room, pin="1234")),
        trunk_ids=["ST_sometrunk"],
        name=unique("rule"),
        room_config=api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name="receptionist")]),
    )
    made = await lk.sip.create_dispatch_rule(rule)
    assert made.sip_dispatch_rule_id.startswith("SDR_")
    listed = {
        r.sip_dispatch_rule_id: r for r in (await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())).items
    }
    got = listed[made.sip_dispatch_rule_id]
    assert (got.rule.dispatch_rule_direct.room_name, got.rule.dispatch_rule_direct.pin) == (room, "1234")
    assert list(got.trunk_ids) == ["ST_sometrunk"]
    assert [a.agent_name for a in got.room_config.agents] == ["receptionist"]
    await lk.sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=made.sip_dispatch_rule_id))


async def test_sip_egress_and_ingress_methods_need_their_grants(twirp: Twirp) -> None:
    admin_of_everything = api.VideoGrants(room_admin=True, room_list=True, room_create=True, room="r")
    for method in ("SIP/ListSIPInboundTrunk", "SIP/ListSIPDispatchRule", "Egress/ListEgress", "Ingress/ListIngress"):
        reply = await twirp(method, {}, grants=admin_of_everything)
        assert (reply.status, reply.json()) == (401, DENIED), method
    dial = {"room_name": "r", "sip_trunk_id": "ST_x", "sip_call_to": "+15550100"}
    reply = await twirp("SIP/CreateSIPParticipant", dial, grants=admin_of_everything)
    assert (reply.status, reply.json()) == (401, DENIED)


# --- dialling out and transferring ----------------------------------------------------------------------


async def test_dialling_through_a_trunk_that_does_not_exist_is_not_found(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateSIPParticipantRequest(room_name=room, sip_trunk_id="ST_nothere", sip_call_to="+15550100")
    assert await code_of(lk.sip.create_sip_participant(request)) == (
        "not_found",
        "requested sip trunk does not exist",
        404,
    )


async def test_a_transfer_is_checked_then_needs_the_participant(lk: api.LiveKitAPI, room: str) -> None:
    bad = api.TransferSIPParticipantRequest(room_name=room, participant_identity="caller", transfer_to="+15550101")
    assert await code_of(lk.sip.transfer_sip_participant(bad)) == (
        "invalid_argument",
        "transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)",
        400,
    )
    nobody = api.TransferSIPParticipantRequest(room_name=room, participant_identity="caller", transfer_to="tel:+1555")
    assert await code_of(lk.sip.transfer_sip_participant(nobody)) == (
        "not_found",
        "twirp error unknown: participant does not exist",
        404,
    )


async def test_only_a_participant_with_a_sip_call_can_be_transferred(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    await crowd.join(room, "alice")
    not_a_call = api.TransferSIPParticipantRequest(room_name=room, participant_identity="alice", transfer_to="tel:+1")
    assert await code_of(lk.sip.transfer_sip_participant(not_a_call)) == (
        "invalid_argument",
        "twirp error unknown: no SIP session associated with participant",
        400,
    )


@real_only  # the sandbox plays a connected SIP service: its dial-out is tested below
async def test_without_a_sip_service_a_dial_out_is_answered_by_nobody(lk: api.LiveKitAPI, room: str) -> None:
    trunk = await new_outbound(lk)
    request = api.CreateSIPParticipantRequest(room_name=room, sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+1555")
    assert await code_of(lk.sip.create_sip_participant(request)) == NO_SERVICE
    await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))


@sandbox_only
async def test_a_dial_out_brings_a_sip_participant_that_a_transfer_takes_away(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    trunk = await new_outbound(lk)
    request = api.CreateSIPParticipantRequest(room_name=room, sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142")
    made = await lk.sip.create_sip_participant(request)
    assert (made.participant_identity, made.room_name) == ("sip_+15550142", room)
    assert made.sip_call_id.startswith("SCL_")
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=made.participant_identity))
    assert p.kind == api.ParticipantInfo.Kind.SIP
    assert (p.attributes["sip.callID"], p.attributes["sip.phoneNumber"]) == (made.sip_call_id, "+15550142")
    await crowd.join(room, "alice")
    transfer = api.TransferSIPParticipantRequest(
        room_name=room, participant_identity=made.participant_identity, transfer_to="sip:desk@example.com"
    )
    await lk.sip.transfer_sip_participant(transfer)
    left = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    assert [q.identity for q in left.participants] == ["alice"]


# --- egress ---------------------------------------------------------------------------------------------


async def test_the_egress_list_of_a_room_without_recordings_is_empty_and_unknown_ids_are_not_found(
    lk: api.LiveKitAPI, room: str
) -> None:
    assert list((await lk.egress.list_egress(api.ListEgressRequest(room_name=room))).items) == []
    missing = ("not_found", "twirp error unknown: egress does not exist", 404)
    assert await code_of(lk.egress.list_egress(api.ListEgressRequest(egress_id="EG_nothere"))) == missing
    assert await code_of(lk.egress.stop_egress(api.StopEgressRequest(egress_id="EG_nothere"))) == missing


async def test_recording_a_room_that_does_not_exist_is_not_found(lk: api.LiveKitAPI) -> None:
    file = api.EncodedFileOutput(filepath="x.mp4")
    request = api.RoomCompositeEgressRequest(room_name=unique("ghost"), file_outputs=[file])
    assert await code_of(lk.egress.start_room_composite_egress(request)) == (
        "not_found",
        "twirp error unknown: requested room does not exist",
        404,
    )


@sandbox_only
async def test_a_recording_runs_with_its_recorder_in_the_room_until_it_is_stopped(
    lk: api.LiveKitAPI, room: str
) -> None:
    file = api.EncodedFileOutput(filepath="recordings/x.mp4")
    started = await lk.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(room_name=room, file_outputs=[file])
    )
    assert started.status == api.EgressStatus.EGRESS_ACTIVE
    active = await lk.egress.list_egress(api.ListEgressRequest(room_name=room, active=True))
    assert [e.egress_id for e in active.items] == [started.egress_id]
    inside = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    assert [(p.identity, p.kind) for p in inside.participants] == [(started.egress_id, api.ParticipantInfo.Kind.EGRESS)]
    stopped = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=started.egress_id))
    assert stopped.status == api.EgressStatus.EGRESS_ENDING
    assert list((await lk.egress.list_egress(api.ListEgressRequest(room_name=room, active=True))).items) == []
    assert list((await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants) == []
    assert await code_of(lk.egress.stop_egress(api.StopEgressRequest(egress_id=started.egress_id))) == (
        "failed_precondition",
        "egress with status EGRESS_COMPLETE cannot be stopped",
        412,
    )


# --- ingress --------------------------------------------------------------------------------------------


async def test_an_rtmp_ingress_is_kept_by_livekit_itself_listed_and_deleted(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateIngressRequest(
        input_type=api.IngressInput.RTMP_INPUT, room_name=room, participant_identity="streamer", name="n"
    )
    made = await lk.ingress.create_ingress(request)
    assert made.ingress_id.startswith("IN_")
    assert len(made.stream_key) == 12
    assert (made.url, made.reusable, made.enable_transcoding) == ("", True, True)
    by_room = await lk.ingress.list_ingress(api.ListIngressRequest(room_name=room))
    assert [(i.ingress_id, i.participant_identity) for i in by_room.items] == [(made.ingress_id, "streamer")]
    deleted = await lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=made.ingress_id))
    assert deleted.ingress_id == made.ingress_id
    assert list((await lk.ingress.list_ingress(api.ListIngressRequest(room_name=room))).items) == []
    missing = ("not_found", "twirp error unknown: ingress does not exist", 404)
    assert await code_of(lk.ingress.list_ingress(api.ListIngressRequest(ingress_id=made.ingress_id))) == missing
    assert await code_of(lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=made.ingress_id))) == missing


async def test_an_ingress_needs_a_participant_identity(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateIngressRequest(input_type=api.IngressInput.WHIP_INPUT, room_name=room)
    assert await code_of(lk.ingress.create_ingress(request)) == (
        "invalid_argument",
        "twirp error unknown: invalid ingress: no participant identity",
        400,
    )


@real_only  # the sandbox plays a connected ingress service
async def test_without_an_ingress_service_a_url_ingress_is_answered_by_nobody(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateIngressRequest(
        input_type=api.IngressInput.URL_INPUT, room_name=room, participant_identity="u", url="https://example.com/a"
    )
    assert await code_of(lk.ingress.create_ingress(request)) == NO_SERVICE
