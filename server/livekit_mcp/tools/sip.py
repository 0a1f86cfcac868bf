"""The `sip` toolset: phone calls. SIP trunks and dispatch rules as configured, dialling out into a room (confirmed:
a real phone rings and the call is billed) and handing a caller over to another number (destructive)."""

from __future__ import annotations

import re
from typing import Annotated

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Consent, Plan
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import Participant, SipCall, SipDispatchRuleList, SipTransfer, SipTrunk, SipTrunkList
from livekit_mcp.tools._args import ConfirmToken, Identity, RoomName, ids, optional_name
from livekit_mcp.tools._base import READ, app_of, destructive, livekit_of, reply, tool

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
    numbers = ", ".join(t.numbers) or "any number"
    where = f" via {t.address}" if t.address else ""
    only = [*(t.allowed_addresses or []), *(t.allowed_numbers or [])]
    allowed = f", only from {', '.join(only)}" if only else ""
    auth = f", auth as '{t.auth_username}'" if t.auth_username else ""
    return f"- {t.id} {t.direction} '{t.name or ''}': {numbers}{where}{allowed}{auth}"


@tool("sip", READ)
async def list_sip_trunks(ctx: Context) -> Annotated[CallToolResult, SipTrunkList]:
    """List SIP trunks, inbound and outbound: numbers and addresses, never passwords."""
    trunks = await livekit_of(ctx).list_sip_trunks()
    inbound = sum(t.direction == "inbound" for t in trunks)
    result = SipTrunkList(trunks=trunks, inbound=inbound, outbound=len(trunks) - inbound)
    lines = [f"{inbound} inbound, {result.outbound} outbound SIP trunk(s).", *map(_trunk_text, trunks)]
    return reply(result, "\n".join(lines))


@tool("sip", READ)
async def list_sip_dispatch_rules(ctx: Context) -> Annotated[CallToolResult, SipDispatchRuleList]:
    """List SIP dispatch rules: the calls each takes, the room and agents it sends them to."""
    rules = await livekit_of(ctx).list_sip_dispatch_rules()
    lines = [f"{len(rules)} SIP dispatch rule(s)."]
    for r in rules:
        to = f"room '{r.room}'" if r.room is not None else f"a new room per call named '{r.room_prefix or ''}…'"
        on = f"trunk(s) {', '.join(r.trunk_ids)}" if r.trunk_ids else "any trunk"
        numbers = f", numbers {', '.join(r.numbers)}" if r.numbers else ""
        agents = f", agents {', '.join(r.agents)}" if r.agents else ""
        pin = ", PIN required" if r.pin_required else ""
        lines.append(f"- {r.id} '{r.name or ''}' ({r.kind}): calls on {on}{numbers} go to {to}{agents}{pin}")
    return reply(SipDispatchRuleList(rules=rules), "\n".join(lines))


async def _dial_plan(lk: LiveKit, room: str, sip_trunk_id: str, sip_call_to: str, identity: str) -> tuple[Plan, None]:
    trunks = await lk.list_sip_trunks()
    trunk = next((t for t in trunks if t.id == sip_trunk_id), None)
    if trunk is None or trunk.direction != "outbound":
        why = "is an inbound trunk" if trunk is not None else "does not exist"
        outbound = ", ".join(t.id for t in trunks if t.direction == "outbound") or "none"
        raise NotFound(f"SIP trunk '{sip_trunk_id}' {why}; outbound trunks: {outbound} (list_sip_trunks)")
    caller_id = f" from {trunk.numbers[0]}" if trunk.numbers else ""
    who = f" as '{identity}'" if identity else ""
    question = (
        f"This calls {sip_call_to}{caller_id} through trunk '{trunk.name or trunk.id}' ({trunk.address or '?'}) and "
        f"brings the call into room '{room}'{who}: a real phone rings, and the call is billed."
    )
    args = {"room": room, "sip_trunk_id": sip_trunk_id, "sip_call_to": sip_call_to, "participant_identity": identity}
    return Plan("create_sip_participant", room, args, [sip_trunk_id, sip_call_to], question), None


async def _ask_dial(
    ctx: Context, room: str, sip_trunk_id: str, sip_call_to: str, participant_identity: str, confirm_token: str
) -> Elicit[Consent] | str:
    lk = livekit_of(ctx)
    plan = lambda: _dial_plan(lk, room, sip_trunk_id, sip_call_to, participant_identity)  # noqa: E731
    return await app_of(ctx).guard.ask(ctx, confirm_token, plan, Consent)


@tool("sip", DIAL, confirmed=True)
async def create_sip_participant(
    ctx: Context,
    room: RoomName,
    sip_trunk_id: TrunkId,
    sip_call_to: PhoneNumber,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_dial)],
    participant_identity: NewIdentity = "",
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, SipCall]:
    """Dial a phone number into a room via an outbound trunk; asks first (a real, billed call)."""
    lk = livekit_of(ctx)
    base = {"room": room, "sip_trunk_id": sip_trunk_id, "sip_call_to": sip_call_to}

    async def act(plan: Plan, _: None) -> CallToolResult:
        call = await lk.create_sip_participant(room, sip_trunk_id, sip_call_to, identity=participant_identity, name="")
        return reply(
            call,
            f"Calling {sip_call_to} into room '{room}' as '{call.participant_identity}' (call {call.sip_call_id}); "
            "it is ringing: get_participant shows the call's sip.callStatus (active once answered).",
        )

    return await destructive(
        ctx,
        answer,
        confirm_token,
        lambda: _dial_plan(lk, room, sip_trunk_id, sip_call_to, participant_identity),
        lambda plan, _: SipCall(**base),
        act,
    )


async def _transfer_plan(lk: LiveKit, room: str, identity: str, transfer_to: str) -> tuple[Plan, Participant]:
    p = await lk.get_participant(room, identity)
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
    return Plan("transfer_sip_participant", room, args, [p.sid], question, {"SIP": 1}), p


async def _ask_transfer(
    ctx: Context, room: str, identity: str, transfer_to: str, confirm_token: str
) -> Elicit[Consent] | str:
    lk = livekit_of(ctx)
    return await app_of(ctx).guard.ask(
        ctx, confirm_token, lambda: _transfer_plan(lk, room, identity, transfer_to), Consent
    )


@tool("sip", HAND_OVER)
async def transfer_sip_participant(
    ctx: Context,
    room: RoomName,
    identity: Identity,
    transfer_to: TransferTo,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_transfer)],
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, SipTransfer]:
    """Hand a phone caller over to another number or SIP URI; they leave the room."""
    lk = livekit_of(ctx)

    def transfer(plan: Plan, p: Participant) -> SipTransfer:
        return SipTransfer(
            room=room,
            identity=identity,
            transfer_to=transfer_to,
            phone_number=p.attributes.get(PHONE_ATTRIBUTE),
            sip_call_id=p.attributes.get(CALL_ID_ATTRIBUTE),
        )

    async def act(plan: Plan, p: Participant) -> CallToolResult:
        await lk.transfer_sip_participant(room, identity, transfer_to)
        return reply(transfer(plan, p), f"Transferred the call of '{identity}' in room '{room}' to {transfer_to}.")

    return await destructive(
        ctx, answer, confirm_token, lambda: _transfer_plan(lk, room, identity, transfer_to), transfer, act
    )
