"""The `sip` toolset: phone calls. SIP trunks and dispatch rules as configured, dialling out into a room (confirmed:
a real phone rings and the call is billed) and handing a caller over to another number (destructive)."""

from __future__ import annotations

import re
from typing import Annotated

from mcp.types import CallToolResult, ToolAnnotations
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Plan, Planned, leaving
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.models import Participant, SipCall, SipDispatchRuleList, SipTransfer, SipTrunk, SipTrunkList
from livekit_mcp.scope import Scope
from livekit_mcp.text import shown
from livekit_mcp.tools._args import Identity, RoomName, ids, optional_name
from livekit_mcp.tools._base import READ, replaced_by_joining, reply
from livekit_mcp.tools._registry import Confirm, tool

PHONE_ATTRIBUTE = "sip.phoneNumber"
CALL_ID_ATTRIBUTE = "sip.callID"
# Dialling and transferring reach the telephone network, outside LiveKit: an open world.
DIAL = ToolAnnotations(destructive_hint=False, open_world_hint=True)
HAND_OVER = ToolAnnotations(destructive_hint=True, open_world_hint=True)
_PHONE = re.compile(r"\+?[0-9]{2,20}")
_TRANSFER = re.compile(r"tel:\+?[0-9]{2,20}|sips?:[^\s<>@]+@[A-Za-z0-9.\-\[\]:]+")


def _phone(value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise ValueError("must be a phone number: 2-20 digits, + first for E.164 (+15550100), no spaces")
    return value


def _transfer_to(value: str) -> str:
    if not _TRANSFER.fullmatch(value):
        raise ValueError("must be tel:+15550100 or sip:user@host")
    return value


TrunkId = Annotated[str, Field(max_length=64, description="ST_… id from list_sip_trunks."), ids("ST_", "a trunk")]
PhoneNumber = Annotated[str, Field(max_length=21, description="Number to call, E.164."), AfterValidator(_phone)]
TransferTo = Annotated[
    str, Field(max_length=256, description="tel:+15550100 or sip:user@host."), AfterValidator(_transfer_to)
]
NewIdentity = Annotated[
    str, Field(max_length=256, description="The caller's identity in the room."), AfterValidator(optional_name)
]


def _trunk_text(t: SipTrunk) -> str:
    numbers = ", ".join(map(shown, t.numbers)) or "any number"
    where = f" via {shown(t.address)}" if t.address else ""
    only = [*(t.allowed_addresses or []), *(t.allowed_numbers or [])]
    allowed = f", only from {', '.join(map(shown, only))}" if only else ""
    auth = f", auth as '{shown(t.auth_username)}'" if t.auth_username else ""
    return f"- {t.id} {t.direction} '{shown(t.name or '')}': {numbers}{where}{allowed}{auth}"


@tool("sip", READ)
async def list_sip_trunks(scope: Scope) -> Annotated[CallToolResult, SipTrunkList]:
    """List SIP trunks, inbound and outbound: numbers and addresses, never passwords."""
    trunks = await scope.livekit.list_sip_trunks()
    inbound = sum(t.direction == "inbound" for t in trunks)
    result = SipTrunkList(trunks=trunks, inbound=inbound, outbound=len(trunks) - inbound)
    lines = [f"{inbound} inbound, {result.outbound} outbound SIP trunk(s).", *map(_trunk_text, trunks)]
    return reply(result, "\n".join(lines))


@tool("sip", READ)
async def list_sip_dispatch_rules(scope: Scope) -> Annotated[CallToolResult, SipDispatchRuleList]:
    """List SIP dispatch rules: the calls each takes, the room and agents it sends them to."""
    rules = await scope.livekit.list_sip_dispatch_rules()
    lines = [f"{len(rules)} SIP dispatch rule(s)."]
    for r in rules:
        to = (
            f"room '{shown(r.room)}'"
            if r.room is not None
            else f"a new room per call named '{shown(r.room_prefix or '')}…'"
        )
        on = f"trunk(s) {', '.join(map(shown, r.trunk_ids))}" if r.trunk_ids else "any trunk"
        numbers = f", numbers {', '.join(map(shown, r.numbers))}" if r.numbers else ""
        agents = f", agents {', '.join(map(shown, r.agents))}" if r.agents else ""
        pin = ", PIN required" if r.pin_required else ""
        lines.append(f"- {r.id} '{shown(r.name or '')}' ({r.kind}): calls on {on}{numbers} go to {to}{agents}{pin}")
    return reply(SipDispatchRuleList(rules=rules), "\n".join(lines))


def dialled_identity(sip_call_to: str, participant_identity: str) -> str:
    """The identity a dial-out takes in the room: the one given, else LiveKit's `sip_<number>` (its SIP service's
    default, followed by the sandbox)."""
    return participant_identity or f"sip_{sip_call_to}"


async def _dial_plan(
    scope: Scope, room: str, sip_trunk_id: str, sip_call_to: str, participant_identity: str
) -> Planned[None]:
    lk = scope.livekit
    trunks = await lk.list_sip_trunks()
    trunk = next((t for t in trunks if t.id == sip_trunk_id), None)
    if trunk is None or trunk.direction != "outbound":
        why = "is an inbound trunk" if trunk is not None else "does not exist"
        outbound = ", ".join(t.id for t in trunks if t.direction == "outbound") or "none"
        raise NotFound(f"SIP trunk '{sip_trunk_id}' {why}; outbound trunks: {outbound} (list_sip_trunks)")
    identity = dialled_identity(sip_call_to, participant_identity)
    # LiveKit keeps one participant per identity: whoever holds it now is disconnected when the call joins.
    gone = await replaced_by_joining(lk, room, identity, "replaced by the dialled call, which takes their identity")
    caller_id = f" from {trunk.numbers[0]}" if trunk.numbers else ""
    replaces = f", disconnecting {gone[0].kind} participant '{identity}' who has that identity now" if gone else ""
    question = (
        f"This calls {sip_call_to}{caller_id} through trunk '{shown(trunk.name or trunk.id)}' "
        f"({shown(trunk.address or '?')}) and "
        f"brings the call into room '{room}' as '{identity}'{replaces}: a real phone rings, and the call is billed."
    )
    args = {
        "room": room,
        "sip_trunk_id": sip_trunk_id,
        "sip_call_to": sip_call_to,
        "participant_identity": participant_identity,
    }
    targets = [sip_trunk_id, sip_call_to, *(p.sid or "" for p in gone)]
    plan = Plan("create_sip_participant", room, args, targets, question, gone)
    return Planned(plan, None, SipCall(room=room, sip_trunk_id=sip_trunk_id, sip_call_to=sip_call_to))


@tool("sip", DIAL, confirm=Confirm(_dial_plan))
async def create_sip_participant(
    scope: Scope,
    room: RoomName,
    sip_trunk_id: TrunkId,
    sip_call_to: PhoneNumber,
    planned: Planned[None],
    participant_identity: NewIdentity = "",
) -> Annotated[CallToolResult, SipCall]:
    """Dial a phone number into a room via an outbound trunk; asks first (a real, billed call)."""
    call = await scope.livekit.create_sip_participant(
        room, sip_trunk_id, sip_call_to, identity=participant_identity, name=""
    )
    return reply(
        call,
        f"Calling {sip_call_to} into room '{room}' as '{call.participant_identity}' (call {call.sip_call_id}); "
        "it is ringing: get_participant shows the call's sip.callStatus (active once answered).",
    )


async def _transfer_plan(scope: Scope, room: str, identity: str, transfer_to: str) -> Planned[Participant]:
    p = await scope.livekit.get_participant(room, identity)
    if p.effective_kind != "SIP":
        raise InvalidInput(
            "identity", f"'{identity}' is a {p.effective_kind} participant; only a SIP caller is transferred"
        )
    number = p.attributes.get(PHONE_ATTRIBUTE)
    caller = f" ({number})" if number else ""
    question = (
        f"This transfers the phone call of '{identity}'{caller} in room '{room}' to {transfer_to}: the caller "
        "leaves the room, and the call is no longer LiveKit's."
    )
    args = {"room": room, "identity": identity, "transfer_to": transfer_to}
    plan = Plan(
        "transfer_sip_participant", room, args, [p.sid], question, [leaving(p, f"transferred to {transfer_to}")]
    )
    return Planned(plan, p, _transfer(room, identity, transfer_to, p))


def _transfer(room: str, identity: str, transfer_to: str, p: Participant) -> SipTransfer:
    return SipTransfer(
        room=room,
        identity=identity,
        transfer_to=transfer_to,
        phone_number=p.attributes.get(PHONE_ATTRIBUTE),
        sip_call_id=p.attributes.get(CALL_ID_ATTRIBUTE),
    )


@tool("sip", HAND_OVER, confirm=Confirm(_transfer_plan))
async def transfer_sip_participant(
    scope: Scope, room: RoomName, identity: Identity, transfer_to: TransferTo, planned: Planned[Participant]
) -> Annotated[CallToolResult, SipTransfer]:
    """Hand a phone caller over to another number or SIP URI; they leave the room."""
    status = await scope.livekit.transfer_sip_participant(room, identity, transfer_to)
    result = _transfer(room, identity, transfer_to, planned.found).model_copy(update={"status": status})
    if status == "ongoing":
        text = f"LiveKit is transferring the call of '{identity}' in room '{room}' to {transfer_to} (not done yet)."
    else:
        text = f"Transferred the call of '{identity}' in room '{room}' to {transfer_to}."
    return reply(result, text)
