"""What every tool module shares: the app context, registration by toolset, and the output helpers."""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast, get_args

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from livekit_mcp.audit import AuditLog, audited
from livekit_mcp.config import TOOLSETS
from livekit_mcp.confirm import MAX_ASKS, Decision, Guard, Plan, PlanChanged, stopped_text
from livekit_mcp.errors import InvalidInput
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import (
    AgentInfo,
    Confirmable,
    Participant,
    ParticipantSummary,
)
from livekit_mcp.projects import Project, Projects, current
from livekit_mcp.store import Store

T = TypeVar("T")
U = TypeVar("U")
Toolset = Literal["rooms", "participants", "agents", "data", "rpc", "tokens", "sip", "egress", "ingress"]
assert get_args(Toolset) == TOOLSETS, "config.TOOLSETS names the same toolsets"


@dataclass
class AppContext:
    """What the lifespan hands every tool: the projects, and what they share."""

    projects: Projects
    audit: AuditLog
    kept_history: Store | None = None
    """Room history, or None with LIVEKIT_MCP_HISTORY=off: the default project's, whose webhooks feed it."""

    @property
    def project(self) -> Project:
        """The project of the call under way (the default outside one)."""
        return current() or self.projects.default

    @property
    def history(self) -> Store | None:
        """Room history of the project of the call under way: None for any but the default, whose rooms it holds
        (another project's rooms would be judged by it: find_agent trusts its index of live rooms)."""
        return self.kept_history if self.project is self.projects.default else None

    @property
    def livekit(self) -> LiveKit:
        return self.project.livekit

    @property
    def guard(self) -> Guard:
        return self.project.guard


def app_of(ctx: Context) -> AppContext:
    # The SDK types the lifespan context loosely; ours is always the AppContext that app.lifespan yields.
    return cast(AppContext, ctx.request_context.lifespan_context)


def livekit_of(ctx: Context) -> LiveKit:
    return app_of(ctx).livekit


# Hints the spec gives a meaning by default are left out, as every byte of tools/list is read into the model's
# context: idempotentHint is false unless said, and means nothing for a read-only tool.
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# readOnlyHint is false unless stated (the spec's default), so a tool that changes things leaves it out.
CHANGE = ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False)
SEND = ToolAnnotations(destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True, open_world_hint=False)


# --- Registration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tool:
    fn: Callable[..., Any]
    toolset: Toolset
    annotations: ToolAnnotations
    confirmed: bool = False
    """Asks before acting, as destructive tools do, though it destroys nothing (it dials a phone)."""


_TOOLS: list[_Tool] = []


def tool(
    toolset: Toolset, annotations: ToolAnnotations, *, confirmed: bool = False
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def add(fn: Callable[..., T]) -> Callable[..., T]:
        _TOOLS.append(_Tool(fn, toolset, annotations, confirmed))
        return fn

    return add


PROJECT_ARGUMENT = "project"
"""The argument every tool but list_projects takes, a bare string: tools/list repeats it for every tool, so it is
explained once, by list_projects and the server's instructions (a name it does not know is refused, listing the
known ones)."""
UNSCOPED = frozenset({"list_projects"})


def with_project(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """`fn` with an optional `project` argument. The server selects the project before the call runs (and before
    resolvers ask anything), so the body, and tools added later, need not know about it: it is dropped here."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        kwargs.pop(PROJECT_ARGUMENT, None)
        return await fn(*args, **kwargs)

    signature = inspect.signature(fn, eval_str=True)
    extra = inspect.Parameter(PROJECT_ARGUMENT, inspect.Parameter.KEYWORD_ONLY, default="", annotation=str)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**inspect.get_annotations(fn, eval_str=True), PROJECT_ARGUMENT: str}
    return wrapper


def build_tools(
    *, toolsets: Collection[str] = TOOLSETS, read_only: bool = False, output_schemas: bool = False
) -> list[Tool]:
    """The tools of the enabled toolsets (in read-only mode, only those that change nothing), with compact schemas.

    Every byte of tools/list is read into the model's context, so schema titles go, and output schemas (which
    clients use to validate, models rarely read) are published only when asked for: that halves tools/list.
    """
    tools: list[Tool] = []
    for entry in _TOOLS:
        listed = entry.toolset in toolsets or entry.fn.__name__ in UNSCOPED  # list_projects: whatever the toolsets
        if not listed or (read_only and not entry.annotations.read_only_hint):
            continue
        fn = entry.fn
        if not entry.annotations.read_only_hint:
            # A destructive (or confirmed) tool writes its attempted line itself, once confirmed (`destructive`).
            ahead = not (entry.annotations.destructive_hint or entry.confirmed)
            fn = audited(entry.fn, lambda ctx: app_of(ctx).audit, write_ahead=ahead)
        if entry.fn.__name__ not in UNSCOPED:
            fn = with_project(fn)
        # The docstring on one line: the SDK sends it as written, indentation of its wrapped lines included.
        description = " ".join((entry.fn.__doc__ or "").split())
        tool = Tool.from_function(fn, description=description, annotations=entry.annotations)
        tool.parameters = _compact_input(tool.parameters)
        tool.parameters.get("properties", {}).get(PROJECT_ARGUMENT, {}).pop("default", None)  # bytes: "" says nothing
        schema = tool.fn_metadata.output_schema
        tool.fn_metadata.output_schema = _output_schema(schema) if output_schemas and schema else None
        tools.append(tool)
    return tools


def _compact_input(node: Any) -> Any:
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
        return {k: _compact_input(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_compact_input(v) for v in node]
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
    name = f' "{p.name}"' if p.name else ""
    agent = f" agent={p.agent_name or '?'} state={p.agent_state or '?'}" if p.agent_name or p.agent_state else ""
    tracks = ""
    if p.tracks:
        tracks = f", tracks audio={p.tracks.audio} video={p.tracks.video} muted={p.tracks.muted}"
    return f"- {p.identity}{name} {p.kind} {p.state}{agent}, joined {p.joined_at or '?'}{tracks}"


def agent_line(a: AgentInfo) -> str:
    name = "'' (automatic dispatch)" if a.agent_name == "" else (a.agent_name or "?")
    return f"- {a.identity} in '{a.room}': agent={name} state={a.state or '?'}"


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


def matches(p: Participant, agent_name: str, identity: str) -> bool:
    """An agent, of this name and identity where they are given ("" = any)."""
    return p.is_agent and agent_name in ("", p.agent_name) and identity in ("", p.identity)


async def destructive(
    ctx: Context,
    answer: ElicitationResult[Any],
    confirm_token: str,
    make_plan: Callable[[], Awaitable[tuple[Plan, T]]],
    preview: Callable[[Plan, T], Confirmable],
    act: Callable[[Plan, T], Awaitable[CallToolResult]],
) -> CallToolResult:
    """The one flow of every destructive tool: work the plan out (again, right before acting), decide from the
    policy and the user's answer or the token (both bound to the plan), then act under `Guard.acting`.

    A plan that is no longer the one the user said yes to is put to them again, at most MAX_ASKS times in all.
    """
    guard = app_of(ctx).guard
    plan, found = await make_plan()
    decision = guard.decide(ctx, plan, answer, confirm_token)
    asks = 1
    while decision.outcome == "changed":
        if asks >= MAX_ASKS or not isinstance(answer, AcceptedElicitation):
            raise PlanChanged(plan)
        answer = await guard.ask_again(ctx, plan, type(answer.data))
        asks += 1
        plan, found = await make_plan()
        decision = guard.decide(ctx, plan, answer, confirm_token)
    if not decision.proceed:
        return not_done(preview(plan, found), plan, decision)
    async with guard.acting():
        return await act(plan, found)


def not_done(result: Confirmable, plan: Plan, decision: Decision) -> CallToolResult:
    """The answer of a destructive call that changed nothing: the plan, and how to go ahead if it can."""
    update = {"outcome": decision.outcome, "confirm_token": decision.confirm_token, "expires_at": decision.expires_at}
    return reply(result.model_copy(update=update), stopped_text(plan, decision))


def names_text(participants: Sequence[Participant], limit: int = 5) -> str:
    shown = [f"'{p.identity}'" + (f" ({p.agent_name})" if p.agent_name else "") for p in participants[:limit]]
    more = f" and {len(participants) - limit} more" if len(participants) > limit else ""
    return ", ".join(shown) + more
