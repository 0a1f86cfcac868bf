"""RoomService's rooms: listed, made, changed and deleted, and data sent into them."""

from __future__ import annotations

from collections.abc import Sequence

from livekit_mcp.models import Room

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._imports import api


class Rooms(Adapter):
    @read("ListRooms")
    async def list_rooms(self, send: Send, names: Sequence[str]) -> list[Room]:
        """Rooms by name (unknown names are left out), or every room when no names are given."""
        response = await send(lambda: self.lk.room.list_rooms(api.ListRoomsRequest(names=names)))
        return [_convert.room(r) for r in response.rooms if self.policy.visible(r.name)]

    @change("CreateRoom", verified_by="list_rooms")
    async def create_room(
        self, send: Send, room: str, *, empty_timeout: int, departure_timeout: int, max_participants: int, metadata: str
    ) -> Room:
        request = api.CreateRoomRequest(
            name=room,
            empty_timeout=empty_timeout,
            departure_timeout=departure_timeout,
            max_participants=max_participants,
            metadata=metadata,
        )
        return _convert.room(await send(lambda: self.lk.room.create_room(request), room=room))

    @change("UpdateRoomMetadata", verified_by="get_room")
    async def update_room_metadata(self, send: Send, room: str, metadata: str) -> Room:
        request = api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
        return _convert.room(await send(lambda: self.lk.room.update_room_metadata(request), room=room))

    @change("SendData", verified_by="")
    async def send_data(
        self,
        send: Send,
        room: str,
        data: bytes,
        *,
        reliable: bool,
        topic: str | None,
        destination_identities: Sequence[str],
    ) -> None:
        request = api.SendDataRequest(
            room=room,
            data=data,
            kind=api.DataPacket.Kind.RELIABLE if reliable else api.DataPacket.Kind.LOSSY,
            topic=topic,
            destination_identities=destination_identities,
        )
        await send(lambda: self.lk.room.send_data(request), room=room)

    @change("DeleteRoom", verified_by="list_rooms")
    async def delete_room(self, send: Send, room: str) -> None:
        await send(lambda: self.lk.room.delete_room(api.DeleteRoomRequest(room=room)), room=room)
