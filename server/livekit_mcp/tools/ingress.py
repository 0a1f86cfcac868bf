"""The `ingress` toolset: streams pushed (RTMP, WHIP) or pulled (URL) into a room as a participant.

A stream key lets whoever holds it publish into the room: create_ingress shows it once, lists show its last four
characters, and the audit log (which records the call's arguments) never sees it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Consent, Plan
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import Ingress, IngressList, IngressResult
from livekit_mcp.tools._args import AnyRoom, ConfirmToken, Identity, RoomName, ids, no_control_characters, optional_name
from livekit_mcp.tools._base import DESTRUCTIVE, READ, SEND, app_of, destructive, livekit_of, reply, tool

IngressId = Annotated[str, Field(max_length=64, description="IN_… id from list_ingress."), ids("IN_", "an ingress")]
PULL_SCHEMES = ("http://", "https://", "srt://")


def _pull_url(value: str) -> str:
    if value and not value.lower().startswith(PULL_SCHEMES):
        raise ValueError("must start with http://, https:// or srt://")
    return no_control_characters(value)


def ingress_line(i: Ingress) -> str:
    key = f", key {i.stream_key}" if i.stream_key else ""
    error = f", error: {i.error}" if i.error else ""
    name = f" '{i.name}'" if i.name else ""
    return f"- {i.ingress_id}{name} {i.input_type} into '{i.room}' as '{i.participant_identity}' {i.status}{key}{error}"


@tool("ingress", READ)
async def list_ingress(ctx: Context, room: AnyRoom = "") -> Annotated[CallToolResult, IngressList]:
    """Ingress (RTMP/WHIP/URL streams into rooms) with status; stream keys shortened."""
    found = await livekit_of(ctx).list_ingress(room=room)
    where = f" into room '{room}'" if room else ""
    return reply(IngressList(ingress=found), "\n".join([f"{len(found)} ingress{where}.", *map(ingress_line, found)]))


@tool("ingress", SEND)
async def create_ingress(
    ctx: Context,
    input_type: Literal["RTMP", "WHIP", "URL"],
    room: RoomName,
    participant_identity: Identity,
    name: Annotated[str, Field(max_length=256), AfterValidator(optional_name)] = "",
    url: Annotated[str, Field(max_length=2048, description="URL input: what to pull."), AfterValidator(_pull_url)] = "",
) -> Annotated[CallToolResult, IngressResult]:
    """Create an ingress publishing a stream into a room; RTMP/WHIP: returns the push URL and key."""
    if input_type == "URL" and not url:
        raise InvalidInput("url", "required with input_type URL: the http(s):// or srt:// stream to pull")
    if input_type != "URL" and url:
        raise InvalidInput("url", f"only for input_type URL; {input_type} is pushed to the address LiveKit returns")
    made = await livekit_of(ctx).create_ingress(
        room, f"{input_type}_INPUT", identity=participant_identity, name=name, participant_name="", url=url
    )
    if made.stream_key:
        how = f"Push to {made.url or '(the ingress service URL)'} with stream key {made.stream_key} (shown only here)."
    else:
        how = f"LiveKit pulls {made.url} into the room."
    text = f"Created {input_type} ingress {made.ingress_id} into '{room}' as '{participant_identity}'. {how}"
    return reply(IngressResult(ingress=made), text)


async def _delete_plan(lk: LiveKit, ingress_id: str) -> tuple[Plan, Ingress]:
    found = await lk.list_ingress(ingress_id=ingress_id)
    if not found:
        raise NotFound(f"ingress '{ingress_id}' does not exist; list_ingress shows the ones that do")
    i = found[0]
    live = i.status in ("BUFFERING", "PUBLISHING")
    stops = f"its stream stops and '{i.participant_identity}' leaves the room" if live else "nothing is streaming now"
    question = (
        f"This deletes {i.input_type} ingress {ingress_id} into room '{i.room}' ({i.status}: {stops}); "
        "its stream key stops working for good."
    )
    plan = Plan("delete_ingress", i.room, {"ingress_id": ingress_id}, [ingress_id], question, {"INGRESS": int(live)})
    return plan, i


async def _ask_delete(ctx: Context, ingress_id: str, confirm_token: str) -> Elicit[Consent] | str:
    lk = livekit_of(ctx)
    return await app_of(ctx).guard.ask(ctx, confirm_token, lambda: _delete_plan(lk, ingress_id), Consent)


@tool("ingress", DESTRUCTIVE)
async def delete_ingress(
    ctx: Context,
    ingress_id: IngressId,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_delete)],
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, IngressResult]:
    """Delete an ingress; a stream publishing through it stops."""
    lk = livekit_of(ctx)

    async def act(plan: Plan, i: Ingress) -> CallToolResult:
        await lk.delete_ingress(i.room, ingress_id)
        return reply(IngressResult(ingress=i), f"Deleted ingress {ingress_id} into '{i.room}'.")

    return await destructive(
        ctx, answer, confirm_token, lambda: _delete_plan(lk, ingress_id), lambda plan, i: IngressResult(ingress=i), act
    )
