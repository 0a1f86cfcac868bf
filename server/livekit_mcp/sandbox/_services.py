"""The Twirp method table: each method's request type, pre-grant checks, grant and rule (in `State`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.message import Message
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch as proto_dispatch
from livekit.protocol import egress as proto_egress
from livekit.protocol import ingress as proto_ingress
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

from . import _egress, _ingress, _sip
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


def _room_and_destination_admin(claims: Claims | None, req: Any) -> bool:
    # EnsureDestRoomPermission (pkg/service/auth.go:244-255): room admin of the room, and the destination room granted.
    video = claims.video if claims else None
    return bool(
        video and video.room_admin and video.room == req.room and (video.destination_room or "") == req.destination_room
    )


def _sip_admin(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.sip and claims.sip.admin)


def _sip_call(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.sip and claims.sip.call)


def _sip_call_and_room_admin(claims: Claims | None, req: Any) -> bool:
    # TransferSIPParticipant: both, the room admin grant for the call's room.
    video = claims.video if claims else None
    return _sip_call(claims, req) and bool(video and video.room_admin and video.room == req.room_name)


def _room_record(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.video and claims.video.room_record)


def _ingress_admin(claims: Claims | None, req: Any) -> bool:
    return bool(claims and claims.video and claims.video.ingress_admin)


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
SERVICES = ("RoomService/", "AgentDispatchService/", "SIP/", "Egress/", "Ingress/")

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
    "RoomService/MoveParticipant": Method(
        proto_room.MoveParticipantRequest, _room_and_destination_admin, lambda s, r: s.move_participant(r)
    ),
    "RoomService/ForwardParticipant": Method(
        proto_room.ForwardParticipantRequest, _room_and_destination_admin, lambda s, r: s.move_participant(r)
    ),
    "AgentDispatchService/CreateDispatch": Method(
        proto_dispatch.CreateAgentDispatchRequest, _room_admin, lambda s, r: s.create_dispatch(r)
    ),
    "AgentDispatchService/ListDispatch": Method(
        proto_dispatch.ListAgentDispatchRequest, _room_admin, lambda s, r: s.list_dispatch(r)
    ),
    "AgentDispatchService/DeleteDispatch": Method(
        proto_dispatch.DeleteAgentDispatchRequest, _room_admin, lambda s, r: s.delete_dispatch(r)
    ),
    # SIP, egress and ingress: _sip.py, _egress.py, _ingress.py.
    "SIP/CreateSIPInboundTrunk": Method(
        proto_sip.CreateSIPInboundTrunkRequest, _sip_admin, lambda s, r: s.sip.create_inbound(r)
    ),
    "SIP/CreateSIPOutboundTrunk": Method(
        proto_sip.CreateSIPOutboundTrunkRequest, _sip_admin, lambda s, r: s.sip.create_outbound(r)
    ),
    "SIP/ListSIPInboundTrunk": Method(
        proto_sip.ListSIPInboundTrunkRequest, _sip_admin, lambda s, r: s.sip.list_inbound(r)
    ),
    "SIP/ListSIPOutboundTrunk": Method(
        proto_sip.ListSIPOutboundTrunkRequest, _sip_admin, lambda s, r: s.sip.list_outbound(r)
    ),
    "SIP/DeleteSIPTrunk": Method(proto_sip.DeleteSIPTrunkRequest, _sip_admin, lambda s, r: s.sip.delete_trunk(r)),
    "SIP/CreateSIPDispatchRule": Method(
        proto_sip.CreateSIPDispatchRuleRequest, _sip_admin, lambda s, r: s.sip.create_rule(r)
    ),
    "SIP/ListSIPDispatchRule": Method(
        proto_sip.ListSIPDispatchRuleRequest, _sip_admin, lambda s, r: s.sip.list_rules(r)
    ),
    "SIP/DeleteSIPDispatchRule": Method(
        proto_sip.DeleteSIPDispatchRuleRequest, _sip_admin, lambda s, r: s.sip.delete_rule(r)
    ),
    "SIP/CreateSIPParticipant": Method(proto_sip.CreateSIPParticipantRequest, _sip_call, _sip.create_participant),
    "SIP/TransferSIPParticipant": Method(
        proto_sip.TransferSIPParticipantRequest,
        _sip_call_and_room_admin,
        _sip.transfer_participant,
        _sip.check_transfer,
    ),
    "Egress/StartRoomCompositeEgress": Method(
        proto_egress.RoomCompositeEgressRequest, _room_record, _egress.start_room_composite
    ),
    "Egress/ListEgress": Method(proto_egress.ListEgressRequest, _room_record, lambda s, r: s.egress.list(r)),
    "Egress/StopEgress": Method(proto_egress.StopEgressRequest, _room_record, _egress.stop),
    "Ingress/CreateIngress": Method(proto_ingress.CreateIngressRequest, _ingress_admin, _ingress.create),
    "Ingress/ListIngress": Method(proto_ingress.ListIngressRequest, _ingress_admin, lambda s, r: s.ingress.list(r)),
    "Ingress/DeleteIngress": Method(
        proto_ingress.DeleteIngressRequest, _ingress_admin, lambda s, r: s.ingress.delete(r)
    ),
}
