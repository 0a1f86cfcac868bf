"""The `rpc` toolset: call a participant's RPC method through LiveKit (RoomService.PerformRpc)."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Plan, Planned, leaving
from livekit_mcp.errors import NotFound, ParticipantNotFound
from livekit_mcp.models import SHUTDOWN_METHOD, Participant, RpcFailure, RpcResult
from livekit_mcp.scope import Scope
from livekit_mcp.text import shown
from livekit_mcp.tools._args import Identity, RoomName, max_bytes, plain_name
from livekit_mcp.tools._base import SEND, reply
from livekit_mcp.tools._registry import Confirm, tool

PAYLOAD_LIMIT = 15 * 1024
"""LiveKit's limit on an RPC request (and answer) payload, in UTF-8 bytes."""

RpcMethod = Annotated[
    str,
    Field(min_length=1, max_length=256, description="RPC method the participant registered."),
    AfterValidator(plain_name),
]
Payload = Annotated[
    str,
    Field(description="Text sent to the method (UTF-8, at most 15 KiB)."),
    AfterValidator(max_bytes(PAYLOAD_LIMIT, "payload")),
]
ResponseTimeout = Annotated[
    float,
    Field(
        ge=1,
        le=15,
        description="1-15 s; LiveKit resends to a handler slower than 3 s.",
    ),
]
# The participant never answered: no acknowledgement (1501), no answer in time (1502), LiveKit gave up (None).
_NO_ANSWER = {1501, 1502, None}


def failure_text(who: str, method: str, error: RpcFailure, response_timeout: float) -> str:
    """One plain sentence for an RPC error: who failed, how, and LiveKit's code and words."""
    code = f"{error.code} " if error.code is not None else ""
    said = f"(LiveKit: {code}{shown(error.message)}{f': {shown(error.data)}' if error.data else ''})"
    match error.code:
        case 1400:
            return f"{who} has no RPC method '{method}' registered {said}."
        case 1500:
            return f"{who}'s handler for '{method}' failed without saying why {said}."
        case 1501:
            return (
                f"{who} is in the room but its client did not acknowledge the request in time (2 s; 7 s on "
                "livekit-server 1.13.11): it may be "
                f"disconnecting, or its SDK may not support RPC {said}."
            )
        case 1502:
            return f"{who} is in the room but did not answer '{method}' within {response_timeout:g} s {said}."
        case 1503:
            return f"{who} disconnected before answering '{method}' {said}."
        case 1504:
            return f"{who} answered '{method}' with more than 15 KiB, which LiveKit does not deliver {said}."
        case None:
            return (
                f"LiveKit gave up on '{method}': {who} answered none of its attempts in time (livekit-server up to "
                "1.13.10 stops at about 15 s and sends the request again after 3 and 8 s, so the handler may have "
                f"run up to 3 times; 1.13.11 waits the response timeout + 7 s, once) {said}."
            )
        case _ if not 1400 <= error.code < 1600:  # not LiveKit's: the handler raised its own RpcError
            data = f" (data: {shown(error.data)})" if error.data else ""
            return f"{who} answered '{method}' with its error {error.code}: {shown(error.message)}{data}."
        case _:
            return f"LiveKit could not deliver '{method}' to {who} {said}."


async def _rpc_plan(
    scope: Scope, room: str, destination_identity: str, method: str, payload: str
) -> Planned[Participant]:
    """Nobody leaves for an RPC, but for the shutdown method: the participant asked ends its session."""
    # Checked first: LiveKit answers a call to someone absent only after ~3 s, and without saying who is missing.
    target = await scope.livekit.get_participant(room, destination_identity)
    base = {"room": room, "destination_identity": destination_identity, "method": method}
    preview = RpcResult(**base)
    args = {**base, "payload": payload}
    if method != SHUTDOWN_METHOD:
        return Planned(Plan("perform_rpc", room, args, [], ""), target, preview)
    question = (
        f"This calls RPC {SHUTDOWN_METHOD} on {target.effective_kind} participant '{destination_identity}' in room "
        f"'{room}': an agent that follows the convention ends its session and leaves the room."
    )
    gone = [leaving(target, f"asked to end its session by RPC {SHUTDOWN_METHOD}")]
    return Planned(Plan("perform_rpc", room, args, [target.sid], question, gone), target, preview)


@tool("rpc", SEND, confirm=Confirm(_rpc_plan, always=False))
async def perform_rpc(
    scope: Scope,
    room: RoomName,
    destination_identity: Identity,
    method: RpcMethod,
    planned: Planned[Participant],
    payload: Payload = "",
    response_timeout: ResponseTimeout = 2.5,
) -> Annotated[CallToolResult, RpcResult]:
    """Call a participant's registered RPC method; returns its answer or its error."""
    lk = scope.livekit
    who = f"participant '{destination_identity}'"
    try:
        answer = await lk.perform_rpc(room, destination_identity, method, payload, response_timeout=response_timeout)
    except ParticipantNotFound as exc:
        there = f"list_participants(room='{room}') shows who is there"
        raise NotFound(f"{who} left room '{room}' before '{method}' reached it; {there}") from exc
    base = {"room": room, "destination_identity": destination_identity, "method": method}
    if answer.error is None:
        result = RpcResult(**base, outcome="answered", payload=answer.payload)
        return reply(result, f"{who} answered '{method}': {shown(answer.payload)}")
    outcome = "no_answer" if answer.error.code in _NO_ANSWER else "error"
    result = RpcResult(**base, outcome=outcome, error=answer.error)
    failed = reply(result, failure_text(who, method, answer.error, response_timeout))
    failed.is_error = True
    return failed
