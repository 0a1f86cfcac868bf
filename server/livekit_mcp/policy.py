"""Policy: which projects a caller may use, which rooms tools may see and change, who may be made to leave, and
how often; all of it here, as checks over the caller, the project and a call's plan.

- `check_project`: a token limited to some projects reaches no other (made when the request scope is opened).
- `Policy.check_room`: rooms outside allowed_rooms are unseen, protected rooms never changed; enforced at the
  LiveKit seam too, so no tool or resource gets around it.
- `check_change`: a read-only token or a read-only project changes nothing.
- `Policy.check_leaving`: whoever a plan would make leave, for whatever reason (removal, deletion, a dial-out or
  ingress taking their identity, a shutdown request, a transfer), is checked against protected_kinds.
- `Budget`: max_destructive_per_minute, one reservation per action (kept if it happened, given back if not), on
  the store the replicas share or on this process's own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from livekit_mcp.errors import PolicyRefusal

if TYPE_CHECKING:
    from livekit_mcp.store import Store

WINDOW = 60.0


def _matching(patterns: Sequence[str], room: str) -> str | None:
    return next((p for p in patterns if fnmatchcase(room, p)), None)


def check_project(principal: str, allowed: Collection[str] | None, name: str, label: str) -> None:
    """Refuse a project outside those the caller's token is limited to (None: every project)."""
    if allowed is not None and name not in allowed:
        raise PolicyRefusal(
            "projects", f"'{principal}' may use project(s) {', '.join(sorted(allowed))} only, not {label}"
        )


def check_change(tool: str, principal: str, can_write: bool, project_read_only: bool, label: str) -> None:
    """Refuse a change by a read-only token, or on a read-only project."""
    if not can_write:
        raise PolicyRefusal("role", f"'{principal}' has a read-only token; {tool} changes things")
    if project_read_only:
        raise PolicyRefusal("read_only", f"{label} is read-only: {tool} changes things (list_projects shows which are)")


@dataclass
class Policy:
    allowed_rooms: Sequence[str] = ("*",)
    protected_rooms: Sequence[str] = ()
    protected_kinds: Sequence[str] = ()
    max_destructive_per_minute: int = 0

    def visible(self, room: str) -> bool:
        return _matching(self.allowed_rooms, room) is not None

    def check_room(self, room: str, *, changes: bool) -> None:
        """Refuse a call about a room outside allowed_rooms, or a change to a protected room."""
        if not self.visible(room):
            raise PolicyRefusal(
                "allowed_rooms",
                f"room '{room}' is outside the rooms this server may see ({', '.join(self.allowed_rooms)})",
            )
        pattern = _matching(self.protected_rooms, room) if changes else None
        if pattern is not None:
            raise PolicyRefusal(
                "protected_rooms", f"room '{room}' is protected (matches '{pattern}'): it is never changed"
            )

    def check_leaving(self, room: str, kinds: Mapping[str, int]) -> None:
        """Refuse to make participants of a protected kind leave, whatever the way."""
        protected = {kind: n for kind, n in kinds.items() if kind in self.protected_kinds and n}
        if protected:
            who = ", ".join(f"{n} {kind}" for kind, n in sorted(protected.items()))
            raise PolicyRefusal(
                "protected_kinds", f"this would disconnect {who} participant(s) in '{room}', a kind never removed"
            )


class Budget:
    """max_destructive_per_minute of one project: slots of the last minute in `store` (the replicas' shared store,
    or this process's own), reserved right before an action is sent and given back if it did not happen."""

    def __init__(self, limit: int, store: Store, project: str, *, shared: bool) -> None:
        self.limit = limit
        self._store = store
        self._project = project
        self._shared = shared

    def _refusal(self) -> PolicyRefusal:
        where = ", across the replicas sharing the store" if self._shared else "; try again within a minute"
        return PolicyRefusal(
            "max_destructive_per_minute", f"{self.limit} destructive actions in the last minute already{where}"
        )

    async def check(self) -> None:
        """Refuse now if no slot is left (before a person is asked to approve what would be refused anyway)."""
        slot = await self.reserve()
        if slot is not None:
            await self.release(slot)

    async def reserve(self) -> str | None:
        """Take a slot (checked and taken in one step, so concurrent calls cannot both take the last one)."""
        if not self.limit:
            return None
        slot = await self._store.take_slot(WINDOW, self.limit, self._project)
        if slot is None:
            raise self._refusal()
        return slot

    async def release(self, slot: str | None) -> None:
        """Give back the slot of an action that did not happen: the limit counts actions, not attempts."""
        if slot is not None:
            await self._store.give_back(slot)
