"""The audit log: JSON lines of every change call, written ahead of the change and flushed.

Every call of a tool that can change something runs in `audited_call` (tools/_registry.py), which records it
whatever its outcome, refusals included. Write-ahead: an `attempted` line is written and flushed (fsync) before
the change is sent to LiveKit (by the wrapper for plain change tools, by the destructive flow once the action is
confirmed, via `Record.attempt`), then the outcome line after. If the attempted line cannot be written, nothing is sent
(fail closed); a process killed mid-call leaves the attempted line without an outcome. A call that changes
nothing (a preview asking for confirmation, a refusal) has only its outcome line. Secrets never enter it: the
confirm token is recorded only as given or not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mcp.types import CallToolResult
from pydantic import BaseModel

from livekit_mcp.errors import AuditUnavailable, InvalidInput, LiveKitMCPError, PolicyRefusal, StoreError
from livekit_mcp.store import Event, Store
from livekit_mcp.text import redacted_url, shown

log = logging.getLogger(__name__)

LONGEST_VALUE = 1000


@dataclass
class Record:
    """The audit lines of one change call under way: made by the call's runner, handed to what acts."""

    tool: str
    arguments: dict[str, Any]
    principal: str
    on_behalf_of: str | None
    project: str = ""
    log: AuditLog | None = None
    started: float = field(default_factory=time.monotonic)
    before: dict[str, Any] | None = None
    attempt_failed: bool = False
    room: str | None = None
    """The room the change is made in, when its arguments do not name it (stop_egress: the egress's room)."""
    leaving: list[str] = field(default_factory=list)
    """Who the change makes leave (the plan's): room history tells their departures as caused by it."""
    attempted_at: float | None = None
    """When the change was sent (Unix time): the moment history files it at, before what it caused."""

    def about(self, room: str, leaving: list[str]) -> None:
        """What the plan says the change does: in which room, and who leaves because of it."""
        self.room, self.leaving = room, leaving

    def note(self, *, before: dict[str, Any]) -> None:
        """Record the target's state before the change."""
        self.before = before

    def attempt(self) -> None:
        """Write and flush the `attempted` line; call it right before the change is sent.

        Raises AuditUnavailable ("no change was made") if the line cannot be written: the caller must not go on.
        """
        if self.attempted_at is None:
            self.attempted_at = time.time()
        if self.log is not None:
            try:
                self.log.record(self, "attempted", ahead=True)
            except AuditUnavailable:
                self.attempt_failed = True
                raise


class AuditLog:
    """The JSON-lines file (when configured), and room history, which also tells the changes made through us."""

    def __init__(self, path: Path | None, history: Store | None = None, history_project: str = "") -> None:
        self.path = path
        self.history = history
        self.history_project = history_project
        if path is not None:
            with contextlib.suppress(OSError):  # a file that is not there yet is made 0600
                if stat.S_IMODE(path.stat().st_mode) & 0o077:
                    log.warning(
                        "audit log %s should have permissions 600 (it holds who did what for whom); chmod 600 it", path
                    )

    async def tell_history(self, record: Record) -> None:
        """A change that was made, as a `changed` event of its room's history (who did it, for whom). History is
        a record for people, not a guardrail: a store that is down costs the event, never the change."""
        room = record.room or record.arguments.get("room")
        if self.history is None or not isinstance(room, str) or record.project != self.history_project:
            return  # history holds the rooms of one project: the one whose webhooks it receives
        who = record.principal + (f" for {record.on_behalf_of}" if record.on_behalf_of else "")
        named = ("identity", "agent_name", "egress_id", "ingress_id")
        target = next((record.arguments[n] for n in named if record.arguments.get(n)), "")
        said = f"{shown(who)} ran {record.tool}" + (f" on '{shown(target)}'" if target else "") + " through livekit-mcp"
        detail: dict[str, Any] = {"tool": record.tool, "principal": record.principal, "said": said}
        if record.on_behalf_of:
            detail["on_behalf_of"] = record.on_behalf_of
        if record.leaving:
            detail["leaving"] = record.leaving
        # Filed when the change was sent, not when the call ended: before what it caused (the webhooks of those it
        # made leave, which may arrive first). LiveKit stamps its events in whole seconds and arrival orders those
        # within one, so the change takes the whole second it was sent in and its exact time as its arrival.
        sent = record.attempted_at or time.time()
        event = Event(
            f"CH_{uuid.uuid4().hex}",
            float(int(sent)),
            room,
            "changed",
            identity=str(target),
            detail=detail,
            received=sent,
        )
        try:
            await self.history.add(event)
        except StoreError as exc:
            log.warning("the change is not in room history: %s", exc)

    def check_writable(self) -> None:
        """Called before a change tool runs: no log line possible means no change (fail closed)."""
        if self.path is None:
            return
        try:
            _appending(self.path).close()
        except OSError as exc:
            raise AuditUnavailable(self.path, exc.strerror or type(exc).__name__) from exc

    def record(self, record: Record, outcome: str, reason: str = "", *, ahead: bool = False) -> None:
        """Write a line of one call, leaving out what is empty (`ahead`: before the change, so none is made)."""
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "principal": record.principal,
            "on_behalf_of": record.on_behalf_of,
            "project": record.project or None,
            "tool": record.tool,
            "arguments": record.arguments,
            "before": record.before,
            "outcome": outcome,
            "reason": reason or None,
            "duration_ms": round((time.monotonic() - record.started) * 1000, 1),
        }
        self.write({k: v for k, v in line.items() if v is not None}, ahead=ahead)

    def write(self, line: Mapping[str, Any], *, ahead: bool = False) -> None:
        if self.path is None:
            return
        try:
            with _appending(self.path) as f:
                f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.error("audit line lost: %s", line)
            reason = exc.strerror or type(exc).__name__
            raise AuditUnavailable(self.path, reason, after=None if ahead else str(line["outcome"])) from exc


def _appending(path: Path) -> TextIO:
    """The log opened to append, made 0600 if it is new: it holds names, numbers and who did what for whom."""
    return open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8")


def _shown(name: str, value: Any) -> Any:
    if name == "confirm_token":
        return "(given)" if value else None
    if name == "url" and isinstance(value, str):  # a pull URL's user, password and passphrase= stay out
        value = redacted_url(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, str) and len(value) > LONGEST_VALUE:
        return value[:LONGEST_VALUE] + f"… ({len(value)} characters)"
    return value


def _outcome(result: CallToolResult) -> str:
    content = result.structured_content
    return str(content.get("outcome", "done")) if isinstance(content, dict) else "done"


async def audited_call(
    log_file: AuditLog, record: Record, run: Callable[[], Awaitable[CallToolResult]]
) -> CallToolResult:
    """Run a change call, writing its outcome line whatever happens (and telling room history what was done).
    `run` writes the attempted line itself (`Record.attempt`) right before it sends the change."""
    log_file.check_writable()
    outcome, reason = "failed", ""
    try:
        result = await run()
        outcome = _outcome(result)
        return result
    except PolicyRefusal as exc:
        outcome, reason = "refused by policy", str(exc)
        raise
    except InvalidInput as exc:
        outcome, reason = "invalid", str(exc)
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, LiveKitMCPError) else type(exc).__name__
        raise
    finally:
        if not record.attempt_failed:  # else the log is failing: its AuditUnavailable says no change was made
            log_file.record(record, outcome, reason)
        if outcome == "done":
            await log_file.tell_history(record)


def shown_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments as the audit log keeps them: no confirm token, long values cut."""
    shown = {k: _shown(k, v) for k, v in arguments.items()}
    return {k: v for k, v in shown.items() if v is not None}


def record_invalid(
    log_file: AuditLog, tool: str, arguments: Mapping[str, Any], principal: str, on_behalf_of: str | None, reason: str
) -> None:
    """The line of a change call refused before its tool could run (its arguments, or its project)."""
    shown = {k: _shown(k, v if isinstance(v, str) else repr(v)) for k, v in arguments.items()}
    log_file.record(Record(tool, shown, principal, on_behalf_of), "invalid", reason)
