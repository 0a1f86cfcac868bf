"""The Twirp method table: each method's request type, pre-grant checks, grant and rule (in `State`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.message import Message
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch as proto_dispatch
from livekit.protocol import room as proto_room

from ._limits import check_participant_update, check_room_metadata

if TYPE_CHECKING:
    from ._state import State

Req = TypeVar("Req", bound=Message)


def _room_list(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.video and claims.video.room_list)


def _room_create(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.video and claims.video.room_create)


def _room_admin(claims: Claims | None, req: Any) -> bool:
    # No wildcard: the token's room must be exactly the request's room.
    return bool(claims and claims.video and claims.video.room_admin and claims.video.room == req.room)


def _no_check(req: Any) -> None:
    return None


@dataclass(frozen=True)
class Method(Generic[Req]):
    request: type[Req]
    grant: Callable[[Claims | None, Req], bool]
    call: Callable[[State, Req], Message]
    precheck: Callable[[Req], None] = _no_check  # size limits the server checks before the grant


ROOM = "livekit.RoomService"
DISPATCH = "livekit.AgentDispatchService"

# Keys are "Service/Method" without the "livekit." package, as the fault API names them.
METHODS: dict[str, Method[Any]] = {
    "RoomService/CreateRoom": Method(proto_room.CreateRoomRequest, _room_create, lambda s, r: s.create_room(r)),
    "RoomService/ListRooms": Method(proto_room.ListRoomsRequest, _room_list, lambda s, r: s.list_rooms(r)),
    "RoomService/DeleteRoom": Method(proto_room.DeleteRoomRequest, _room_create, lambda s, r: s.delete_room(r)),
    "RoomService/ListParticipants": Method(
        proto_room.ListParticipantsRequest, _room_admin, lambda s, r: s.list_participants(r)
    ),
    "RoomService/GetParticipant": Method(
        proto_room.RoomParticipantIdentity, _room_admin, lambda s, r: s.get_participant(r)
    ),
    "RoomService/RemoveParticipant": Method(
        proto_room.RoomParticipantIdentity, _room_admin, lambda s, r: s.remove_participant(r)
    ),
    "RoomService/MutePublishedTrack": Method(
        proto_room.MuteRoomTrackRequest, _room_admin, lambda s, r: s.mute_published_track(r)
    ),
    "RoomService/UpdateParticipant": Method(
        proto_room.UpdateParticipantRequest,
        _room_admin,
        lambda s, r: s.update_participant(r),
        check_participant_update,
    ),
    "RoomService/UpdateSubscriptions": Method(
        proto_room.UpdateSubscriptionsRequest, _room_admin, lambda s, r: s.update_subscriptions(r)
    ),
    "RoomService/SendData": Method(proto_room.SendDataRequest, _room_admin, lambda s, r: s.send_data(r)),
    "RoomService/UpdateRoomMetadata": Method(
        proto_room.UpdateRoomMetadataRequest,
        _room_admin,
        lambda s, r: s.update_room_metadata(r),
        check_room_metadata,
    ),
    "RoomService/PerformRpc": Method(proto_room.PerformRpcRequest, _room_admin, lambda s, r: s.perform_rpc(r)),
    "AgentDispatchService/CreateDispatch": Method(
        proto_dispatch.CreateAgentDispatchRequest, _room_admin, lambda s, r: s.create_dispatch(r)
    ),
    "AgentDispatchService/ListDispatch": Method(
        proto_dispatch.ListAgentDispatchRequest, _room_admin, lambda s, r: s.list_dispatch(r)
    ),
    "AgentDispatchService/DeleteDispatch": Method(
        proto_dispatch.DeleteAgentDispatchRequest, _room_admin, lambda s, r: s.delete_dispatch(r)
    ),
}
