"""`list_projects`: the LiveKit projects this server serves, for the `project` argument of every other tool.

Names, URLs (without any user or password), which is the default and which are read-only: never a key or secret.
"""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult

from livekit_mcp.models import ProjectInfo, ProjectList
from livekit_mcp.scope import Scope
from livekit_mcp.tools._base import READ, reply
from livekit_mcp.tools._registry import tool


@tool("rooms", READ)
async def list_projects(scope: Scope) -> Annotated[CallToolResult, ProjectList]:
    """The LiveKit projects served, as `lk` names them; pass one as `project` to any tool."""
    projects = scope.projects
    allowed = scope.caller.projects
    shown = [
        ProjectInfo(name=p.name, url=p.livekit.url, default=p is projects.default, read_only=p.read_only)
        for p in projects
        if allowed is None or p.name in allowed
    ]
    lines = [f"{len(shown)} project(s):"]
    lines += [
        f"- {p.name or '(unnamed: LIVEKIT_URL)'} {p.url}"
        + (" (default)" if p.default else "")
        + (" read-only" if p.read_only else "")
        for p in shown
    ]
    return reply(ProjectList(projects=shown), "\n".join(lines))
