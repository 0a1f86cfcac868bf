"""The `ingress` toolset: streams pushed (RTMP, WHIP) or pulled (URL) into a room as a participant.

A stream key lets whoever holds it publish into the room: create_ingress shows it once, lists show its last four
characters, and the audit log (which records the call's arguments) never sees it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Plan, Planned
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.models import Ingress, IngressList, IngressResult, Leaving
from livekit_mcp.scope import Scope
from livekit_mcp.text import shown
from livekit_mcp.tools._args import AnyRoom, Identity, RoomName, ids, no_control_characters, optional_name
from livekit_mcp.tools._base import DESTRUCTIVE, READ, SEND, replaced_by_joining, reply
from livekit_mcp.tools._registry import Confirm, tool

IngressId = Annotated[str, Field(max_length=64, description="IN_… id from list_ingress."), ids("IN_", "an ingress")]
PULL_SCHEMES = ("http://", "https://", "srt://")


def _pull_url(value: str) -> str:
    if value and not value.lower().startswith(PULL_SCHEMES):
        raise ValueError("must start with http://, https:// or srt://")
    return no_control_characters(value)


def ingress_line(i: Ingress) -> str:
    key = f", key {shown(i.stream_key)}" if i.stream_key else ""
    error = f", error: {shown(i.error)}" if i.error else ""
    name = f" '{shown(i.name)}'" if i.name else ""
    into = f"into '{shown(i.room)}' as '{shown(i.participant_identity)}'"
    return f"- {i.ingress_id}{name} {i.input_type} {into} {i.status}{key}{error}"


@tool("ingress", READ)
async def list_ingress(scope: Scope, room: AnyRoom = "") -> Annotated[CallToolResult, IngressList]:
    """Ingress (RTMP/WHIP/URL streams into rooms) with status; stream keys shortened."""
    found = await scope.livekit.list_ingress(room=room)
    where = f" into room '{room}'" if room else ""
    return reply(IngressList(ingress=found), "\n".join([f"{len(found)} ingress{where}.", *map(ingress_line, found)]))


async def _create_plan(
    scope: Scope, input_type: str, room: str, participant_identity: str, name: str, url: str
) -> Planned[None]:
    # Its arguments are checked first, before anything reaches LiveKit (the plan is the first thing a call runs).
    if input_type == "URL" and not url:
        raise InvalidInput("url", "required with input_type URL: the http(s):// or srt:// stream to pull")
    if input_type != "URL" and url:
        raise InvalidInput("url", f"only for input_type URL; {input_type} is pushed to the address LiveKit returns")
    if url:  # a fetch LiveKit makes from inside its deployment: not to its own or its network's addresses
        await scope.livekit.check_pull_url(url)
    # The ingress publishes as `participant_identity` once its stream starts: whoever holds it then is disconnected.
    why = "replaced by the ingress, which publishes with their identity once its stream starts"
    gone = await replaced_by_joining(scope.livekit, room, participant_identity, why)
    question = (
        f"This creates a {input_type} ingress into room '{room}' as '{participant_identity}', disconnecting the "
        f"{gone[0].kind if gone else ''} participant who has that identity now once its stream starts."
    )
    args = {"input_type": input_type, "room": room, "participant_identity": participant_identity, "name": name}
    args["url"] = url
    plan = Plan("create_ingress", room, args, [p.sid or "" for p in gone], question, gone)
    return Planned(plan, None, IngressResult(ingress=_planned_ingress(input_type, room, participant_identity)))


def _planned_ingress(input_type: str, room: str, identity: str) -> Ingress:
    return Ingress(ingress_id="", input_type=input_type, room=room, participant_identity=identity, status="NOT_CREATED")


@tool("ingress", SEND, confirm=Confirm(_create_plan, always=False))
async def create_ingress(
    scope: Scope,
    input_type: Literal["RTMP", "WHIP", "URL"],
    room: RoomName,
    participant_identity: Identity,
    planned: Planned[None],
    name: Annotated[str, Field(max_length=256), AfterValidator(optional_name)] = "",
    url: Annotated[str, Field(max_length=2048, description="URL input: what to pull."), AfterValidator(_pull_url)] = "",
) -> Annotated[CallToolResult, IngressResult]:
    """Create an ingress publishing a stream into a room; RTMP/WHIP: returns the push URL and key."""
    made = await scope.livekit.create_ingress(
        room, f"{input_type}_INPUT", identity=participant_identity, name=name, participant_name="", url=url
    )
    if made.stream_key:
        how = f"Push to {made.url or '(the ingress service URL)'} with stream key {made.stream_key} (shown only here)."
    else:
        how = f"LiveKit pulls {shown(made.url or url)} into the room (its credentials are shown only here)."
    text = f"Created {input_type} ingress {made.ingress_id} into '{room}' as '{participant_identity}'. {how}"
    return reply(IngressResult(ingress=made), text)


async def _delete_plan(scope: Scope, ingress_id: str) -> Planned[Ingress]:
    found = await scope.livekit.list_ingress(ingress_id=ingress_id)
    if not found:
        raise NotFound(f"ingress '{ingress_id}' does not exist; list_ingress shows the ones that do")
    i = found[0]
    live = i.status in ("BUFFERING", "PUBLISHING")
    stops = (
        f"its stream stops and '{shown(i.participant_identity)}' leaves the room"
        if live
        else "nothing is streaming now"
    )
    question = (
        f"This deletes {i.input_type} ingress {ingress_id} into room '{shown(i.room)}' ({i.status}: {stops}); "
        "its stream key stops working for good."
    )
    gone = [Leaving(identity=i.participant_identity, kind="INGRESS", why="its ingress is deleted")] if live else []
    plan = Plan("delete_ingress", i.room, {"ingress_id": ingress_id}, [ingress_id], question, gone)
    return Planned(plan, i, IngressResult(ingress=i))


@tool("ingress", DESTRUCTIVE, confirm=Confirm(_delete_plan))
async def delete_ingress(
    scope: Scope, ingress_id: IngressId, planned: Planned[Ingress]
) -> Annotated[CallToolResult, IngressResult]:
    """Delete an ingress; a stream publishing through it stops."""
    i = planned.found
    await scope.livekit.delete_ingress(i.room, ingress_id)
    return reply(IngressResult(ingress=i), f"Deleted ingress {ingress_id} into '{shown(i.room)}'.")
