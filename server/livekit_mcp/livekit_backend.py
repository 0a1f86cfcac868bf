"""The one seam to LiveKit: the only module that imports `livekit.api`.

It owns the single `LiveKitAPI` (one aiohttp session) of the process, bounds every call with our own
timeout (`livekit-api` ignores its own), converts protobuf to our models, and maps every foreign failure
to the exception tree of `errors.py` in one place (`_mapped`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
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
from livekit_mcp.models import Participant, Room, Track

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
        tracks=[
            Track(
                sid=t.sid,
                type=_enum_name(api.TrackType, t.type),
                source=_enum_name(api.TrackSource, t.source),
                name=t.name,
                muted=t.muted,
            )
            for t in p.tracks
        ],
        agent_permission=p.permission.agent,
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
