"""The `rooms` toolset: list, inspect, create, update and delete rooms."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.agent_health import health_of
from livekit_mcp.agent_health import told as told_health
from livekit_mcp.confirm import Plan, Planned, TypedName, leaving
from livekit_mcp.errors import InvalidInput, StoreError
from livekit_mcp.history import gaps_note, gaps_since, told
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import (
    AgentInfo,
    CreatedRoom,
    DeletedRoom,
    DispatchInfo,
    HistoryEntry,
    Participant,
    RecentRoom,
    RoomDetail,
    RoomHistory,
    RoomList,
    RoomSession,
    RoomSummary,
    iso,
)
from livekit_mcp.scope import Scope
from livekit_mcp.store import Event, Page
from livekit_mcp.text import shown
from livekit_mcp.tools._args import (
    AnyRoom,
    Cursor,
    Metadata,
    RoomName,
    Since,
    optional_name,
    since_time,
)
from livekit_mcp.tools._base import (
    CHANGE,
    DESTRUCTIVE,
    READ,
    agent_line,
    both,
    by_kind,
    counts_text,
    duration_text,
    more_text,
    names_text,
    page_of,
    reply,
)
from livekit_mcp.tools._registry import Confirm, tool

# --- rooms -------------------------------------------------------------------------------------------


@tool("rooms", READ)
async def list_rooms(
    scope: Scope,
    names: Annotated[list[RoomName] | None, Field(max_length=100, description="Only these rooms.")] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
    cursor: Cursor = "",
) -> Annotated[CallToolResult, RoomList]:
    """Rooms by name, with participant counts (LiveKit's, a few seconds behind)."""
    rooms = sorted(await scope.livekit.list_rooms(names or ()), key=lambda r: r.name)
    page, next_cursor = page_of(rooms, lambda r: [r.name], limit, cursor)
    found = {r.name for r in rooms}
    not_found = [n for n in dict.fromkeys(names or ()) if n not in found] or None
    result = RoomList(
        rooms=[RoomSummary.of(r) for r in page], total=len(rooms), next_cursor=next_cursor, not_found=not_found
    )
    lines = [f"{len(rooms)} room(s); showing {len(page)}."]
    lines += [f"- {shown(r.name)} ({r.participants} participants, created {r.created_at or '?'})" for r in result.rooms]
    if not_found:
        lines.append(f"Not rooms: {', '.join(map(shown, not_found))}.")
    return reply(result, "\n".join(lines) + more_text(next_cursor))


async def room_detail(lk: LiveKit, room: str) -> RoomDetail:
    """Everything about one room in two round trips (shared by get_room and the room resource)."""
    info = await lk.get_room(room)
    census, dispatches = await both(lambda: lk.census(room), lambda: lk.list_dispatches(room))
    # The counts from the participants themselves: ListRooms' lag a few seconds behind (livekit-server v1.13.5).
    summary = RoomSummary.of(info).model_copy(
        update={"participants": census.total, "publishers": len(census.publishers)}
    )
    agents = census.agents
    return RoomDetail(
        room=summary,
        running_for=duration_text(time.time() - info.creation_time) if info.creation_time else None,
        empty_timeout=info.empty_timeout,
        departure_timeout=info.departure_timeout,
        max_participants=info.max_participants or None,
        participants_by_kind=census.by_kind,
        publishers=census.publishers,
        agents=[AgentInfo.of(room, p) for p in agents],
        dispatches=[DispatchInfo.of(d, agents, present=census.present) for d in dispatches],
    )


@tool("rooms", READ)
async def get_room(scope: Scope, room: RoomName) -> Annotated[CallToolResult, RoomDetail]:
    """A room now: who by kind, the agents and their state, dispatches, publishers, uptime."""
    detail = await room_detail(scope.livekit, room)
    lines = [
        f"Room '{shown(room)}' ({detail.room.sid}), running for {detail.running_for or '?'}: "
        f"{counts_text(detail.participants_by_kind)}; {len(detail.publishers)} publishing.",
        *map(agent_line, detail.agents),
        *(d.line for d in detail.dispatches),
    ]
    found = await recent_events(scope, room, time.time() - RECENT_SECONDS, 500)
    if not isinstance(found, str) and found.events:
        last = [_entry(e, c) for e, c in with_causes(found.events) if e.room_sid == detail.room.sid][-RECENT_EVENTS:]
        detail = detail.model_copy(update={"recent_history": last or None})
        lines += ["Lately:", *(f"- {e.at} {e.said}" for e in last)] if last else []
    return reply(detail, "\n".join(lines))


# --- history ------------------------------------------------------------------------------------------

RECENT_EVENTS = 5
RECENT_SECONDS = 3600
"""get_room shows the last RECENT_EVENTS events of the room's current session from the last hour."""
HISTORY_OFF = "History is off on this server (LIVEKIT_MCP_HISTORY=off): it keeps no record of past rooms."
HISTORY_ELSEWHERE = "History is kept for the default project only (its webhooks feed it); get_room shows this one's."


CAUSE_WINDOW = 120.0
"""Seconds after a change made through this server within which a departure it announced is told as its effect
(remove_agent's grace period is at most 60 s; LiveKit ends a job within seconds of its dispatch's deletion)."""
DEPARTURES = ("participant_left", "participant_connection_aborted")


def _entry(event: Event, cause: Event | None = None) -> HistoryEntry:
    return HistoryEntry(
        at=iso(event.at),
        event=event.event,
        said=told(event, cause),
        identity=event.identity or None,
        kind=event.detail.get("kind"),
        reason=event.detail.get("reason"),
    )


def with_causes(events: Sequence[Event]) -> list[tuple[Event, Event | None]]:
    """Each event (in order) with, for a departure, the change made through us that announced it, if any."""
    causes: dict[str, Event] = {}  # identity → the change made through us that announced its departure
    found: list[tuple[Event, Event | None]] = []
    for event in events:
        cause = None
        if event.event == "changed":
            causes |= dict.fromkeys(event.detail.get("leaving", ()), event)
        elif event.event in DEPARTURES and event.identity in causes:
            cause = causes.pop(event.identity)
            if event.received - cause.received > CAUSE_WINDOW:
                cause = None
        found.append((event, cause))
    return found


def sessions_of(events: Sequence[Event]) -> list[RoomSession]:
    """Events grouped by the room's sid (one session per life of the room), in the order they happened."""
    sessions: dict[str, RoomSession] = {}
    current: RoomSession | None = None
    for event, cause in with_causes(events):
        if event.room_sid:
            current = sessions.setdefault(event.room_sid, RoomSession(room_sid=event.room_sid))
            session = current
        elif current is not None and current.ended is None:  # a change made through us: in the live session
            session = current
        else:
            session = sessions.setdefault("(unknown)", RoomSession(room_sid="(unknown)"))
        session.events.append(_entry(event, cause))
        if event.event == "room_started":
            session.started = iso(event.at)
        elif event.event == "room_finished":
            session.ended = iso(event.at)
    return list(sessions.values())


def _no_history(scope: Scope) -> str:
    """Why a call has no history: it is off, or kept for another project."""
    return HISTORY_OFF if scope.app.kept_history is None else HISTORY_ELSEWHERE


async def recent_events(scope: Scope, room: str, since: float, limit: int, cursor: str = "") -> Page | str:
    """The room's events from history, or the sentence saying why there are none to give (off, or unavailable)."""
    store = scope.history
    if store is None:
        return _no_history(scope)
    scope.policy.check_room(room, changes=False)  # history obeys allowed_rooms like LiveKit's calls
    try:
        return await store.events(room, since, limit, cursor or None)
    except ValueError as exc:
        raise InvalidInput("cursor", str(exc).removeprefix("cursor ")) from None
    except StoreError as exc:
        return f"Room history is unavailable: {exc}. LiveKit's live state (get_room) still answers."


@tool("rooms", READ)
async def room_history(
    scope: Scope,
    room: AnyRoom = "",
    since: Since = "",
    limit: Annotated[int, Field(ge=1, le=500)] = 100,
    cursor: Cursor = "",
    agent_name: Annotated[
        str,
        Field(max_length=256, description="Rooms it was expected in, joined, missed."),
        AfterValidator(optional_name),
    ] = "",
) -> Annotated[CallToolResult, RoomHistory]:
    """Room history from LiveKit's webhooks: who came and left and why, tracks, changes made here. No room: recent
    rooms; agent_name: that agent's record."""
    if agent_name:
        if room:
            raise InvalidInput("agent_name", "give room or agent_name, not both")
        return await _agent_record(scope, agent_name, since_time(since))
    if not room:
        return await _recent_rooms(scope, since_time(since), limit)
    found = await recent_events(scope, room, since_time(since), limit, cursor)
    if isinstance(found, str):
        status: Literal["off", "unavailable"] = "off" if found in (HISTORY_OFF, HISTORY_ELSEWHERE) else "unavailable"
        return reply(RoomHistory(history=status, room=room, note=found), found)
    sessions = sessions_of(found.events)
    result = RoomHistory(history="on", room=room, sessions=sessions, next_cursor=found.cursor)
    missing = await _gaps(scope, since_time(since))
    if not found.events:
        note = (
            f"No history of room '{shown(room)}' since {iso(since_time(since))}: no webhook about it reached this "
            "server (is LiveKit's webhook URL pointed at /webhooks/livekit? see the README's Room history)."
        )
        note = f"{note} {missing}" if missing else note
        return reply(result.model_copy(update={"note": note}), note)
    lines = [f"Room '{shown(room)}': {len(found.events)} event(s) in {len(sessions)} session(s)."]
    if missing:
        result = result.model_copy(update={"note": missing})
        lines.append(missing)
    for session in sessions:
        lines.append(
            f"Session {shown(session.room_sid)} (started {session.started or '?'}, ended {session.ended or 'not yet'}):"
        )
        lines += [f"- {e.at} {e.said}" for e in session.events]
    return reply(result, "\n".join(lines) + more_text(found.cursor))


async def _gaps(scope: Scope, since: float) -> str:
    """What room history may be missing since `since`: webhooks LiveKit sent that could not be taken (about which
    room is unknown, so every room's history says so)."""
    store = scope.history
    if store is None:
        return ""
    try:
        return gaps_note(await gaps_since(store, since))
    except StoreError:
        return ""  # the events were read a moment ago; a store failing now is told by the next call


async def _agent_record(scope: Scope, agent_name: str, since: float) -> CallToolResult:
    """room_history(agent_name=…): the agent's health over the period (agent_health.py), in the rooms the policy
    lets this caller see."""
    store = scope.history
    if store is None:
        return reply(RoomHistory(history="off", note=_no_history(scope)), _no_history(scope))
    try:
        health = await health_of(store, agent_name, since, scope.policy.visible)
    except StoreError as exc:
        note = f"Room history is unavailable: {exc}."
        return reply(RoomHistory(history="unavailable", note=note), note)
    return reply(RoomHistory(history="on", agent=health), told_health(health))


async def _recent_rooms(scope: Scope, since: float, limit: int) -> CallToolResult:
    store = scope.history
    if store is None:
        return reply(RoomHistory(history="off", note=_no_history(scope)), _no_history(scope))
    policy = scope.policy
    rooms: dict[tuple[str, str], RecentRoom] = {}
    last_sid: dict[str, str] = {}
    cursor: str | None = None
    try:
        for _ in range(20):  # 20 pages of 500: the last 10,000 events
            page = await store.events(None, since, 500, cursor)
            for event in page.events:
                if not event.room or not policy.visible(event.room):  # "": the gaps, of no room
                    continue
                sid = event.room_sid or last_sid.get(event.room, "")  # a change made through us: that session
                last_sid[event.room] = sid
                key = (event.room, sid)
                seen = rooms.setdefault(key, RecentRoom(room=event.room, room_sid=sid, last_event=None, events=0))
                seen.events += 1
                seen.last_event = iso(event.at)
                if event.event == "room_finished":
                    seen.ended = iso(event.at)
            if (cursor := page.cursor) is None:
                break
    except StoreError as exc:
        note = f"Room history is unavailable: {exc}."
        return reply(RoomHistory(history="unavailable", note=note), note)
    recent = sorted(rooms.values(), key=lambda r: r.last_event or "", reverse=True)[:limit]
    result = RoomHistory(history="on", rooms=recent)
    if not recent:
        note = f"No room history since {iso(since)}: no webhook reached this server in that time."
        return reply(result.model_copy(update={"note": note}), note)
    lines = [f"{len(recent)} room session(s) since {iso(since)}, latest first:"]
    lines += [
        f"- {shown(r.room)} ({shown(r.room_sid)}): {r.events} event(s), last {r.last_event}, "
        + (f"ended {r.ended}" if r.ended else "live as far as the webhooks tell")
        for r in recent
    ]
    return reply(result, "\n".join(lines))


@tool("rooms", CHANGE)
async def create_room(
    scope: Scope,
    room: RoomName,
    empty_timeout: Annotated[int | None, Field(ge=0, le=2**32 - 1, description="Seconds kept open empty.")] = None,
    departure_timeout: Annotated[
        int | None, Field(ge=0, le=2**32 - 1, description="Seconds kept open after the last one leaves.")
    ] = None,
    max_participants: Annotated[int | None, Field(ge=0, le=2**32 - 1)] = None,
    metadata: Metadata = "",
) -> Annotated[CallToolResult, CreatedRoom]:
    """Create a room; an existing one is returned as it is (LiveKit ignores the settings)."""
    lk = scope.livekit
    existed = bool(await lk.list_rooms([room]))
    made = await lk.create_room(
        room,
        empty_timeout=empty_timeout or 0,
        departure_timeout=departure_timeout or 0,
        max_participants=max_participants or 0,
        metadata=metadata,
    )
    # CreateRoom is get-or-create: livekit-server v1.13.5 returns a live room as it is and ignores the
    # settings of the request, so the report compares what was asked with what the room has.
    asked = {
        "empty_timeout": (empty_timeout, made.empty_timeout),
        "departure_timeout": (departure_timeout, made.departure_timeout),
        "max_participants": (max_participants, made.max_participants),
        "metadata": (metadata or None, made.metadata),
    }
    not_applied = {k: wanted for k, (wanted, actual) in asked.items() if wanted is not None and wanted != actual}
    result = CreatedRoom(
        room=RoomSummary.of(made),
        created=not existed,
        empty_timeout=made.empty_timeout,
        departure_timeout=made.departure_timeout,
        max_participants=made.max_participants or None,
        not_applied=not_applied or None,
    )
    actual = (
        f"empty timeout {made.empty_timeout} s, departure timeout {made.departure_timeout} s, "
        f"max participants {made.max_participants or 'unlimited'}, metadata {len(made.metadata.encode())} bytes"
    )
    if existed:
        text = f"Room '{room}' already existed ({made.sid}) and was left unchanged: {actual}."
        if not_applied:
            text += (
                f" Not applied (LiveKit ignores settings for an existing room): {', '.join(not_applied)}. "
                "update_room_metadata changes the metadata; the other settings only apply to a new room "
                "(delete_room, then create_room)."
            )
        return reply(result, text)
    text = f"Created room '{room}' ({made.sid}): {actual}."
    if not_applied:
        text += f" LiveKit did not apply: {', '.join(not_applied)}."
    return reply(result, text)


@tool("rooms", CHANGE)
async def update_room_metadata(
    scope: Scope, room: RoomName, metadata: Metadata
) -> Annotated[CallToolResult, RoomSummary]:
    """Replace a room's metadata (every participant is notified)."""
    updated = await scope.livekit.update_room_metadata(room, metadata)
    return reply(RoomSummary.of(updated), f"Updated the metadata of room '{room}' ({len(metadata.encode())} bytes).")


async def _delete_room_plan(scope: Scope, room: str) -> Planned[list[Participant]]:
    lk = scope.livekit
    info = await lk.get_room(room)
    participants = await lk.list_participants(room)
    counts = by_kind(participants)
    # Who besides ordinary participants would be cut off: agents and phone callers, by name.
    notable: dict[str, list[Participant]] = {}
    for p in participants:
        if p.effective_kind != "STANDARD":
            notable.setdefault(p.effective_kind, []).append(p)
    who = "; ".join(f"{kind}: {names_text(group)}" for kind, group in sorted(notable.items()))
    who = f" ({who})" if who else ""
    question = (
        f"This deletes room '{room}' and disconnects {len(participants)} participant(s): {counts_text(counts)}{who}."
    )
    # Bound to who is in it, by sid: a confirmation for an empty room does not delete it once people joined.
    targets = [info.sid, *sorted(p.sid for p in participants)]
    gone = [leaving(p, "the room is deleted") for p in participants]
    plan = Plan("delete_room", room, {"room": room}, targets, question, gone, type_to_confirm=room)
    return Planned(plan, participants, _deleted(plan, participants))


def _deleted(plan: Plan, participants: list[Participant]) -> DeletedRoom:
    return DeletedRoom(
        room=plan.room, sid=plan.targets[0], disconnected=plan.disconnects, total_disconnected=len(participants)
    )


@tool("rooms", DESTRUCTIVE, confirm=Confirm(_delete_room_plan, TypedName))
async def delete_room(
    scope: Scope, room: RoomName, planned: Planned[list[Participant]]
) -> Annotated[CallToolResult, DeletedRoom]:
    """Delete a room, disconnecting everyone in it (asks first)."""
    await scope.livekit.delete_room(room)
    disconnected = counts_text(planned.plan.disconnects)
    return reply(_deleted(planned.plan, planned.found), f"Deleted room '{room}'; disconnected {disconnected}.")
