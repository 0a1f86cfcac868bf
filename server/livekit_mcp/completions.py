"""Completions for the resource templates' arguments (`project`, `room`), in the request's scope like every other
surface: a caller is offered only the projects its token may use, and only the rooms of a project it may use that
its policy lets it see; a project it may not use is refused as a tool call naming it would be."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CompleteRequestParams, Completion, ResourceTemplateReference

from livekit_mcp.errors import LiveKitMCPError
from livekit_mcp.scope import app_of, caller_in, scope_of, usable_projects

SHOWN = 100
"""The most values one completion carries (the MCP spec's limit); `total` and `has_more` say the rest."""

NOTHING = Completion(values=[], total=0, has_more=False)


async def complete(ctx: Context[Any, Any], params: CompleteRequestParams) -> Completion:
    """The names that start with what the client typed, for a `livekit://` template's `project` or `room`."""
    ref, argument = params.ref, params.argument
    if not isinstance(ref, ResourceTemplateReference) or not ref.uri.startswith("livekit://"):
        return NOTHING  # no prompts, and no other templates
    given = params.context.arguments if params.context and params.context.arguments else {}
    try:
        if argument.name == "project":
            names = [p.name for p in usable_projects(app_of(ctx), caller_in(ctx))]
        elif argument.name == "room" and "{room}" in ref.uri:
            names = [r.name for r in await scope_of(ctx, given.get("project", "")).livekit.list_rooms()]
        else:
            return NOTHING
    except LiveKitMCPError as exc:  # a project not its own, or LiveKit unreachable: said, as a tool would
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc
    matches = sorted(n for n in names if n.startswith(argument.value))
    return Completion(values=matches[:SHOWN], total=len(matches), has_more=len(matches) > SHOWN)
