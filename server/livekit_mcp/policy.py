"""Policy: which rooms tools may see and change, who may be disconnected, and how often.

Room rules are enforced at the LiveKit seam, so no tool or resource can get around them; the rules about
participants and rates are checked by the destructive tools before they ask for confirmation, and the rate again
when an action is sent (a reservation, kept only if the action happened).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from livekit_mcp.errors import PolicyRefusal

WINDOW = 60.0


def _matching(patterns: Sequence[str], room: str) -> str | None:
    return next((p for p in patterns if fnmatchcase(room, p)), None)


@dataclass
class Policy:
    allowed_rooms: Sequence[str] = ("*",)
    protected_rooms: Sequence[str] = ()
    protected_kinds: Sequence[str] = ()
    max_destructive_per_minute: int = 0
    _recent: deque[float] = field(default_factory=deque, repr=False)

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

    def check_disconnect(self, room: str, kinds: Mapping[str, int]) -> None:
        """Refuse to disconnect participants of a protected kind."""
        protected = {kind: n for kind, n in kinds.items() if kind in self.protected_kinds and n}
        if protected:
            who = ", ".join(f"{n} {kind}" for kind, n in sorted(protected.items()))
            raise PolicyRefusal(
                "protected_kinds", f"this would disconnect {who} participant(s) in '{room}', a kind never removed"
            )

    def check_rate(self, now: float | None = None) -> None:
        """Refuse a destructive action beyond max_destructive_per_minute."""
        if not self.max_destructive_per_minute:
            return
        now = time.monotonic() if now is None else now
        while self._recent and now - self._recent[0] >= WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self.max_destructive_per_minute:
            wait = WINDOW - (now - self._recent[0])
            raise PolicyRefusal(
                "max_destructive_per_minute",
                f"{self.max_destructive_per_minute} destructive actions in the last minute already; "
                f"try again in {wait:.0f} s",
            )

    def reserve(self, now: float | None = None) -> float:
        """Take one of max_destructive_per_minute for an action about to be sent (refused if none is left).

        Checked and taken in one step, so concurrent calls cannot both take the last one. The action then
        keeps it, or gives it back with `release` if it did not happen: the limit counts actions, not attempts.
        """
        self.check_rate(now)
        stamp = time.monotonic() if now is None else now
        self._recent.append(stamp)
        return stamp

    def release(self, stamp: float) -> None:
        """Give back a reservation whose action did not happen."""
        with contextlib.suppress(ValueError):  # already out of the window
            self._recent.remove(stamp)
