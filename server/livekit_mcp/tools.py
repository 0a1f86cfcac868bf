"""The MCP tools: thin, typed functions over the LiveKit seam.

Arguments are validated by pydantic before anything is sent to LiveKit; a tool answers with compact
structured content (its return model) plus a short text for clients that show only text. Each tool belongs
to a toolset (`rooms`, `participants`, `agents`, `data`); `register` adds the enabled ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast, get_args

import anyio
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from livekit_mcp.audit import AuditLog, audited
from livekit_mcp.config import TOOLSETS
from livekit_mcp.confirm import Consent, Decision, Guard, Plan, TypedName, stopped_text
from livekit_mcp.errors import (
    DispatchNotFound,
    InvalidInput,
    NotFound,
    ParticipantNotFound,
    RoomNotFound,
    ServerFailure,
)
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import (
    AgentInfo,
    AgentList,
    Confirmable,
    CreatedRoom,
    DeletedRoom,
    Dispatch,
    DispatchInfo,
    DispatchList,
    DispatchResult,
    MutedTrack,
    Participant,
    ParticipantDetail,
    ParticipantList,
    ParticipantSummary,
    Permission,
    RemovedAgents,
    RemovedParticipant,
    RoomDetail,
    RoomList,
    RoomSummary,
    SentData,
    TrackDetail,
    UpdatedParticipant,
)

T = TypeVar("T")
Toolset = Literal["rooms", "participants", "agents", "data"]
assert get_args(Toolset) == TOOLSETS, "config.TOOLSETS names the same toolsets"


@dataclass
class AppContext:
    """What the lifespan hands every tool."""

    livekit: LiveKit
    guard: Guard
    audit: AuditLog


def _app(ctx: Context) -> AppContext:
    # The SDK types the lifespan context loosely; ours is always the AppContext that app.lifespan yields.
    return cast(AppContext, ctx.request_context.lifespan_context)


def _livekit(ctx: Context) -> LiveKit:
    return _app(ctx).livekit


# --- Argument types: LiveKit accepts any string and simply matches nothing, so the checks are ours --------


def _plain_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return _no_control_characters(value)


def _utf8(value: str) -> str:
    """JSON can carry lone surrogates ("\\ud800"); protobuf, and so LiveKit, cannot."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it has a lone surrogate)") from None
    return value


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return _utf8(value)


def _optional_name(value: str) -> str:
    return _plain_name(value) if value else value


def _max_bytes(limit: int, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(_utf8(value).encode()) > limit:
            raise ValueError(f"{what} is limited to {limit:,} bytes (UTF-8)")
        return value

    return check


def _attributes_size(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:  # the validator sees the optional argument whole: an explicit null comes here too
        return value
    if sum(len(_utf8(k).encode()) + len(_utf8(v).encode()) for k, v in value.items()) > 64 * 1024:
        raise ValueError("attributes are limited to 64 KiB in all")
    if any(not k.strip() for k in value):
        raise ValueError("attribute names must not be empty")
    return value


RoomName = Annotated[str, Field(min_length=1, max_length=256, description="Room name."), AfterValidator(_plain_name)]
Identity = Annotated[
    str, Field(min_length=1, max_length=256, description="Participant identity."), AfterValidator(_plain_name)
]
AgentName = Annotated[
    str, Field(min_length=1, max_length=256, description="Agent name (lk.agent_name)."), AfterValidator(_plain_name)
]
DispatchId = Annotated[
    str, Field(min_length=1, max_length=64, description="AD_… id from list_dispatches."), AfterValidator(_plain_name)
]
TrackSid = Annotated[
    str, Field(min_length=1, max_length=64, description="TR_… sid from get_participant."), AfterValidator(_plain_name)
]
Metadata = Annotated[str, AfterValidator(_max_bytes(512 * 1024, "metadata"))]
# Optional strings are typed `str` with "" for "not given": the SDK would JSON-decode any other string-typed
# argument, turning metadata like '{"a": 1}' into an object.
Cursor = Annotated[str, Field(max_length=1024, description="next_cursor from the previous page.")]
AnyRoom = Annotated[
    str,
    Field(max_length=256, description="Search only this room; every room when omitted."),
    AfterValidator(_optional_name),
]
AnyAgentName = Annotated[
    str, Field(max_length=256, description="Only agents of this name (lk.agent_name)."), AfterValidator(_optional_name)
]
AnyIdentity = Annotated[
    str, Field(max_length=256, description="Only the participant with this identity."), AfterValidator(_optional_name)
]
ConfirmToken = Annotated[
    str, Field(max_length=200, description="The confirm_token of the previous answer, to go ahead.")
]
Kind = Literal["STANDARD", "AGENT", "SIP", "INGRESS", "EGRESS", "CONNECTOR", "BRIDGE"]

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
CHANGE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
SEND = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

# --- Registration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tool:
    fn: Callable[..., Any]
    toolset: Toolset
    annotations: ToolAnnotations


_TOOLS: list[_Tool] = []


def _tool(toolset: Toolset, annotations: ToolAnnotations) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def add(fn: Callable[..., T]) -> Callable[..., T]:
        _TOOLS.append(_Tool(fn, toolset, annotations))
        return fn

    return add


def build_tools(
    *, toolsets: Collection[str] = TOOLSETS, read_only: bool = False, output_schemas: bool = False
) -> list[Tool]:
    """The tools of the enabled toolsets (in read-only mode, only those that change nothing), with compact schemas.

    Every byte of tools/list is read into the model's context, so schema titles go, and output schemas (which
    clients use to validate, models rarely read) are published only when asked for: that halves tools/list.
    """
    tools: list[Tool] = []
    for entry in _TOOLS:
        if entry.toolset not in toolsets or (read_only and not entry.annotations.read_only_hint):
            continue
        fn = entry.fn if entry.annotations.read_only_hint else audited(entry.fn, lambda ctx: _app(ctx).audit)
        tool = Tool.from_function(fn, annotations=entry.annotations)
        tool.parameters = _without_titles(tool.parameters)
        schema = tool.fn_metadata.output_schema
        tool.fn_metadata.output_schema = _output_schema(schema) if output_schemas and schema else None
        tools.append(tool)
    return tools


def _without_titles(node: Any) -> Any:
    """A JSON schema without pydantic's `title`s, which repeat the property and model names."""
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    return node


def _output_schema(node: Any) -> Any:
    """An output schema without titles, defaults and `| null`: tools leave empty fields out instead of sending null."""
    if isinstance(node, dict):
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and len(alternatives) == 2 and {"type": "null"} in alternatives:
            (kept,) = (a for a in alternatives if a != {"type": "null"})
            return _output_schema({**kept, **{k: v for k, v in node.items() if k not in ("anyOf", "default")}})
        return {
            k: _output_schema(v)
            for k, v in node.items()
            if k != "default" and not (k == "title" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_output_schema(v) for v in node]
    return node


def invalid_arguments(tool: str, error: ValidationError) -> str:
    """Pydantic's report on a tool's arguments as one line per field, without its type codes and links."""
    problems = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or "arguments"
        if e["type"] == "missing":
            problems.append(f"{field}: required")
            continue
        shown = repr(e["input"])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        problems.append(f"{field}: {str(e['msg']).removeprefix('Value error, ')} (got {shown})")
    return f"invalid arguments for {tool}, nothing was sent to LiveKit: " + "; ".join(problems)


# --- Output helpers ----------------------------------------------------------------------------------


def reply(result: BaseModel, text: str) -> CallToolResult:
    """Structured content without empty fields, plus the readable text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


def _after(cursor: str) -> list[Any] | None:
    """The sort key a cursor carries (that of the last item shown), or None for the first page."""
    if not cursor:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput("cursor", "not a cursor this server returned; omit it to start from the top") from exc
    if not isinstance(after, list):
        raise InvalidInput("cursor", "not a cursor this server returned; omit it to start from the top")
    return after


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _page(items: Sequence[T], key: Callable[[T], list[Any]], limit: int, cursor: str) -> tuple[list[T], str | None]:
    """One page of `items` (already sorted by `key`) after the cursor, and the cursor of the next page.

    The cursor is the sort key of the last item shown, so a page stays right when items come and go.
    """
    after = _after(cursor)
    start = 0
    while after is not None and start < len(items) and key(items[start]) <= after:
        start += 1
    page = list(items[start : start + limit])
    return page, _cursor(key(page[-1])) if start + limit < len(items) and page else None


def _participant_line(p: ParticipantSummary) -> str:
    name = f' "{p.name}"' if p.name else ""
    agent = f" agent={p.agent_name or '?'} state={p.agent_state or '?'}" if p.agent_name or p.agent_state else ""
    tracks = ""
    if p.tracks:
        tracks = f", tracks audio={p.tracks.audio} video={p.tracks.video} muted={p.tracks.muted}"
    return f"- {p.identity}{name} {p.kind} {p.state}{agent}, joined {p.joined_at or '?'}{tracks}"


def _agent_line(a: AgentInfo) -> str:
    return f"- {a.identity} in '{a.room}': agent={a.agent_name or '?'} state={a.state or '?'}"


def _more(next_cursor: str | None) -> str:
    return f"\nMore: call again with cursor='{next_cursor}'." if next_cursor else ""


def _by_kind(participants: Sequence[Participant]) -> dict[str, int]:
    return dict(Counter(p.effective_kind for p in participants))


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nobody"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


async def _participants_of_existing_room(lk: LiveKit, room: str) -> list[Participant]:
    """Participants of a room that must exist: LiveKit lists a missing room as empty, so an empty answer is checked."""
    participants = await lk.list_participants(room)
    if not participants:
        await lk.get_room(room)
    return participants


def _matches(p: Participant, agent_name: str, identity: str) -> bool:
    """An agent, of this name and identity where they are given ("" = any)."""
    return p.is_agent and agent_name in ("", p.agent_name) and identity in ("", p.identity)


def _not_done(result: Confirmable, plan: Plan, decision: Decision) -> CallToolResult:
    """The answer of a destructive call that changed nothing: the plan, and how to go ahead if it can."""
    update = {"outcome": decision.outcome, "confirm_token": decision.confirm_token, "expires_at": decision.expires_at}
    return reply(result.model_copy(update=update), stopped_text(plan, decision))


def _names(participants: Sequence[Participant], limit: int = 5) -> str:
    shown = [f"'{p.identity}'" + (f" ({p.agent_name})" if p.agent_name else "") for p in participants[:limit]]
    more = f" and {len(participants) - limit} more" if len(participants) > limit else ""
    return ", ".join(shown) + more


# --- rooms -------------------------------------------------------------------------------------------


@_tool("rooms", READ)
async def list_rooms(
    ctx: Context,
    names: Annotated[list[RoomName] | None, Field(max_length=100, description="Only these rooms.")] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
    cursor: Cursor = "",
) -> Annotated[CallToolResult, RoomList]:
    """List the rooms on the LiveKit server with participant counts, sorted by name."""
    rooms = sorted(await _livekit(ctx).list_rooms(names or ()), key=lambda r: r.name)
    page, next_cursor = _page(rooms, lambda r: [r.name], limit, cursor)
    found = {r.name for r in rooms}
    not_found = [n for n in dict.fromkeys(names or ()) if n not in found] or None
    result = RoomList(
        rooms=[RoomSummary.of(r) for r in page], total=len(rooms), next_cursor=next_cursor, not_found=not_found
    )
    lines = [f"{len(rooms)} room(s); showing {len(page)}."]
    lines += [f"- {r.name} ({r.participants} participants, created {r.created_at or '?'})" for r in result.rooms]
    if not_found:
        lines.append(f"Not rooms: {', '.join(not_found)}.")
    return reply(result, "\n".join(lines) + _more(next_cursor))


async def room_detail(lk: LiveKit, room: str) -> RoomDetail:
    """Everything about one room in two round trips (shared by get_room and the room resource)."""
    info = await lk.get_room(room)
    async with anyio.create_task_group() as tg:
        results: dict[str, Any] = {}

        async def fetch(key: str, call: Callable[[str], Any]) -> None:
            results[key] = await call(room)

        tg.start_soon(fetch, "participants", lk.list_participants)
        tg.start_soon(fetch, "dispatches", lk.list_dispatches)
    participants: list[Participant] = results["participants"]
    return RoomDetail(
        room=RoomSummary.of(info),
        running_for=_duration(time.time() - info.creation_time) if info.creation_time else None,
        empty_timeout=info.empty_timeout,
        departure_timeout=info.departure_timeout,
        max_participants=info.max_participants or None,
        participants_by_kind=_by_kind(participants),
        publishers=[p.identity for p in participants if p.is_publisher],
        agents=[AgentInfo.of(room, p) for p in participants if p.is_agent],
        dispatches=[DispatchInfo.of(d) for d in results["dispatches"]],
    )


@_tool("rooms", READ)
async def get_room(ctx: Context, room: RoomName) -> Annotated[CallToolResult, RoomDetail]:
    """What is going on in a room: who by kind, the agents and their state, dispatches, publishers, uptime."""
    detail = await room_detail(_livekit(ctx), room)
    lines = [
        f"Room '{room}' ({detail.room.sid}), running for {detail.running_for or '?'}: "
        f"{_counts(detail.participants_by_kind)}; {len(detail.publishers)} publishing.",
        *map(_agent_line, detail.agents),
        *(f"- dispatch {d.id} agent_name='{d.agent_name}' jobs={len(d.jobs or [])}" for d in detail.dispatches),
    ]
    return reply(detail, "\n".join(lines))


@_tool("rooms", CHANGE)
async def create_room(
    ctx: Context,
    room: RoomName,
    empty_timeout: Annotated[int | None, Field(ge=0, le=2**32 - 1, description="Seconds kept open empty.")] = None,
    departure_timeout: Annotated[
        int | None, Field(ge=0, le=2**32 - 1, description="Seconds kept open after the last one leaves.")
    ] = None,
    max_participants: Annotated[int | None, Field(ge=0, le=2**32 - 1)] = None,
    metadata: Metadata = "",
) -> Annotated[CallToolResult, CreatedRoom]:
    """Create a room, or return it if it exists (LiveKit applies the non-zero settings given to it)."""
    lk = _livekit(ctx)
    existed = bool(await lk.list_rooms([room]))
    made = await lk.create_room(
        room,
        empty_timeout=empty_timeout or 0,
        departure_timeout=departure_timeout or 0,
        max_participants=max_participants or 0,
        metadata=metadata,
    )
    result = CreatedRoom(
        room=RoomSummary.of(made),
        created=not existed,
        empty_timeout=made.empty_timeout,
        departure_timeout=made.departure_timeout,
        max_participants=made.max_participants or None,
    )
    if existed:
        return reply(result, f"Room '{room}' already existed ({made.sid}); the settings given were applied to it.")
    return reply(result, f"Created room '{room}' ({made.sid}), empty timeout {made.empty_timeout} s.")


@_tool("rooms", CHANGE)
async def update_room_metadata(
    ctx: Context, room: RoomName, metadata: Metadata
) -> Annotated[CallToolResult, RoomSummary]:
    """Replace a room's metadata (every participant is notified)."""
    updated = await _livekit(ctx).update_room_metadata(room, metadata)
    return reply(RoomSummary.of(updated), f"Updated the metadata of room '{room}' ({len(metadata.encode())} bytes).")


async def _delete_room_plan(lk: LiveKit, room: str) -> tuple[Plan, list[Participant]]:
    info = await lk.get_room(room)
    participants = await lk.list_participants(room)
    counts = _by_kind(participants)
    # Who besides ordinary participants would be cut off: agents and phone callers, by name.
    notable: dict[str, list[Participant]] = {}
    for p in participants:
        if p.effective_kind != "STANDARD":
            notable.setdefault(p.effective_kind, []).append(p)
    who = "; ".join(f"{kind}: {_names(group)}" for kind, group in sorted(notable.items()))
    who = f" ({who})" if who else ""
    question = f"This deletes room '{room}' and disconnects {len(participants)} participant(s): {_counts(counts)}{who}."
    plan = Plan("delete_room", room, {"room": room}, [info.sid], question, counts, type_to_confirm=room)
    return plan, participants


async def _ask_delete_room(ctx: Context, room: str, confirm_token: str) -> Elicit[TypedName] | str:
    return await _app(ctx).guard.ask(ctx, confirm_token, lambda: _delete_room_plan(_livekit(ctx), room), TypedName)


@_tool("rooms", DESTRUCTIVE)
async def delete_room(
    ctx: Context,
    room: RoomName,
    answer: Annotated[ElicitationResult[TypedName], Resolve(_ask_delete_room)],
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, DeletedRoom]:
    """Delete a room, disconnecting everyone in it (asks for confirmation first)."""
    lk = _livekit(ctx)
    plan, participants = await _delete_room_plan(lk, room)
    result = DeletedRoom(
        room=room, sid=plan.targets[0], disconnected=plan.disconnects, total_disconnected=len(participants)
    )
    decision = _app(ctx).guard.decide(plan, answer, confirm_token)
    if not decision.proceed:
        return _not_done(result, plan, decision)
    await lk.delete_room(room)
    return reply(result, f"Deleted room '{room}'; disconnected {_counts(plan.disconnects)}.")


# --- participants ------------------------------------------------------------------------------------


@_tool("participants", READ)
async def list_participants(
    ctx: Context,
    room: RoomName,
    kind: Annotated[Kind | None, Field(description="Only participants of this kind.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    cursor: Cursor = "",
) -> Annotated[CallToolResult, ParticipantList]:
    """List who is in a room (identity, kind, state, tracks; agents with their name and state)."""
    lk = _livekit(ctx)
    after = _after(cursor)
    try:
        key = None if after is None else (float(after[0]), str(after[1]))
    except (IndexError, TypeError, ValueError) as exc:
        raise InvalidInput("cursor", "not a cursor of list_participants; omit it to start from the top") from exc
    page = await lk.participant_page(room, kind=kind, limit=limit, after=key)
    if not page.anyone:
        await lk.get_room(room)  # LiveKit lists a missing room as an empty one: tell them apart
    last = page.participants[-1] if page.participants else None
    next_cursor = _cursor([last.joined_at, last.identity]) if page.more and last else None
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
    return reply(result, "\n".join([head, *map(_participant_line, result.participants)]) + _more(next_cursor))


@_tool("participants", READ)
async def get_participant(
    ctx: Context, room: RoomName, identity: Identity
) -> Annotated[CallToolResult, ParticipantDetail]:
    """Everything about one participant: tracks, permission, attributes, metadata, kind details."""
    detail = ParticipantDetail.of(room, await _livekit(ctx).get_participant(room, identity))
    tracks = ", ".join(f"{t.sid} {t.type}/{t.source}{' muted' if t.muted else ''}" for t in detail.tracks) or "none"
    agent = f", agent={detail.agent_name} state={detail.agent_state}" if detail.agent_name else ""
    return reply(detail, f"'{identity}' in '{room}': {detail.kind} {detail.state}{agent}; tracks: {tracks}.")


@_tool("participants", CHANGE)
async def update_participant(
    ctx: Context,
    room: RoomName,
    identity: Identity,
    name: Annotated[
        str, Field(max_length=256, description="New display name."), AfterValidator(_no_control_characters)
    ] = "",
    metadata: Annotated[Metadata, Field(description='New metadata (LiveKit reads "" as no change).')] = "",
    attributes: Annotated[
        dict[str, str] | None,
        Field(description='Merged into the attributes; a "" value deletes that key.'),
        AfterValidator(_attributes_size),
    ] = None,
    permission: Annotated[
        Permission | None, Field(description="Replaces the whole permission: give every field you want set.")
    ] = None,
) -> Annotated[CallToolResult, UpdatedParticipant]:
    """Change a participant's name, metadata, attributes or permission."""
    if not name and not metadata and attributes is None and permission is None:
        raise InvalidInput("name", "give at least one of name, metadata, attributes, permission")
    lk = _livekit(ctx)
    before = await lk.get_participant(room, identity)
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
    result = UpdatedParticipant(
        participant=ParticipantDetail.of(room, after),
        changed=changed,
        permission_before=before.permission if permission is not None else None,
    )
    return reply(result, text)


@_tool("participants", CHANGE)
async def mute_track(
    ctx: Context,
    room: RoomName,
    identity: Identity,
    track_sid: TrackSid,
    muted: bool,
) -> Annotated[CallToolResult, MutedTrack]:
    """Mute (or unmute) a track a participant publishes."""
    lk = _livekit(ctx)
    # Checked first: for a missing room or participant LiveKit itself only answers after a ~15 s timeout.
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


async def _remove_participant_plan(lk: LiveKit, room: str, identity: str) -> tuple[Plan, Participant]:
    target = await lk.get_participant(room, identity)
    name = f' ("{target.name}")' if target.name else ""
    question = f"This disconnects {target.effective_kind} participant '{identity}'{name} from room '{room}'."
    args = {"room": room, "identity": identity}
    return Plan("remove_participant", room, args, [target.sid], question, {target.effective_kind: 1}), target


async def _ask_remove_participant(ctx: Context, room: str, identity: str, confirm_token: str) -> Elicit[Consent] | str:
    lk = _livekit(ctx)
    return await _app(ctx).guard.ask(ctx, confirm_token, lambda: _remove_participant_plan(lk, room, identity), Consent)


@_tool("participants", DESTRUCTIVE)
async def remove_participant(
    ctx: Context,
    room: RoomName,
    identity: Identity,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_remove_participant)],
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, RemovedParticipant]:
    """Disconnect a participant from a room (their token stays valid, so they can rejoin)."""
    lk = _livekit(ctx)
    plan, target = await _remove_participant_plan(lk, room, identity)
    notes = ["Their join token is not revoked: they can rejoin with it until it expires."]
    if target.is_agent:
        notes.append(
            "This is an agent: its dispatch is still there. The open-source server does not relaunch it, "
            "but LiveKit Cloud may; remove_agent with keep_out=true or cancel_dispatch keeps it out."
        )
    result = RemovedParticipant(
        room=room,
        identity=identity,
        sid=target.sid,
        kind=target.effective_kind,
        name=target.name or None,
        agent_name=target.agent_name,
        notes=notes,
    )
    decision = _app(ctx).guard.decide(plan, answer, confirm_token)
    if not decision.proceed:
        return _not_done(result, plan, decision)
    await lk.remove_participant(room, identity)
    return reply(result, f"Removed {target.effective_kind} participant '{identity}' from '{room}'. " + " ".join(notes))


# --- agents ------------------------------------------------------------------------------------------


@_tool("agents", READ)
async def find_agent(
    ctx: Context,
    room: AnyRoom = "",
    agent_name: AnyAgentName = "",
) -> Annotated[CallToolResult, AgentList]:
    """Find AI agent participants (their identity, agent name and state) in one room or in every room."""
    lk = _livekit(ctx)
    if room:
        rooms, per_room = [room], [await _participants_of_existing_room(lk, room)]
    else:
        # Empty rooms hold no agent: skipping them saves a call per idle room on large deployments.
        rooms = sorted(r.name for r in await lk.list_rooms() if r.num_participants)
        per_room = await lk.gather(lk.list_participants, rooms)
    agents = [
        AgentInfo.of(name, p)
        for name, participants in zip(rooms, per_room, strict=True)
        for p in participants
        if _matches(p, agent_name, "")
    ]
    result = AgentList(agents=agents, rooms_searched=len(rooms))
    where = f"room '{room}'" if room else f"{len(rooms)} room(s) with participants"
    named = f" named '{agent_name}'" if agent_name else ""
    return reply(result, "\n".join([f"{len(agents)} agent(s){named} in {where}.", *map(_agent_line, agents)]))


@_tool("agents", READ)
async def list_dispatches(ctx: Context, room: RoomName) -> Annotated[CallToolResult, DispatchList]:
    """List a room's agent dispatches and their jobs."""
    lk = _livekit(ctx)
    await lk.get_room(room)  # LiveKit only times out (~15 s) on a missing room
    dispatches = [DispatchInfo.of(d) for d in await lk.list_dispatches(room)]
    lines = [f"{len(dispatches)} dispatch(es) in '{room}'."]
    lines += [f"- {d.id} agent_name='{d.agent_name}' jobs={len(d.jobs or [])}" for d in dispatches]
    return reply(DispatchList(room=room, dispatches=dispatches), "\n".join(lines))


@_tool("agents", SEND)
async def dispatch_agent(
    ctx: Context,
    room: RoomName,
    agent_name: AgentName,
    metadata: Annotated[Metadata, Field(description="Job metadata the agent receives.")] = "",
) -> Annotated[CallToolResult, DispatchResult]:
    """Send an agent into a room (the room is created if needed); a worker serving agent_name must be running."""
    lk = _livekit(ctx)
    existed = bool(await lk.list_rooms([room]))
    dispatch = await lk.create_dispatch(room, agent_name, metadata)
    notes = [
        "LiveKit accepts a dispatch even when no worker serves this agent name: "
        "find_agent shows whether the agent actually joined."
    ]
    if not existed:
        notes.append(f"Room '{room}' did not exist and was created.")
    result = DispatchResult(room=room, dispatch=DispatchInfo.of(dispatch), notes=notes)
    return reply(result, f"Dispatched '{agent_name}' to '{room}' as {dispatch.id}. " + " ".join(notes))


async def _cancel_dispatch_plan(lk: LiveKit, room: str, dispatch_id: str) -> tuple[Plan, Dispatch]:
    await lk.get_room(room)  # LiveKit only times out (~15 s) on a missing room
    dispatch = next((d for d in await lk.list_dispatches(room) if d.id == dispatch_id), None)
    if dispatch is None:
        raise DispatchNotFound(room, dispatch_id)
    running = [j for j in dispatch.jobs if j.status in ("JS_RUNNING", "JS_PENDING")]
    question = (
        f"This deletes dispatch {dispatch_id} of agent '{dispatch.agent_name}' in room '{room}'; "
        f"its {len(running)} running job(s) end and their agents leave."
    )
    targets = [dispatch_id, *(j.id for j in dispatch.jobs)]
    plan = Plan(
        "cancel_dispatch", room, {"room": room, "dispatch_id": dispatch_id}, targets, question, {"AGENT": len(running)}
    )
    return plan, dispatch


async def _ask_cancel_dispatch(ctx: Context, room: str, dispatch_id: str, confirm_token: str) -> Elicit[Consent] | str:
    lk = _livekit(ctx)
    return await _app(ctx).guard.ask(ctx, confirm_token, lambda: _cancel_dispatch_plan(lk, room, dispatch_id), Consent)


@_tool("agents", DESTRUCTIVE)
async def cancel_dispatch(
    ctx: Context,
    room: RoomName,
    dispatch_id: DispatchId,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_cancel_dispatch)],
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, DispatchResult]:
    """Delete an agent dispatch; its running jobs end, so its agents leave the room."""
    lk = _livekit(ctx)
    plan, dispatch = await _cancel_dispatch_plan(lk, room, dispatch_id)
    result = DispatchResult(room=room, dispatch=DispatchInfo.of(dispatch))
    decision = _app(ctx).guard.decide(plan, answer, confirm_token)
    if not decision.proceed:
        return _not_done(result, plan, decision)
    deleted = await lk.delete_dispatch(room, dispatch_id)
    return reply(
        result.model_copy(update={"dispatch": DispatchInfo.of(deleted)}),
        f"Cancelled dispatch {dispatch_id} of '{deleted.agent_name}' in '{room}'.",
    )


async def _remove_agent_plan(
    lk: LiveKit, room: str, agent_name: str, identity: str, keep_out: bool
) -> tuple[Plan, tuple[list[Participant], list[Dispatch]]]:
    participants = await _participants_of_existing_room(lk, room)
    agents = [p for p in participants if _matches(p, agent_name, identity)]
    if not agents:
        present = ", ".join(f"{p.identity} ({p.agent_name or '?'})" for p in participants if p.is_agent) or "none"
        raise NotFound(f"no agent matching that in room '{room}'; agents there: {present}")
    dispatches: list[Dispatch] = []
    if keep_out:
        names = {p.agent_name for p in agents if p.agent_name}
        identities = {p.identity for p in agents}
        dispatches = [
            d
            for d in await lk.list_dispatches(room)
            if d.agent_name in names or any(j.participant_identity in identities for j in d.jobs)
        ]
    also = (
        f" and deletes dispatch(es) {', '.join(d.id for d in dispatches)} so they are not sent back"
        if dispatches
        else ""
    )
    question = f"This removes agent(s) {_names(agents)} from room '{room}'{also}."
    args = {"room": room, "agent_name": agent_name, "identity": identity, "keep_out": keep_out}
    targets = [p.sid for p in agents] + [d.id for d in dispatches]
    return Plan("remove_agent", room, args, targets, question, {"AGENT": len(agents)}), (agents, dispatches)


async def _ask_remove_agent(
    ctx: Context, room: str, agent_name: str, identity: str, keep_out: bool, confirm_token: str
) -> Elicit[Consent] | str:
    lk = _livekit(ctx)
    return await _app(ctx).guard.ask(
        ctx, confirm_token, lambda: _remove_agent_plan(lk, room, agent_name, identity, keep_out), Consent
    )


@_tool("agents", DESTRUCTIVE)
async def remove_agent(
    ctx: Context,
    room: RoomName,
    answer: Annotated[ElicitationResult[Consent], Resolve(_ask_remove_agent)],
    agent_name: AnyAgentName = "",
    identity: AnyIdentity = "",
    keep_out: Annotated[bool, Field(description="Also delete their dispatches, so they are not sent back.")] = True,
    confirm_token: ConfirmToken = "",
) -> Annotated[CallToolResult, RemovedAgents]:
    """Remove the AI agent(s) from a room, by default deleting their dispatches too so they stay out."""
    lk = _livekit(ctx)
    plan, (agents, dispatches) = await _remove_agent_plan(lk, room, agent_name, identity, keep_out)
    planned = [f"delete dispatch {d.id} ('{d.agent_name}')" for d in dispatches] + [
        f"remove {p.identity}" for p in agents
    ]
    result = RemovedAgents(
        room=room,
        removed=[AgentInfo.of(room, p) for p in agents],
        cancelled_dispatches=[d.id for d in dispatches],
        steps=planned,
    )
    decision = _app(ctx).guard.decide(plan, answer, confirm_token)
    if not decision.proceed:
        return _not_done(result, plan, decision)
    steps: list[str] = []
    # Dispatches go first: on LiveKit Cloud a restart policy could relaunch an agent removed before them.
    for d in dispatches:
        await lk.delete_dispatch(room, d.id)
        steps.append(f"deleted dispatch {d.id} ('{d.agent_name}')")
    if keep_out and not dispatches:
        steps.append("no dispatch of these agents to delete")
    for p in agents:
        try:
            await lk.remove_participant(room, p.identity)
            steps.append(f"removed {p.identity}")
        except (ParticipantNotFound, RoomNotFound):
            steps.append(f"{p.identity} had already left (its job ended with its dispatch)")
    if not keep_out:
        steps.append("dispatches kept: LiveKit Cloud may send the agent back; call again with keep_out=true")
    result = result.model_copy(update={"steps": steps})
    return reply(result, f"Removed {len(agents)} agent(s) from '{room}': " + "; ".join(steps) + ".")


# --- data --------------------------------------------------------------------------------------------

RELIABLE_LIMIT = 15 * 1024
LOSSY_LIMIT = 1300


@_tool("data", SEND)
async def send_data(
    ctx: Context,
    room: RoomName,
    data: Annotated[
        str,
        Field(min_length=1, description="Text payload (UTF-8); 15 KiB reliable, 1,300 bytes lossy."),
        AfterValidator(_utf8),
    ],
    topic: Annotated[str, Field(max_length=256), AfterValidator(_no_control_characters)] = "",
    destination_identities: Annotated[
        list[Identity] | None, Field(max_length=256, description="Only these participants; everyone when omitted.")
    ] = None,
    reliable: bool = True,
) -> Annotated[CallToolResult, SentData]:
    """Send a data message to everyone in a room, or to some participants, optionally on a topic."""
    payload = data.encode()
    limit = RELIABLE_LIMIT if reliable else LOSSY_LIMIT
    if len(payload) > limit:
        raise InvalidInput(
            "data", f"{len(payload):,} bytes; {'reliable' if reliable else 'lossy'} data is limited to {limit:,}"
        )
    lk = _livekit(ctx)
    await lk.get_room(room)  # LiveKit only times out (~15 s) on a missing room
    await lk.send_data(
        room, payload, reliable=reliable, topic=topic or None, destination_identities=destination_identities or ()
    )
    result = SentData(
        room=room,
        bytes=len(payload),
        topic=topic or None,
        destination_identities=destination_identities,
        reliable=reliable,
    )
    to = ", ".join(destination_identities) if destination_identities else "everyone"
    return reply(result, f"Sent {len(payload)} bytes to {to} in '{room}'{f' on topic {topic!r}' if topic else ''}.")
