"""The one seam to LiveKit: the only module that imports `livekit.api`.

It owns the single `LiveKitAPI` (one aiohttp session) of the process, bounds every call with our own
timeout (`livekit-api` ignores its own), converts protobuf to our models, and maps every foreign failure
to the exception tree of `errors.py` in one place (`_mapped`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio
from google.protobuf.message import DecodeError
from livekit import api
from pydantic import SecretStr

from livekit_mcp.errors import (
    AuthenticationFailed,
    DispatchNotFound,
    LiveKitError,
    ParticipantNotFound,
    PermissionDenied,
    RoomNotFound,
    ServerFailure,
    Timeout,
    Unreachable,
)
from livekit_mcp.models import Dispatch, Job, Participant, Permission, Room, Track

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")

# LiveKit's not_found messages (LIVEKIT_BEHAVIOR.md, section 3): the message is what tells them apart.
_ROOM_MISSING = "requested room does not exist"
_PARTICIPANT_MISSING = "participant does not exist"
_DISPATCH_MISSING = "dispatch ID not found"


def _enum_name(enum: type[object], value: int) -> str:
    """The name of a protobuf enum value; the number itself for a value newer than our protocol package."""
    try:
        return str(enum.Name(value))  # type: ignore[attr-defined]
    except ValueError:
        return str(value)


def _room(r: api.Room) -> Room:
    return Room(
        sid=r.sid,
        name=r.name,
        num_participants=r.num_participants,
        num_publishers=r.num_publishers,
        creation_time=r.creation_time_ms / 1000 if r.creation_time_ms else float(r.creation_time),
        metadata=r.metadata,
        empty_timeout=r.empty_timeout,
        departure_timeout=r.departure_timeout,
        max_participants=r.max_participants,
    )


def _participant(p: api.ParticipantInfo) -> Participant:
    return Participant(
        sid=p.sid,
        identity=p.identity,
        name=p.name,
        kind=_enum_name(api.ParticipantInfo.Kind, p.kind),
        state=_enum_name(api.ParticipantInfo.State, p.state),
        joined_at=p.joined_at_ms / 1000 if p.joined_at_ms else float(p.joined_at),
        is_publisher=p.is_publisher,
        metadata=p.metadata,
        attributes=dict(p.attributes),
        kind_details=[_enum_name(api.ParticipantInfo.KindDetail, k) for k in p.kind_details],
        tracks=[_track(t) for t in p.tracks],
        permission=_permission(p.permission) if p.HasField("permission") else None,
    )


def _track(t: api.TrackInfo) -> Track:
    return Track(
        sid=t.sid,
        type=_enum_name(api.TrackType, t.type),
        source=_enum_name(api.TrackSource, t.source),
        name=t.name,
        muted=t.muted,
    )


def _permission(p: api.ParticipantPermission) -> Permission:
    return Permission.model_validate(
        {
            **{field: getattr(p, field) for field in Permission.model_fields if field != "can_publish_sources"},
            "can_publish_sources": [_enum_name(api.TrackSource, s) for s in p.can_publish_sources],
        }
    )


def _to_permission(p: Permission) -> api.ParticipantPermission:
    # Enum names are accepted by protobuf constructors as they are.
    return api.ParticipantPermission(**p.model_dump())


def _dispatch(d: api.AgentDispatch) -> Dispatch:
    return Dispatch(
        id=d.id,
        agent_name=d.agent_name,
        room=d.room,
        metadata=d.metadata,
        created_at=d.state.created_at / 1e9 if d.state.created_at > 1e12 else float(d.state.created_at),
        jobs=[
            Job(
                id=j.id,
                status=_enum_name(api.JobStatus, j.state.status),
                participant_identity=j.state.participant_identity or None,
            )
            for j in d.state.jobs
        ],
    )


def display_url(url: str) -> str:
    """The URL without any user, password, path or query: safe to show in messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


class LiveKit:
    """A connection to one LiveKit deployment. Use as an async context manager (one per process)."""

    def __init__(self, url: str, api_key: str, api_secret: SecretStr, *, timeout: float, concurrency: int) -> None:
        self.url = display_url(url)
        self._target = url
        self.api_key = api_key
        self._secret = api_secret
        self.timeout = timeout
        self.concurrency = concurrency
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> Self:
        # failover=False: LiveKit Cloud failover replays requests, and a change must never be replayed blindly.
        self._api = api.LiveKitAPI(self._target, self.api_key, self._secret.get_secret_value(), failover=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    @property
    def _lk(self) -> api.LiveKitAPI:
        if self._api is None:
            raise RuntimeError("LiveKit is used outside its `async with` block")
        return self._api

    # --- Rooms ---------------------------------------------------------------------------------------

    async def list_rooms(self, names: Sequence[str] = ()) -> list[Room]:
        """Rooms by name (unknown names are left out), or every room when no names are given."""
        response = await self._call("ListRooms", lambda: self._lk.room.list_rooms(api.ListRoomsRequest(names=names)))
        return [_room(r) for r in response.rooms]

    async def get_room(self, room: str) -> Room:
        rooms = await self.list_rooms([room])
        if not rooms:
            raise RoomNotFound(room)
        return rooms[0]

    async def create_room(
        self, room: str, *, empty_timeout: int, departure_timeout: int, max_participants: int, metadata: str
    ) -> Room:
        request = api.CreateRoomRequest(
            name=room,
            empty_timeout=empty_timeout,
            departure_timeout=departure_timeout,
            max_participants=max_participants,
            metadata=metadata,
        )
        return _room(
            await self._call("CreateRoom", lambda: self._lk.room.create_room(request), room=room, changes=True)
        )

    async def update_room_metadata(self, room: str, metadata: str) -> Room:
        request = api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
        return _room(
            await self._call(
                "UpdateRoomMetadata", lambda: self._lk.room.update_room_metadata(request), room=room, changes=True
            )
        )

    async def send_data(
        self, room: str, data: bytes, *, reliable: bool, topic: str | None, destination_identities: Sequence[str]
    ) -> None:
        request = api.SendDataRequest(
            room=room,
            data=data,
            kind=api.DataPacket.Kind.RELIABLE if reliable else api.DataPacket.Kind.LOSSY,
            topic=topic,
            destination_identities=destination_identities,
        )
        await self._call("SendData", lambda: self._lk.room.send_data(request), room=room, changes=True)

    async def delete_room(self, room: str) -> None:
        await self._call(
            "DeleteRoom", lambda: self._lk.room.delete_room(api.DeleteRoomRequest(room=room)), room=room, changes=True
        )

    # --- Participants --------------------------------------------------------------------------------

    async def list_participants(self, room: str) -> list[Participant]:
        """Everyone in the room; LiveKit answers a missing room with an empty list, as it does an empty room."""
        response = await self._call(
            "ListParticipants",
            lambda: self._lk.room.list_participants(api.ListParticipantsRequest(room=room)),
            room=room,
        )
        return [_participant(p) for p in response.participants]

    async def get_participant(self, room: str, identity: str) -> Participant:
        info = await self._call(
            "GetParticipant",
            lambda: self._lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=identity)),
            room=room,
            identity=identity,
        )
        return _participant(info)

    async def remove_participant(self, room: str, identity: str) -> None:
        await self._call(
            "RemoveParticipant",
            lambda: self._lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity)),
            room=room,
            identity=identity,
            changes=True,
        )

    async def update_participant(
        self,
        room: str,
        identity: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        permission: Permission | None = None,
    ) -> Participant:
        request = api.UpdateParticipantRequest(
            room=room,
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=attributes,
            permission=_to_permission(permission) if permission is not None else None,
        )
        info = await self._call(
            "UpdateParticipant",
            lambda: self._lk.room.update_participant(request),
            room=room,
            identity=identity,
            changes=True,
        )
        return _participant(info)

    async def mute_track(self, room: str, identity: str, track_sid: str, muted: bool) -> Track | None:
        """The track as LiveKit reports it after the change; None when LiveKit knows no such track."""
        request = api.MuteRoomTrackRequest(room=room, identity=identity, track_sid=track_sid, muted=muted)
        response = await self._call(
            "MutePublishedTrack",
            lambda: self._lk.room.mute_published_track(request),
            room=room,
            identity=identity,
            changes=True,
        )
        return _track(response.track) if response.HasField("track") else None

    # --- Agent dispatch ------------------------------------------------------------------------------

    async def list_dispatches(self, room: str) -> list[Dispatch]:
        dispatches = await self._call("ListDispatch", lambda: self._lk.agent_dispatch.list_dispatch(room), room=room)
        return [_dispatch(d) for d in dispatches]

    async def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        request = api.CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        dispatch = await self._call(
            "CreateDispatch", lambda: self._lk.agent_dispatch.create_dispatch(request), room=room, changes=True
        )
        return _dispatch(dispatch)

    async def delete_dispatch(self, room: str, dispatch_id: str) -> Dispatch:
        dispatch = await self._call(
            "DeleteDispatch",
            lambda: self._lk.agent_dispatch.delete_dispatch(dispatch_id, room),
            room=room,
            dispatch_id=dispatch_id,
            changes=True,
        )
        return _dispatch(dispatch)

    # --- Fan-out -------------------------------------------------------------------------------------

    async def gather(self, fn: Callable[[T], Awaitable[U]], items: Sequence[T]) -> list[U]:
        """`fn` over every item with at most `concurrency` LiveKit calls in flight; results in item order."""
        results: list[U | None] = [None] * len(items)
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def one(i: int, item: T) -> None:
            async with limiter:
                results[i] = await fn(item)

        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                tg.start_soon(one, i, item)
        return results  # type: ignore[return-value]  # every slot was filled, or the group raised

    # --- The one place foreign errors are mapped -----------------------------------------------------

    async def _call(
        self,
        method: str,
        request: Callable[[], Awaitable[T]],
        *,
        room: str = "",
        identity: str = "",
        dispatch_id: str = "",
        changes: bool = False,
    ) -> T:
        try:
            with anyio.fail_after(self.timeout):
                return await request()
        except Exception as exc:
            error = self._mapped(exc, method, room=room, identity=identity, dispatch_id=dispatch_id, changes=changes)
            if error is None:
                raise  # not a LiveKit or transport failure: a bug of ours, for the SDK to log with its traceback
            if isinstance(error, ParticipantNotFound) and not await self._room_exists(room):
                # LiveKit says "participant does not exist" for a missing room too; the room is the real news.
                error = RoomNotFound(room)
            log.info("LiveKit %s failed: %s (%s)", method, error, type(exc).__name__)
            raise error from exc

    async def _room_exists(self, room: str) -> bool:
        try:
            return bool(await self.list_rooms([room]))
        except LiveKitError:
            return True  # cannot tell: keep the original answer

    def _mapped(
        self, exc: Exception, method: str, *, room: str, identity: str, dispatch_id: str, changes: bool
    ) -> LiveKitError | None:
        if isinstance(exc, TimeoutError):
            return Timeout(self.url, self.timeout, method, changes=changes)
        if isinstance(exc, api.ServerError):
            if exc.status == 401 and exc.code == "unauthenticated":
                return PermissionDenied(self.url, self.api_key, method)
            if exc.status == 401:
                # The plain-text 401 of a bad key, secret or token arrives as code "unknown" with no message.
                return AuthenticationFailed(self.url, self.api_key)
            if exc.code == "not_found":
                if exc.message == _ROOM_MISSING:
                    return RoomNotFound(room)
                if exc.message == _PARTICIPANT_MISSING:
                    return ParticipantNotFound(room, identity)
                if exc.message == _DISPATCH_MISSING:
                    return DispatchNotFound(room, dispatch_id)
            return ServerFailure(method, exc.code, exc.status, exc.message)
        if isinstance(exc, aiohttp.ClientConnectionError):
            return Unreachable(self.url, type(exc).__name__ if not str(exc) else _reason(exc))
        if isinstance(exc, DecodeError):
            return ServerFailure(method, "malformed_response", 200, "the answer was not a valid protobuf message")
        if isinstance(exc, aiohttp.ClientError):
            return ServerFailure(method, "transport", 0, _reason(exc))
        return None


def _reason(exc: Exception) -> str:
    """A one-line reason from a transport error, without the request it was about."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
