"""The request scope: what one request acts with, resolved once and handed on explicitly.

Every surface a client reaches (a tool, a resource, a completion) runs in a `Scope`: the project it acts on (its
LiveKit client, policy, guard and history), the caller (principal, role, allowed projects, on-behalf-of) and the
audit log. It is made in one place, `open_scope`, from the lifespan's projects, the caller and the `project` the
request names; a project the caller may not use is refused there, and a name it does not know is answered with
the names it may use, never the others. Tools receive it through the SDK's `Resolve` (tools/_registry.py makes
each tool's resolver), resources and completions through `scope_of(ctx, project)`. No contextvar holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from mcp.server.mcpserver import Context

from livekit_mcp.audit import AuditLog
from livekit_mcp.confirm import Guard
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.policy import Policy, check_project
from livekit_mcp.projects import Project, Projects
from livekit_mcp.service import Caller, caller_of
from livekit_mcp.store import Store


@dataclass
class AppContext:
    """What the lifespan hands every request: the projects, and what they share."""

    projects: Projects
    audit: AuditLog
    kept_history: Store | None = None
    """Room history, or None with LIVEKIT_MCP_HISTORY=off: the default project's, whose webhooks feed it."""


@dataclass(frozen=True)
class Scope:
    """One request's project, caller and what they bring."""

    project: Project
    caller: Caller
    app: AppContext

    @property
    def livekit(self) -> LiveKit:
        return self.project.livekit

    @property
    def guard(self) -> Guard:
        return self.project.guard

    @property
    def policy(self) -> Policy:
        return self.project.guard.policy

    @property
    def audit(self) -> AuditLog:
        return self.app.audit

    @property
    def projects(self) -> Projects:
        return self.app.projects

    @property
    def history(self) -> Store | None:
        """Room history of this project: None for any but the default, whose webhooks feed it (another project's
        rooms would be judged by it: find_agent trusts its index of live rooms)."""
        return self.app.kept_history if self.project is self.app.projects.default else None


def open_scope(app: AppContext, caller: Caller, named: object, *, about_projects: bool = False) -> Scope:
    """The scope of a request by `caller` naming project `named` (None or "" for the default): InvalidInput for a
    name it does not know, PolicyRefusal for a project its token may not use. `about_projects`: a request about
    the projects themselves (list_projects), in the scope of the first project the caller may use."""
    if about_projects:
        allowed = usable_projects(app, caller)
        return Scope(
            app.projects.default if app.projects.default in allowed else (allowed or [app.projects.default])[0],
            caller,
            app,
        )
    # Not a string: the arguments check says so; the default answers meanwhile.
    project = app.projects.get(named if isinstance(named, str) else None, caller.projects)
    check_project(caller.principal, caller.projects, project.name, project.spec.label)
    return Scope(project, caller, app)


def usable_projects(app: AppContext, caller: Caller) -> list[Project]:
    """The projects `caller` may use, in the order they are configured."""
    return [p for p in app.projects if caller.projects is None or p.name in caller.projects]


def app_of(ctx: Context[Any, Any]) -> AppContext:
    # The SDK types the lifespan context loosely; ours is always the AppContext the server's lifespan yields.
    return cast(AppContext, ctx.request_context.lifespan_context)


def caller_in(ctx: Context[Any, Any]) -> Caller:
    """Who makes the request under way (the HTTP token's principal, or the local user on stdio)."""
    meta: Mapping[str, Any] | None = ctx.request_context.meta
    return caller_of(ctx.request_context.request, ctx.headers, meta)


def scope_of(ctx: Context[Any, Any], project: str = "") -> Scope:
    """The scope of a resource read or a completion naming `project`."""
    return open_scope(app_of(ctx), caller_in(ctx), project)
