"""RoomService's participants: listed (and paged), read, updated, muted and removed."""

from __future__ import annotations

import bisect
import functools
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from livekit_mcp.models import Participant, Permission, Track

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._imports import api


class ParticipantPage(NamedTuple):
    participants: list[Participant]
    total: int
    """How many match, across all pages."""
    more: bool
    anyone: bool
    """Whether the room has anyone at all: LiveKit lists a missing room as an empty one."""


class Census(NamedTuple):
    """A room's participants counted on LiveKit's messages, with only those an operator looks for by kind converted:
    a room's summary needs everyone's kind, identity and publishing, and converting 5,000 webinar guests to read
    that cost ten times the LiveKit call."""

    total: int
    by_kind: dict[str, int]
    """Participants per effective kind (AGENT for an older agent, a STANDARD participant with permission.agent)."""
    publishers: list[str]
    """The identities of those publishing tracks."""
    present: frozenset[str]
    """Everyone's identity."""
    notable: list[Participant]
    """Everyone whose effective kind is not STANDARD (agents, SIP callers, ingress, egress), converted."""

    @property
    def agents(self) -> list[Participant]:
        return [p for p in self.notable if p.is_agent]


_BY_JOIN = operator.attrgetter("joined_at_ms", "identity")
"""The page order on the messages themselves: a key function per participant cost more than the sort."""


@functools.cache
def _kinds() -> tuple[int, int]:
    """STANDARD's and AGENT's numbers, read once: an enum wrapper's attribute costs ~1.5 us, more than a
    participant's field (and livekit-api is not loaded at import)."""
    kinds = api.ParticipantInfo.Kind
    return kinds.Value("STANDARD"), kinds.Value("AGENT")


def _of_kind(everyone: Sequence[api.ParticipantInfo], kind: str) -> list[api.ParticipantInfo]:
    """Those whose effective kind (`models.effective_kind`) is `kind`, compared on the enum's numbers: AGENT for a
    STANDARD participant with permission.agent; only STANDARD ones have their permission read."""
    standard, agent = _kinds()
    try:
        number: int = api.ParticipantInfo.Kind.Value(kind)
    except ValueError:  # a kind newer than our protocol package: nobody here has it
        return []
    if number == agent:
        return [p for p in everyone if p.kind == agent or (p.kind == standard and p.permission.agent)]
    if number == standard:
        return [p for p in everyone if p.kind == standard and not p.permission.agent]
    return [p for p in everyone if p.kind == number]


def page(
    everyone: Sequence[api.ParticipantInfo], *, kind: str | None, limit: int, after: tuple[float, str] | None
) -> ParticipantPage:
    """One page of participants (of `kind`), by join time then identity, after the key `after`.

    Sorting and filtering work on the protobuf messages and only the page is converted: in a 5,000-person
    webinar, converting everyone cost ten times the LiveKit call itself."""
    chosen = sorted(everyone if kind is None else _of_kind(everyone, kind), key=_BY_JOIN)
    key: Callable[[api.ParticipantInfo], tuple[float, str]] = _BY_JOIN
    # The cursor's seconds as joined_at_ms (int ms compare with float ms as the numbers they are).
    target: tuple[float, str] | None = None if after is None else (round(after[0] * 1000), after[1])
    if chosen and not chosen[0].joined_at_ms:
        # A server older than joined_at_ms gives whole seconds only (and such zeros sort first).
        key, target = (lambda p: (_convert.joined_at(p), p.identity)), after
        chosen.sort(key=key)
    start = 0 if target is None else bisect.bisect_right(chosen, target, key=key)
    found = [_convert.participant(p) for p in chosen[start : start + limit]]
    return ParticipantPage(found, total=len(chosen), more=start + limit < len(chosen), anyone=bool(everyone))


def census(everyone: Sequence[api.ParticipantInfo]) -> Census:
    standard, agent = _kinds()
    counts: Counter[int] = Counter()
    present: list[str] = []
    publishers: list[str] = []
    notable: list[Participant] = []
    for p in everyone:
        kind: int = p.kind
        if kind == standard and p.permission.agent:  # `models.effective_kind`, on numbers
            kind = agent
        counts[kind] += 1
        present.append(p.identity)
        if p.is_publisher:
            publishers.append(p.identity)
        if kind != standard:
            notable.append(_convert.participant(p))
    return Census(
        total=len(present),
        by_kind={_convert.enum_name(api.ParticipantInfo.Kind, k): n for k, n in counts.items()},
        publishers=publishers,
        present=frozenset(present),
        notable=notable,
    )


class Participants(Adapter):
    @read("ListParticipants")
    async def list_participants(self, send: Send, room: str) -> Sequence[api.ParticipantInfo]:
        """Everyone in the room, as LiveKit's messages (a page converts only what it shows); LiveKit answers a
        missing room with an empty list, as it does an empty room."""
        request = api.ListParticipantsRequest(room=room)
        return (await send(lambda: self.lk.room.list_participants(request), room=room)).participants

    @read("GetParticipant")
    async def get_participant(self, send: Send, room: str, identity: str) -> Participant:
        who = api.RoomParticipantIdentity(room=room, identity=identity)
        return _convert.participant(await send(lambda: self.lk.room.get_participant(who), room=room, identity=identity))

    @change("RemoveParticipant", verified_by="list_participants")
    async def remove_participant(self, send: Send, room: str, identity: str) -> None:
        who = api.RoomParticipantIdentity(room=room, identity=identity)
        await send(lambda: self.lk.room.remove_participant(who), room=room, identity=identity)

    @change("UpdateParticipant", verified_by="get_participant")
    async def update_participant(
        self,
        send: Send,
        room: str,
        identity: str,
        *,
        name: str,
        metadata: str,
        attributes: Mapping[str, str] | None,
        permission: Permission | None,
    ) -> Participant:
        request = api.UpdateParticipantRequest(
            room=room,
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=attributes,
            permission=_convert.to_permission(permission) if permission is not None else None,
        )
        return _convert.participant(
            await send(lambda: self.lk.room.update_participant(request), room=room, identity=identity)
        )

    @change("MutePublishedTrack", verified_by="get_participant")
    async def mute_track(self, send: Send, room: str, identity: str, track_sid: str, muted: bool) -> Track | None:
        """The track as LiveKit reports it after the change; None when LiveKit knows no such track."""
        request = api.MuteRoomTrackRequest(room=room, identity=identity, track_sid=track_sid, muted=muted)
        response = await send(lambda: self.lk.room.mute_published_track(request), room=room, identity=identity)
        return _convert.track(response.track) if response.HasField("track") else None
