"""RoomService's participants: listed (and paged), read, updated, muted and removed."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from livekit_mcp.models import Participant, Permission, Track, effective_kind

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


def page(
    everyone: Sequence[api.ParticipantInfo], *, kind: str | None, limit: int, after: tuple[float, str] | None
) -> ParticipantPage:
    """One page of participants (of `kind`), by join time then identity, after the key `after`.

    Sorting and filtering work on the protobuf messages and only the page is converted: in a 5,000-person
    webinar, converting everyone cost ten times the LiveKit call itself."""

    def key(p: api.ParticipantInfo) -> tuple[float, str]:
        return (_convert.joined_at(p), p.identity)

    if kind is None:
        chosen = list(everyone)
    else:
        names = api.ParticipantInfo.Kind
        chosen = [p for p in everyone if effective_kind(_convert.enum_name(names, p.kind), p.permission.agent) == kind]
    chosen.sort(key=key)
    start = 0 if after is None else bisect.bisect_right(chosen, after, key=key)
    found = [_convert.participant(p) for p in chosen[start : start + limit]]
    return ParticipantPage(found, total=len(chosen), more=start + limit < len(chosen), anyone=bool(everyone))


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
