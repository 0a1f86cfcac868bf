"""The SIP service: trunks and dispatch rules as configured, calls dialled out and transferred."""

from __future__ import annotations

from livekit_mcp.errors import TransferFailed
from livekit_mcp.models import SipCall, SipDispatchRule, SipTrunk

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._imports import api

# SIPTransferReason (livekit/protocol livekit_sip.proto), as a person would say it.
TRANSFER_REASONS = {
    "STR_COMPLETED": "the transferee answered",
    "STR_CALL_ENDED": "the call ended before the transfer completed (a hang-up, the room deleted, or ended here)",
    "STR_REJECTED": "the transferee, or its provider, rejected the transfer",
    "STR_RINGING_TIMEOUT": "the transferee did not answer in time",
    "STR_SUBSCRIPTION_TERMINATED": "the provider stopped reporting the transfer without a final answer",
    "STR_CANCELED": "the transfer was canceled through the API",
}

SIP_LIMIT = 30.0
"""Seconds LiveKit may take to dial out or transfer a call (livekit-server's own limit for both, without waiting
for an answer); our call waits a little longer, so that LiveKit's answer, not our clock, says how it went."""


class Sip(Adapter):
    @read("ListSIPInboundTrunk", service="SIP")
    async def list_inbound_trunks(self, send: Send) -> list[SipTrunk]:
        found = await send(lambda: self.lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest()))
        return [_convert.inbound_trunk(t) for t in found.items]

    @read("ListSIPOutboundTrunk", service="SIP")
    async def list_outbound_trunks(self, send: Send) -> list[SipTrunk]:
        found = await send(lambda: self.lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest()))
        return [_convert.outbound_trunk(t) for t in found.items]

    @read("ListSIPDispatchRule", service="SIP")
    async def list_sip_dispatch_rules(self, send: Send) -> list[SipDispatchRule]:
        found = await send(lambda: self.lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest()))
        rules = [_convert.dispatch_rule(r) for r in found.items]
        # A rule sending every call to one room shows that room: one outside allowed_rooms stays unseen.
        return [r for r in rules if r.room is None or self.policy.visible(r.room)]

    @change("CreateSIPParticipant", verified_by="list_participants", service="SIP")
    async def create_sip_participant(
        self, send: Send, room: str, sip_trunk_id: str, sip_call_to: str, *, identity: str, name: str
    ) -> SipCall:
        """Dials `sip_call_to` through the outbound trunk; LiveKit answers once the SIP participant is in the room
        (before the phone is picked up)."""
        request = api.CreateSIPParticipantRequest(
            room_name=room,
            sip_trunk_id=sip_trunk_id,
            sip_call_to=sip_call_to,
            participant_identity=identity,
            participant_name=name,
        )
        made = await send(
            lambda: self.lk.sip.create_sip_participant(request, timeout=SIP_LIMIT),
            room=room,
            item=sip_trunk_id,
            limit=max(self.path.timeout, SIP_LIMIT + 5),
        )
        return SipCall(
            room=room,
            sip_trunk_id=sip_trunk_id,
            sip_call_to=sip_call_to,
            participant_identity=made.participant_identity or None,
            participant_sid=made.participant_id or None,
            sip_call_id=made.sip_call_id or None,
        )

    @change("TransferSIPParticipant", verified_by="list_participants", service="SIP")
    async def transfer_sip_participant(self, send: Send, room: str, identity: str, transfer_to: str) -> str | None:
        """The transfer's status as LiveKit reports it ("successful", "ongoing"), or None when the server reports
        none. livekit-server 1.13.6 and later answer the SIP service's outcome (pkg/service/sip.go:683-735 of
        1.13.11), and a failed transfer comes without a Twirp error: raised here as TransferFailed. Up to 1.13.5 the
        answer is Empty, which decodes as status 0 (ONGOING) with no transfer id and no reason: no outcome."""
        request = api.TransferSIPParticipantRequest(
            room_name=room, participant_identity=identity, transfer_to=transfer_to
        )
        outcome = await send(
            lambda: self.lk.sip.transfer_sip_participant(request, timeout=SIP_LIMIT),
            room=room,
            identity=identity,
            limit=max(self.path.timeout, SIP_LIMIT + 5),
        )
        status = api.SIPTransferStatus.Name(outcome.status)
        reason = api.SIPTransferReason.Name(outcome.reason)
        if status == "STS_TRANSFER_FAILED":
            sip = (
                f"{outcome.sip_status.code} {outcome.sip_status.status}".strip()
                if outcome.HasField("sip_status")
                else ""
            )
            raise TransferFailed(
                room, identity, transfer_to, TRANSFER_REASONS.get(reason, "LiveKit gave no reason"), sip
            )
        if status == "STS_TRANSFER_ONGOING" and not outcome.transfer_id and reason == "STR_UNSPECIFIED":
            return None  # Empty: a server before 1.13.6, which answers once the SIP service has done the transfer
        return status.removeprefix("STS_TRANSFER_").lower()
