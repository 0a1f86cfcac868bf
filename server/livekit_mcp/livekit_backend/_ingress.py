"""The ingress service: streams pushed or pulled into a room."""

from __future__ import annotations

from livekit_mcp.models import Ingress

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._imports import api


class Ingresses(Adapter):
    @read("ListIngress", service="ingress")
    async def list_ingress(self, send: Send, *, room: str, ingress_id: str) -> list[Ingress]:
        if room:
            self.policy.check_room(room, changes=False)
        request = api.ListIngressRequest(room_name=room, ingress_id=ingress_id)
        found = await send(lambda: self.lk.ingress.list_ingress(request), item=ingress_id)
        return [_convert.ingress(i, masked=True) for i in found.items if self.policy.visible(i.room_name)]

    @change("CreateIngress", verified_by="list_ingress", service="ingress")
    async def create_ingress(
        self, send: Send, room: str, input_type: str, *, identity: str, name: str, participant_name: str, url: str
    ) -> Ingress:
        """A new ingress; its stream key (anyone holding it can publish into the room) is in this answer only."""
        request = api.CreateIngressRequest(
            input_type=input_type,  # the enum value's name, which protobuf accepts
            room_name=room,
            participant_identity=identity,
            participant_name=participant_name,
            name=name,
            url=url,
        )
        made = await send(lambda: self.lk.ingress.create_ingress(request), room=room)
        return _convert.ingress(made, masked=False)

    @change("DeleteIngress", verified_by="list_ingress", service="ingress")
    async def delete_ingress(self, send: Send, room: str, ingress_id: str) -> Ingress:
        request = api.DeleteIngressRequest(ingress_id=ingress_id)
        deleted = await send(lambda: self.lk.ingress.delete_ingress(request), room=room, item=ingress_id)
        return _convert.ingress(deleted, masked=True)
