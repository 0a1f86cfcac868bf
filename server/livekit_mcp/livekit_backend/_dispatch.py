"""AgentDispatchService: the agents dispatched to a room."""

from __future__ import annotations

from livekit_mcp.models import Dispatch

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._imports import api


class Dispatches(Adapter):
    @read("ListDispatch")
    async def list_dispatches(self, send: Send, room: str) -> list[Dispatch]:
        dispatches = await send(lambda: self.lk.agent_dispatch.list_dispatch(room), room=room)
        return [_convert.dispatch(d) for d in dispatches]

    @change("CreateDispatch", verified_by="list_dispatches")
    async def create_dispatch(self, send: Send, room: str, agent_name: str, metadata: str) -> Dispatch:
        request = api.CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        return _convert.dispatch(await send(lambda: self.lk.agent_dispatch.create_dispatch(request), room=room))

    @change("DeleteDispatch", verified_by="list_dispatches")
    async def delete_dispatch(self, send: Send, room: str, dispatch_id: str) -> Dispatch:
        deleted = await send(
            lambda: self.lk.agent_dispatch.delete_dispatch(dispatch_id, room), room=room, dispatch_id=dispatch_id
        )
        return _convert.dispatch(deleted)
