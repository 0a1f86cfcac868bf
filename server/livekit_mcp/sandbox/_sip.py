"""The SIP service (livekit.SIP): trunks and dispatch rules as livekit-server 1.13.5 stores them, and what a
connected SIP service does with a dial-out (a SIP participant joins the room) and a transfer (the caller leaves).

The store's rules and messages are livekit-server's (pkg/service/sip.go, checked by tests/sandbox/); dialling
and transferring need LiveKit's SIP service, which the real server only reaches when one runs beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from livekit.protocol import sip as proto_sip

from ._ids import guid
from ._twirp import TwirpError, routed

if TYPE_CHECKING:
    from ._state import State

CALL_ID = "sip.callID"


def _invalid(msg: str) -> TwirpError:
    return TwirpError("invalid_argument", msg)


Trunk = TypeVar("Trunk", proto_sip.SIPInboundTrunkInfo, proto_sip.SIPOutboundTrunkInfo)


def _stored(trunk: Trunk, store: dict[str, Trunk]) -> Trunk:
    """A new trunk, kept under a new `ST_` id (LiveKit makes the id: a given one is refused)."""
    if trunk.sip_trunk_id:
        raise _invalid("trunk ID must be empty")
    made = type(trunk)()
    made.CopyFrom(trunk)
    made.sip_trunk_id = guid("ST_")
    store[made.sip_trunk_id] = made
    return made


def _listed(store: dict[str, Trunk], ids: Iterable[str]) -> list[Trunk]:
    wanted = set(ids)
    return [t for t in store.values() if not wanted or t.sip_trunk_id in wanted]


@dataclass
class SipStore:
    inbound: dict[str, proto_sip.SIPInboundTrunkInfo] = field(default_factory=dict)
    outbound: dict[str, proto_sip.SIPOutboundTrunkInfo] = field(default_factory=dict)
    rules: dict[str, proto_sip.SIPDispatchRuleInfo] = field(default_factory=dict)

    def clear(self) -> None:
        self.inbound.clear()
        self.outbound.clear()
        self.rules.clear()

    def create_inbound(self, req: proto_sip.CreateSIPInboundTrunkRequest) -> proto_sip.SIPInboundTrunkInfo:
        t = req.trunk
        if not ((t.auth_username and t.auth_password) or t.allowed_addresses or t.numbers):
            raise _invalid(
                "for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers"
            )
        return _stored(t, self.inbound)

    def create_outbound(self, req: proto_sip.CreateSIPOutboundTrunkRequest) -> proto_sip.SIPOutboundTrunkInfo:
        t = req.trunk
        if not t.numbers:
            raise _invalid("no trunk numbers specified")
        if not t.address:
            raise _invalid("no outbound address specified")
        return _stored(t, self.outbound)

    def list_inbound(self, req: proto_sip.ListSIPInboundTrunkRequest) -> proto_sip.ListSIPInboundTrunkResponse:
        return proto_sip.ListSIPInboundTrunkResponse(items=_listed(self.inbound, req.trunk_ids))

    def list_outbound(self, req: proto_sip.ListSIPOutboundTrunkRequest) -> proto_sip.ListSIPOutboundTrunkResponse:
        return proto_sip.ListSIPOutboundTrunkResponse(items=_listed(self.outbound, req.trunk_ids))

    def delete_trunk(self, req: proto_sip.DeleteSIPTrunkRequest) -> proto_sip.SIPTrunkInfo:
        if not req.sip_trunk_id:
            raise _invalid("trunk ID is required")
        self.inbound.pop(req.sip_trunk_id, None)
        self.outbound.pop(req.sip_trunk_id, None)
        return proto_sip.SIPTrunkInfo(sip_trunk_id=req.sip_trunk_id)

    def create_rule(self, req: proto_sip.CreateSIPDispatchRuleRequest) -> proto_sip.SIPDispatchRuleInfo:
        rule = req.dispatch_rule if req.HasField("dispatch_rule") else None
        source = rule.rule if rule is not None and rule.HasField("rule") else req.rule
        if source.WhichOneof("rule") is None:
            raise _invalid("missing rule")
        made = proto_sip.SIPDispatchRuleInfo()
        if rule is not None:
            made.CopyFrom(rule)
        else:
            made.rule.CopyFrom(req.rule)
            made.trunk_ids.extend(req.trunk_ids)
            made.name, made.metadata = req.name, req.metadata
            made.hide_phone_number = req.hide_phone_number
            made.inbound_numbers.extend(req.inbound_numbers)
            made.attributes.update(req.attributes)
            made.room_config.CopyFrom(req.room_config)
        made.sip_dispatch_rule_id = guid("SDR_")
        self.rules[made.sip_dispatch_rule_id] = made
        return made

    def list_rules(self, req: proto_sip.ListSIPDispatchRuleRequest) -> proto_sip.ListSIPDispatchRuleResponse:
        wanted = set(req.dispatch_rule_ids)
        items = [r for r in self.rules.values() if not wanted or r.sip_dispatch_rule_id in wanted]
        return proto_sip.ListSIPDispatchRuleResponse(items=items)

    def delete_rule(self, req: proto_sip.DeleteSIPDispatchRuleRequest) -> proto_sip.SIPDispatchRuleInfo:
        if not req.sip_dispatch_rule_id:
            raise _invalid("dispatch rule ID is required")
        rule = self.rules.pop(req.sip_dispatch_rule_id, None)
        if rule is None:
            raise TwirpError("not_found", "requested sip dispatch rule does not exist")
        return rule


def create_participant(state: State, req: proto_sip.CreateSIPParticipantRequest) -> proto_sip.SIPParticipantInfo:
    """Dial out, as a connected SIP service does: the SIP participant joins at once, its call still ringing."""
    if not req.sip_trunk_id and not req.HasField("trunk") and not req.sip_number:
        raise _invalid("missing sip trunk id and sip number")
    if not req.sip_call_to:
        raise _invalid("missing sip callee number")
    if "@" in req.sip_call_to:
        raise _invalid("SipCallTo should be a phone number or SIP user, not a full SIP URI")
    if not req.room_name:
        raise _invalid("missing room name")
    trunk = state.sip.outbound.get(req.sip_trunk_id) if req.sip_trunk_id else None
    if req.sip_trunk_id and trunk is None:
        raise TwirpError("not_found", "requested sip trunk does not exist")
    call_id = guid("SCL_")
    attributes = {
        CALL_ID: call_id,
        "sip.callStatus": "dialing",
        "sip.phoneNumber": req.sip_call_to,
        "sip.trunkID": req.sip_trunk_id,
        **dict(req.participant_attributes),
    }
    if trunk is not None and trunk.numbers:
        attributes["sip.trunkPhoneNumber"] = trunk.numbers[0]
    identity = req.participant_identity or f"sip_{req.sip_call_to}"
    p = state.join(
        req.room_name,
        identity,
        kind="SIP",
        name=req.participant_name or f"Phone {req.sip_call_to}",
        metadata=req.participant_metadata,
        attributes=attributes,
        tracks=[{"type": "AUDIO", "source": "MICROPHONE", "name": "phone"}],
    )
    return proto_sip.SIPParticipantInfo(
        participant_id=p.sid, participant_identity=identity, room_name=req.room_name, sip_call_id=call_id
    )


def check_transfer(req: proto_sip.TransferSIPParticipantRequest) -> None:
    """What livekit-server checks before the grants: a room and an identity."""
    if not req.room_name:
        raise _invalid("Missing room name")
    if not req.participant_identity:
        raise _invalid("Missing participant identity")


def transfer_participant(
    state: State, req: proto_sip.TransferSIPParticipantRequest
) -> proto_sip.TransferSIPParticipantResponse:
    """Hand the call over (a SIP REFER the far end accepts): the caller leaves the room. 1.13.11 answers the SIP
    service's outcome, which can be a failure without a Twirp error (`state.transfer_outcome`; the caller then
    stays); 1.13.5 answers Empty (_versions.py)."""
    target = req.transfer_to.removeprefix("<").removesuffix(">")
    if not target.startswith(("sip:", "sips:", "tel:")):
        raise _invalid("transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)")
    room = state.rooms.get(req.room_name)
    p = room.participants.get(req.participant_identity) if room else None
    if room is None or p is None:
        raise routed("not_found", "participant does not exist")
    if CALL_ID not in p.attributes:
        raise routed("invalid_argument", "no SIP session associated with participant")
    if not state.version.transfer_answer:
        state.leave(req.room_name, req.participant_identity)
        return proto_sip.TransferSIPParticipantResponse()  # encoded, it is Empty's 0 bytes
    outcome = proto_sip.TransferSIPParticipantResponse()
    outcome.CopyFrom(state.transfer_outcome)
    if outcome.status == proto_sip.STS_TRANSFER_SUCCESSFUL:
        state.leave(req.room_name, req.participant_identity)
    return outcome
