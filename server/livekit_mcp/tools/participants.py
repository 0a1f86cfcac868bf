"""The `participants` toolset: list, inspect, update, mute and remove participants."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Plan, Planned, leaving
from livekit_mcp.errors import (
    InvalidInput,
    NotFound,
    ServerFailure,
)
from livekit_mcp.models import (
    MutedTrack,
    Participant,
    ParticipantDetail,
    ParticipantList,
    ParticipantSummary,
    Permission,
    RemovedParticipant,
    TrackDetail,
    UpdatedParticipant,
)
from livekit_mcp.scope import Scope
from livekit_mcp.text import shown
from livekit_mcp.tools._args import (
    Cursor,
    Identity,
    Kind,
    Metadata,
    RoomName,
    TrackSid,
    attributes_size,
    no_control_characters,
)
from livekit_mcp.tools._base import (
    CHANGE,
    DESTRUCTIVE,
    READ,
    cursor_for,
    cursor_key,
    more_text,
    participant_line,
    reply,
)
from livekit_mcp.tools._registry import Confirm, tool

# --- participants ------------------------------------------------------------------------------------


@tool("participants", READ)
async def list_participants(
    scope: Scope,
    room: RoomName,
    kind: Annotated[Kind | None, Field(description="Only participants of this kind.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    cursor: Cursor = "",
) -> Annotated[CallToolResult, ParticipantList]:
    """Who is in a room: identity, kind, state, tracks; agents with their name and state."""
    lk = scope.livekit
    after = cursor_key(cursor)
    try:
        key = None if after is None else (float(after[0]), str(after[1]))
    except (IndexError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            "cursor", "not a cursor of list_participants; pass the next_cursor of the previous page, or omit it"
        ) from exc
    page = await lk.participant_page(room, kind=kind, limit=limit, after=key)
    if not page.anyone:
        await lk.get_room(room)  # LiveKit lists a missing room as an empty one: tell them apart
    last = page.participants[-1] if page.participants else None
    next_cursor = cursor_for([last.joined_at, last.identity]) if page.more and last else None
    result = ParticipantList(
        room=room,
        participants=[ParticipantSummary.of(p) for p in page.participants],
        total=page.total,
        next_cursor=next_cursor,
    )
    of_kind = f" of kind {kind}" if kind else ""
    head = f"Room '{room}' has {page.total} participant(s){of_kind}; showing {len(page.participants)}."
    if not page.anyone:
        head = f"Room '{room}' exists and is empty."
    return reply(result, "\n".join([head, *map(participant_line, result.participants)]) + more_text(next_cursor))


@tool("participants", READ)
async def get_participant(
    scope: Scope, room: RoomName, identity: Identity
) -> Annotated[CallToolResult, ParticipantDetail]:
    """One participant in full: tracks, permission, attributes, metadata, kind details."""
    detail = ParticipantDetail.of(room, await scope.livekit.get_participant(room, identity))
    tracks = ", ".join(f"{t.sid} {t.type}/{t.source}{' muted' if t.muted else ''}" for t in detail.tracks) or "none"
    agent = f", agent={shown(detail.agent_name)} state={shown(detail.agent_state)}" if detail.agent_name else ""
    return reply(
        detail, f"'{shown(identity)}' in '{shown(room)}': {detail.kind} {detail.state}{agent}; tracks: {tracks}."
    )


def _keeping_agent_bit(permission: Permission, before: Participant) -> Permission:
    """The permission with `agent` as LiveKit has it: that bit makes a STANDARD participant count as an agent,
    so changing it would change what policy and the agent tools judge (and what a confirmation says)."""
    current = before.permission.agent if before.permission is not None else False
    if "agent" in permission.model_fields_set and permission.agent != current:
        raise InvalidInput(
            "permission.agent",
            f"it is {str(current).lower()} for '{before.identity}' and is never changed through this server: it "
            "decides whether a participant counts as an agent; leave it out (it is kept as it is)",
        )
    return permission.model_copy(update={"agent": current})


@tool("participants", CHANGE)
async def update_participant(
    scope: Scope,
    room: RoomName,
    identity: Identity,
    name: Annotated[
        str, Field(max_length=256, description="New display name."), AfterValidator(no_control_characters)
    ] = "",
    metadata: Annotated[Metadata, Field(description='New metadata (LiveKit reads "" as no change).')] = "",
    attributes: Annotated[
        dict[str, str] | None,
        Field(description='Merged into the attributes; a "" value deletes that key.'),
        AfterValidator(attributes_size),
    ] = None,
    permission: Annotated[
        Permission | None,
        Field(description="Replaces the whole permission (agent stays as it is)."),
    ] = None,
) -> Annotated[CallToolResult, UpdatedParticipant]:
    """Change a participant's name, metadata, attributes or permission."""
    if not name and not metadata and attributes is None and permission is None:
        raise InvalidInput("name", "give at least one of name, metadata, attributes, permission")
    lk = scope.livekit
    before = await lk.get_participant(room, identity)
    if permission is not None:
        permission = _keeping_agent_bit(permission, before)
    after = await lk.update_participant(
        room, identity, name=name, metadata=metadata, attributes=attributes, permission=permission
    )
    changed = [field for field, value in (("name", name), ("metadata", metadata), ("attributes", attributes)) if value]
    text = f"Updated '{identity}' in '{room}': {', '.join(changed) or 'nothing'}."
    if permission is not None:
        changed.append("permission")
        text = (
            f"Updated '{identity}' in '{room}': {', '.join(changed)}. The permission was replaced as a whole: "
            f"before {before.permission.model_dump() if before.permission else None}, "
            f"after {after.permission.model_dump() if after.permission else None}."
        )
        if before.tracks and not permission.can_publish:
            # livekit-server v1.13.5 unpublishes them at once; the participant must republish once allowed again.
            text += f" Without can_publish, LiveKit unpublished their {len(before.tracks)} track(s)."
    result = UpdatedParticipant(
        participant=ParticipantDetail.of(room, after),
        changed=changed,
        permission_before=before.permission if permission is not None else None,
    )
    return reply(result, text)


@tool("participants", CHANGE)
async def mute_track(
    scope: Scope,
    room: RoomName,
    identity: Identity,
    track_sid: TrackSid,
    muted: bool,
) -> Annotated[CallToolResult, MutedTrack]:
    """Mute (or unmute) a track a participant publishes."""
    lk = scope.livekit
    # Checked first: for a missing room or participant LiveKit answers only after ~3 s (503 "no response from
    # servers"), and an unknown track sid is a success with no track.
    target = await lk.get_participant(room, identity)
    if track_sid not in {t.sid for t in target.tracks}:
        published = ", ".join(t.sid for t in target.tracks) or "none"
        raise NotFound(f"'{identity}' publishes no track '{track_sid}' in room '{room}'; their tracks: {published}")
    try:
        track = await lk.mute_track(room, identity, track_sid, muted)
    except ServerFailure as exc:
        if exc.code == "failed_precondition":
            raise ServerFailure(
                "MutePublishedTrack",
                exc.code,
                exc.status,
                "LiveKit does not unmute remotely unless the server enables it (room.enable_remote_unmute); "
                "ask the participant to unmute themselves",
            ) from exc
        raise
    if track is None:
        raise NotFound(f"LiveKit no longer knows track '{track_sid}' of '{identity}'; get_participant shows theirs")
    result = MutedTrack(room=room, identity=identity, track=TrackDetail.of(track))
    return reply(
        result, f"Track {track_sid} ({track.type}) of '{identity}' is now {'muted' if track.muted else 'unmuted'}."
    )


async def _remove_participant_plan(scope: Scope, room: str, identity: str) -> Planned[Participant]:
    target = await scope.livekit.get_participant(room, identity)
    name = f' ("{shown(target.name)}")' if target.name else ""
    question = (
        f"This disconnects {target.effective_kind} participant '{shown(identity)}'{name} from room '{shown(room)}'."
    )
    args = {"room": room, "identity": identity}
    plan = Plan("remove_participant", room, args, [target.sid], question, [leaving(target, "removed")])
    return Planned(plan, target, _removed(room, identity, target))


def _removed(room: str, identity: str, target: Participant) -> RemovedParticipant:
    notes = ["Their join token is not revoked: they can rejoin with it until it expires."]
    if target.is_agent:
        notes.append(
            "This is an agent: its dispatch is still there. The open-source server does not relaunch it, "
            "but LiveKit Cloud may; remove_agent with keep_out=true or cancel_dispatch keeps it out."
        )
    return RemovedParticipant(
        room=room,
        identity=identity,
        sid=target.sid,
        kind=target.effective_kind,
        name=target.name or None,
        agent_name=target.agent_name,
        notes=notes,
    )


@tool("participants", DESTRUCTIVE, confirm=Confirm(_remove_participant_plan))
async def remove_participant(
    scope: Scope, room: RoomName, identity: Identity, planned: Planned[Participant]
) -> Annotated[CallToolResult, RemovedParticipant]:
    """Disconnect a participant (their token stays valid: they can rejoin)."""
    await scope.livekit.remove_participant(room, identity)
    result = _removed(room, identity, planned.found)
    text = f"Removed {result.kind} participant '{identity}' from '{room}'. " + " ".join(result.notes)
    return reply(result, text)
