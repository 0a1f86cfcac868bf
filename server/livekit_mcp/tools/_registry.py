"""Tools as values: each toolset module declares its tools with `tool(...)`, and `build_tools` makes the SDK's tools
of the enabled ones, giving every one, in this one place, what every call needs:

- the request scope: a tool body takes `scope: Scope`; the SDK's `Resolve` makes it once per call from the
  `project` argument, which is added here to every tool's schema (the caller's allowed names are added to it per
  caller at tools/list, by `service.CallerMiddleware`);
- for a tool that changes something: the caller's role and the project's read-only flag checked, and the audit log
  (`audited_call`): the attempted line before the change is sent, the outcome line after, refusals included;
- for a tool declared with `confirm=Confirm(plan)`: the confirmation flow of confirm.py. The tool declares its plan
  (who would leave, and why) and its body only acts. The flow is: plan (a resolver, once per call) → policy on the
  plan → ask (elicitation through a resolver, or the two-step token, which the Slack app shows as buttons) →
  decide → plan again if a person took time to answer → budget → write-ahead audit → act. A tool that asks only
  when someone would leave (`always=False`: an RPC, a data message, an ingress) acts at once otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_type_hints

from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp.server.mcpserver.resolve import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel

from livekit_mcp.audit import Record, audited_call, record_invalid, shown_arguments
from livekit_mcp.config import TOOLSETS
from livekit_mcp.confirm import (
    MAX_ASKS,
    NOT_ASKED,
    Consent,
    Decision,
    Planned,
    TypedName,
    answered_within_call,
    plan_changed,
    stopped_text,
)
from livekit_mcp.errors import LiveKitMCPError
from livekit_mcp.policy import check_change
from livekit_mcp.scope import Scope, app_of, caller_in, open_scope
from livekit_mcp.tools._args import ConfirmToken
from livekit_mcp.tools._base import Toolset, compact_input, output_schema, reply

T = TypeVar("T")
KW = inspect.Parameter.KEYWORD_ONLY
PROJECT_ARGUMENT = "project"
"""The argument every tool but list_projects takes: the project it acts on, the default when omitted."""
UNSCOPED = frozenset({"list_projects"})
"""Tools about the projects themselves: they run in the default project's scope, and take no `project`."""
INJECTED = ("ctx", "scope", "planned")
"""Parameters of a tool body that are not arguments of the tool: the flow hands them over."""


@dataclass(frozen=True)
class Confirm:
    """How a tool that may make someone leave works out its plan, and whom it asks."""

    plan: Callable[..., Awaitable[Planned[Any]]]
    """`(scope, **arguments it names)`: the plan, what was found, and the answer's model if nothing is done."""
    schema: type[BaseModel] = Consent
    always: bool = True
    """Ask even when the plan makes nobody leave: a destructive tool, or a dial-out (a real, billed call)."""


@dataclass(frozen=True)
class _Tool:
    fn: Callable[..., Awaitable[CallToolResult]]
    toolset: Toolset
    annotations: ToolAnnotations
    confirm: Confirm | None

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def changes(self) -> bool:
        return not self.annotations.read_only_hint


_TOOLS: list[_Tool] = []


def tool(
    toolset: Toolset, annotations: ToolAnnotations, *, confirm: Confirm | None = None
) -> Callable[[Callable[..., Awaitable[CallToolResult]]], Callable[..., Awaitable[CallToolResult]]]:
    """Declare a tool of `toolset`; its body takes `scope` (and, with `confirm`, `planned`: what was decided on)."""

    def add(fn: Callable[..., Awaitable[CallToolResult]]) -> Callable[..., Awaitable[CallToolResult]]:
        _TOOLS.append(_Tool(fn, toolset, annotations, confirm))
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
        listed = entry.toolset in toolsets or entry.name in UNSCOPED  # list_projects: whatever the toolsets
        if not listed or (read_only and entry.changes):
            continue
        # The docstring on one line: the SDK sends it as written, indentation of its wrapped lines included.
        description = " ".join((entry.fn.__doc__ or "").split())
        made = Tool.from_function(
            _call_of(entry),
            name=entry.name,
            description=description,
            annotations=entry.annotations,
            # Without output schemas the SDK neither publishes nor validates one: building each answer model's
            # schema at start would only be thrown away (~20 ms of every start).
            structured_output=None if output_schemas else False,
        )
        made.parameters = compact_input(made.parameters)
        made.parameters.get("properties", {}).get(PROJECT_ARGUMENT, {}).pop("default", None)  # "" says nothing
        schema = made.fn_metadata.output_schema
        made.fn_metadata.output_schema = output_schema(schema) if output_schemas and schema else None
        tools.append(made)
    return tools


# --- One call --------------------------------------------------------------------------------------------


def _signed(fn: Callable[..., Any], name: str, params: list[inspect.Parameter], returns: Any) -> Callable[..., Any]:
    """`fn` (which takes keyword arguments) presented to the SDK with these parameters: what it reads to build the
    tool's schema and to hand resolvers their arguments by name. `name` is its stable wire key in request state."""
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    fn.__name__ = fn.__qualname__ = name
    return fn


def _call_of(entry: _Tool) -> Callable[..., Awaitable[CallToolResult]]:
    """The function the SDK registers for `entry`: its arguments, the project, and the resolvers of its scope (and
    plan and question), around the body."""
    signature = inspect.signature(entry.fn)
    hints = get_type_hints(entry.fn, include_extras=True)
    wants_ctx = "ctx" in signature.parameters
    arguments = [p.replace(kind=KW, annotation=hints[n]) for n, p in signature.parameters.items() if n not in INJECTED]
    names = [p.name for p in arguments]
    unscoped = entry.name in UNSCOPED
    if entry.confirm is not None:
        arguments.append(inspect.Parameter("confirm_token", KW, default="", annotation=ConfirmToken))
    if not unscoped:
        arguments.append(inspect.Parameter(PROJECT_ARGUMENT, KW, default="", annotation=str))
    scope = _scope_resolver(entry, [p.name for p in arguments])
    injected = [
        inspect.Parameter("ctx", KW, annotation=Context),
        inspect.Parameter("scope", KW, annotation=Annotated[Scope, Resolve(scope)]),
    ]
    if entry.confirm is not None:
        plan = _plan_resolver(entry.name, entry.confirm, scope)
        ask = _ask_resolver(entry, scope, plan)
        outcome = ElicitationResult[entry.confirm.schema]  # type: ignore[name-defined]  # a schema known at run time
        injected += [
            inspect.Parameter("planned", KW, annotation=Annotated[Any, Resolve(plan)]),
            inspect.Parameter("answer", KW, annotation=Annotated[outcome, Resolve(ask)]),
        ]

    async def call(**kwargs: Any) -> CallToolResult:
        ctx: Context[Any, Any] = kwargs.pop("ctx")
        in_scope: Scope = kwargs.pop("scope")
        planned = kwargs.pop("planned", None)
        answer = kwargs.pop("answer", None)
        confirm_token: str = kwargs.pop("confirm_token", "")
        given = {n: kwargs[n] for n in names}

        async def body(decided: Planned[Any] | None = None) -> CallToolResult:
            extra: dict[str, Any] = {"ctx": ctx} if wants_ctx else {}
            if decided is not None:
                extra["planned"] = decided
            return await entry.fn(scope=in_scope, **given, **extra)

        if not entry.changes:
            return await body()
        caller = in_scope.caller
        record = Record(
            entry.name,
            shown_arguments({**given, "confirm_token": confirm_token} if entry.confirm else given),
            caller.principal,
            caller.on_behalf_of,
            in_scope.project.name,
            in_scope.audit,
        )

        async def run() -> CallToolResult:
            label = in_scope.project.spec.label
            check_change(entry.name, caller.principal, caller.can_write, in_scope.project.read_only, label)
            if entry.confirm is None:
                record.attempt()
                return await body()
            return await _confirmed(ctx, in_scope, entry, record, planned, answer, confirm_token, body, given)

        return await audited_call(in_scope.audit, record, run)

    returns = signature.return_annotation if not isinstance(signature.return_annotation, str) else hints["return"]
    return _signed(call, entry.name, arguments + injected, returns)


def _scope_resolver(entry: _Tool, argument_names: list[str]) -> Callable[..., Awaitable[Scope]]:
    """The resolver of a tool's scope; a change call refused here (its project) is recorded in the audit log, as
    one refused for its arguments is, since its body never runs."""

    async def resolve(ctx: Context[Any, Any], **arguments: Any) -> Scope:
        app, caller = app_of(ctx), caller_in(ctx)
        try:
            return open_scope(app, caller, arguments.get(PROJECT_ARGUMENT), about_projects=entry.name in UNSCOPED)
        except LiveKitMCPError as exc:
            if entry.changes:
                record_invalid(app.audit, entry.name, arguments, caller.principal, caller.on_behalf_of, str(exc))
            raise

    params = [inspect.Parameter("ctx", KW, annotation=Context)]
    params += [inspect.Parameter(n, KW, annotation=Any) for n in argument_names]
    return _signed(resolve, f"scope_of_{entry.name}", params, Scope)


def _plan_resolver(
    tool: str, confirm: Confirm, scope: Callable[..., Awaitable[Scope]]
) -> Callable[..., Awaitable[Any]]:
    """The resolver of a confirmed tool's plan, worked out once per call (and so per round of 2026-07-28) and shared
    by the question and the body. A failure is handed to the body as a value, to be raised there: inside the audit
    log's record of the call."""
    wanted = [n for n in inspect.signature(confirm.plan).parameters if n != "scope"]

    async def resolve(scope: Scope, **arguments: Any) -> Planned[Any] | LiveKitMCPError:
        try:
            planned = await confirm.plan(scope, **arguments)
        except LiveKitMCPError as exc:
            return exc
        planned.plan.project = scope.project.name
        return planned

    params = [inspect.Parameter("scope", KW, annotation=Annotated[Scope, Resolve(scope)])]
    params += [inspect.Parameter(n, KW, annotation=Any) for n in wanted]
    return _signed(resolve, f"plan_of_{tool}", params, Any)


def _ask_resolver(
    entry: _Tool, scope: Callable[..., Awaitable[Scope]], plan: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """The resolver that asks the user about the plan, when it is to be asked: someone would leave (or the tool
    always asks), nothing refuses it anyway, and the client can be asked."""
    assert entry.confirm is not None
    confirm = entry.confirm

    async def resolve(ctx: Context[Any, Any], scope: Scope, planned: Any, confirm_token: str) -> Elicit[Any] | str:
        if not isinstance(planned, Planned) or not (confirm.always or planned.plan.leaving):
            return NOT_ASKED
        caller = scope.caller
        try:  # never ask a person to approve what is refused anyway: the body meets the refusal and records it
            check_change(entry.name, caller.principal, caller.can_write, scope.project.read_only, "")
            await scope.guard.check(planned.plan)
        except LiveKitMCPError:
            return NOT_ASKED
        return scope.guard.question(ctx, confirm_token, planned.plan, confirm.schema)

    params = [
        inspect.Parameter("ctx", KW, annotation=Context),
        inspect.Parameter("scope", KW, annotation=Annotated[Scope, Resolve(scope)]),
        inspect.Parameter("planned", KW, annotation=Annotated[Any, Resolve(plan)]),
        inspect.Parameter("confirm_token", KW, annotation=str),
    ]
    return _signed(resolve, f"ask_{entry.name}", params, Elicit[confirm.schema] | str)  # type: ignore[name-defined]


async def _confirmed(
    ctx: Context[Any, Any],
    scope: Scope,
    entry: _Tool,
    record: Record,
    planned: Planned[Any] | LiveKitMCPError,
    answer: ElicitationResult[Any],
    confirm_token: str,
    act: Callable[[Planned[Any]], Awaitable[CallToolResult]],
    given: dict[str, Any],
) -> CallToolResult:
    """The one flow of every confirmed call (see the module's docstring)."""
    assert entry.confirm is not None
    if isinstance(planned, LiveKitMCPError):
        raise planned
    plan = planned.plan
    record.about(plan.room, [p.identity for p in plan.leaving])
    if not entry.confirm.always and not plan.leaving:  # nobody leaves: a plain change
        record.attempt()
        return await act(planned)
    guard, principal = scope.guard, scope.caller.principal
    record.note(before={"targets": plan.targets, "plan": plan.question})
    await guard.check(plan)
    asked_ref = plan.ref  # the plan the resolver asked about, if it asked: the one computed in this round
    decision = guard.decide(plan, answer, confirm_token, principal, asked_ref)
    # A person answered in the middle of this call, taking their time: the answer holds only for the plan they
    # were shown, so the plan is worked out again; a changed one voids the answer (yes or no) and is asked anew.
    # (From 2026-07-28 on the answer arrives with a new round, whose plan the question was rendered from.)
    asks = 1
    while _asked_person(answer) and answered_within_call(ctx):
        planned = await _replan(entry, scope, given)
        plan = planned.plan
        record.note(before={"targets": plan.targets, "plan": plan.question})
        await guard.check(plan)
        decision = guard.decide(plan, answer, confirm_token, principal, asked_ref)
        record.about(plan.room, [p.identity for p in plan.leaving])
        if decision.outcome != "changed":
            break
        if asks >= MAX_ASKS:
            raise plan_changed(plan)
        answer = await guard.ask_again(ctx, plan, entry.confirm.schema)
        asked_ref, asks = plan.ref, asks + 1
        decision = guard.decide(plan, answer, confirm_token, principal, asked_ref)
    if decision.outcome == "changed":
        raise plan_changed(plan)
    if not decision.proceed:
        return not_done(planned, decision)
    async with guard.acting(confirm_token, record):
        return await act(planned)


def _asked_person(answer: ElicitationResult[Any]) -> bool:
    return isinstance(answer, AcceptedElicitation) and isinstance(answer.data, Consent | TypedName)


async def _replan(entry: _Tool, scope: Scope, given: dict[str, Any]) -> Planned[Any]:
    assert entry.confirm is not None
    wanted = [n for n in inspect.signature(entry.confirm.plan).parameters if n != "scope"]
    planned = await entry.confirm.plan(scope, **{n: given[n] for n in wanted})
    planned.plan.project = scope.project.name
    return planned


def not_done(planned: Planned[Any], decision: Decision) -> CallToolResult:
    """The answer of a confirmed call that changed nothing: the plan as data, and how to go ahead if it can."""
    plan = planned.plan
    update = {
        "outcome": decision.outcome,
        "confirm_token": decision.confirm_token,
        "expires_at": decision.expires_at,
        "question": plan.where + plan.question,
        "leaving": plan.leaving or None,
    }
    return reply(planned.preview.model_copy(update=update), stopped_text(plan, decision))
