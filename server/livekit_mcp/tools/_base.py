"""What every tool module shares: the annotations, schema compaction, argument errors and the output helpers."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args

import anyio
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from livekit_mcp.config import TOOLSETS
from livekit_mcp.confirm import leaving
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.livekit_backend import Census, LiveKit
from livekit_mcp.models import (
    AgentInfo,
    Leaving,
    Participant,
    ParticipantSummary,
)
from livekit_mcp.text import redacted_url, shown

T = TypeVar("T")
U = TypeVar("U")
Toolset = Literal["rooms", "participants", "agents", "data", "rpc", "tokens", "sip", "egress", "ingress"]
assert get_args(Toolset) == TOOLSETS, "config.TOOLSETS names the same toolsets"


# Hints the spec gives a meaning by default are left out, as every byte of tools/list is read into the model's
# context: idempotentHint is false unless said, and means nothing for a read-only tool.
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# readOnlyHint is false unless stated (the spec's default), so a tool that changes things leaves it out.
CHANGE = ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False)
SEND = ToolAnnotations(destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True, open_world_hint=False)


def compact_input(node: Any) -> Any:
    """An input schema without pydantic's `title`s (they repeat the property and model names), and an optional
    argument that is "" or null when not given shown as its type alone: leaving it out is how it is not given.
    A flag that is off unless given says no default either."""
    if isinstance(node, dict):
        if node.get("type") == "boolean" and node.get("default") is False:
            node = {k: v for k, v in node.items() if k != "default"}
        if node.get("default", 0) in ("", None):
            node = {k: v for k, v in node.items() if k != "default"}
            alternatives = node.get("anyOf")
            if isinstance(alternatives, list) and len(alternatives) == 2 and {"type": "null"} in alternatives:
                (kept,) = (a for a in alternatives if a != {"type": "null"})
                node = {**kept, **{k: v for k, v in node.items() if k != "anyOf"}}
        return {k: compact_input(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [compact_input(v) for v in node]
    return node


def output_schema(node: Any) -> Any:
    """An output schema without titles, defaults and `| null`: tools leave empty fields out instead of sending null."""
    if isinstance(node, dict):
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and len(alternatives) == 2 and {"type": "null"} in alternatives:
            (kept,) = (a for a in alternatives if a != {"type": "null"})
            return output_schema({**kept, **{k: v for k, v in node.items() if k not in ("anyOf", "default")}})
        return {
            k: output_schema(v) for k, v in node.items() if k != "default" and not (k == "title" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [output_schema(v) for v in node]
    return node


def invalid_arguments(tool: str, error: ValidationError) -> str:
    """Pydantic's report on a tool's arguments as one line per field, without its type codes and links."""
    problems = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or "arguments"
        if e["type"] == "missing":
            problems.append(f"{field}: required")
            continue
        given = e["input"]
        shown = repr(redacted_url(given) if isinstance(given, str) else given)  # never a URL's password
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


def cursor_key(cursor: str) -> list[Any] | None:
    """The sort key a cursor carries (that of the last item shown), or None for the first page."""
    if not cursor:
        return None
    problem = (
        "not a cursor this server returned; pass the next_cursor of the previous page, or omit it to start from the top"
    )
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidInput("cursor", problem) from exc
    # What cursor_for writes: a flat list of strings and finite numbers (a bool is an int to Python, never ours;
    # JSON's 1e400 reads as infinity).
    if not isinstance(after, list) or not all(_cursor_part(part) for part in after):
        raise InvalidInput("cursor", problem)
    return after


def _cursor_part(part: object) -> bool:
    if isinstance(part, float):
        return math.isfinite(part)
    return isinstance(part, (str, int)) and not isinstance(part, bool)


def cursor_for(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def page_of(items: Sequence[T], key: Callable[[T], list[Any]], limit: int, cursor: str) -> tuple[list[T], str | None]:
    """One page of `items` (already sorted by `key`) after the cursor, and the cursor of the next page.

    The cursor is the sort key of the last item shown, so a page stays right when items come and go.
    """
    after = cursor_key(cursor)
    start = 0
    try:
        while after is not None and start < len(items) and key(items[start]) <= after:
            start += 1
    except TypeError as exc:  # a key of other types than this list's (say a number where names are)
        raise InvalidInput(
            "cursor", "not a cursor of this list; pass the next_cursor of the previous page, or omit it"
        ) from exc
    page = list(items[start : start + limit])
    return page, cursor_for(key(page[-1])) if start + limit < len(items) and page else None


def participant_line(p: ParticipantSummary) -> str:
    name = f' "{shown(p.name)}"' if p.name else ""
    agent = (
        f" agent={shown(p.agent_name or '?')} state={shown(p.agent_state or '?')}"
        if p.agent_name or p.agent_state
        else ""
    )
    tracks = ""
    if p.tracks:
        tracks = f", tracks audio={p.tracks.audio} video={p.tracks.video} muted={p.tracks.muted}"
    return f"- {shown(p.identity)}{name} {p.kind} {p.state}{agent}, joined {p.joined_at or '?'}{tracks}"


def agent_line(a: AgentInfo) -> str:
    name = "'' (automatic dispatch)" if a.agent_name == "" else shown(a.agent_name or "?")
    return f"- {shown(a.identity)} in '{shown(a.room)}': agent={name} state={shown(a.state or '?')}"


def more_text(next_cursor: str | None) -> str:
    return f"\nMore: call again with cursor='{next_cursor}'." if next_cursor else ""


def by_kind(participants: Sequence[Participant]) -> dict[str, int]:
    return dict(Counter(p.effective_kind for p in participants))


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nobody"


def duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


async def both(first: Callable[[], Awaitable[T]], second: Callable[[], Awaitable[U]]) -> tuple[T, U]:
    """Two LiveKit calls at once. A failure is raised as itself, not inside an ExceptionGroup (which the SDK
    would report as a bare "Error executing tool", hiding our message); the other call is let finish."""
    results: dict[int, Any] = {}
    errors: list[Exception] = []

    async def run(i: int, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            results[i] = await call()
        except Exception as exc:  # raised below, after the other call
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, 0, first)
        tg.start_soon(run, 1, second)
    if errors:
        raise errors[0]
    return results[0], results[1]


async def participants_of_existing_room(lk: LiveKit, room: str) -> list[Participant]:
    """Participants of a room that must exist: LiveKit lists a missing room as empty, so an empty answer is checked."""
    participants = await lk.list_participants(room)
    if not participants:
        await lk.get_room(room)
    return participants


async def census_of_existing_room(lk: LiveKit, room: str) -> Census:
    """`participants_of_existing_room`, counted (`LiveKit.census`)."""
    census = await lk.census(room)
    if not census.total:
        await lk.get_room(room)
    return census


async def replaced_by_joining(lk: LiveKit, room: str, identity: str, why: str) -> list[Leaving]:
    """Who leaves `room` when someone joins it as `identity`: LiveKit keeps one participant per identity, and the
    one there now is disconnected (DUPLICATE_IDENTITY). Nobody when the room does not exist yet."""
    try:
        present = await lk.get_participant(room, identity)
    except NotFound:
        return []
    return [leaving(present, why)]


def matches(p: Participant, agent_name: str, identity: str) -> bool:
    """An agent, of this name and identity where they are given ("" = any)."""
    return p.is_agent and agent_name in ("", p.agent_name) and identity in ("", p.identity)


def names_text(participants: Sequence[Participant], limit: int = 5) -> str:
    named = [
        f"'{shown(p.identity)}'" + (f" ({shown(p.agent_name)})" if p.agent_name else "") for p in participants[:limit]
    ]
    more = f" and {len(participants) - limit} more" if len(participants) > limit else ""
    return ", ".join(named) + more
