"""The egress service: recordings and streams of a room."""

from __future__ import annotations

from pydantic import SecretStr

from livekit_mcp.errors import EgressOutputMissing
from livekit_mcp.models import Egress

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._call import CallPath
from ._imports import api

EGRESS_LIMIT = 40.0
"""Seconds StartRoomCompositeEgress may take: livekit-server v1.13.5 waits ~25 s for an egress service before it
answers that none is there (docs/livekit-behavior.md), and one that is there answers within seconds."""


class Egresses(Adapter):
    def __init__(self, path: CallPath, output: SecretStr | None) -> None:
        """`output` is where start_room_egress records (LIVEKIT_MCP_EGRESS_OUTPUT)."""
        super().__init__(path)
        self._output = output

    @property
    def shown_output(self) -> str | None:
        """Where start_room_egress records, as it may be shown: a file path template, or a stream's host."""
        if self._output is None:
            return None
        output = self._output.get_secret_value()
        return f"stream {_convert.display_url(output)}" if "://" in output else f"file {output}"

    @read("ListEgress", service="egress")
    async def list_egress(self, send: Send, *, room: str, egress_id: str, active: bool) -> list[Egress]:
        if room:
            self.policy.check_room(room, changes=False)
        request = api.ListEgressRequest(room_name=room, egress_id=egress_id, active=active)
        found = await send(lambda: self.lk.egress.list_egress(request), item=egress_id)
        return [_convert.egress(e) for e in found.items if self.policy.visible(e.room_name)]

    @change("StartRoomCompositeEgress", verified_by="list_egress", service="egress")
    async def start_room_egress(self, send: Send, room: str, *, audio_only: bool) -> Egress:
        """Records (or streams) the room to the output of LIVEKIT_MCP_EGRESS_OUTPUT, which the caller never sees
        whole: a stream URL carries its key, and file storage is the egress service's own configuration."""
        if self._output is None:
            raise EgressOutputMissing()
        output = self._output.get_secret_value()
        request = api.RoomCompositeEgressRequest(room_name=room, audio_only=audio_only)
        if "://" in output:
            request.stream_outputs.append(api.StreamOutput(urls=[output]))
        else:
            request.file_outputs.append(api.EncodedFileOutput(filepath=output))
        started = await send(
            lambda: self.lk.egress.start_room_composite_egress(request),
            room=room,
            limit=max(self.path.timeout, EGRESS_LIMIT),
        )
        return _convert.egress(started)

    @change("StopEgress", verified_by="list_egress", service="egress")
    async def stop_egress(self, send: Send, room: str, egress_id: str) -> Egress:
        request = api.StopEgressRequest(egress_id=egress_id)
        return _convert.egress(await send(lambda: self.lk.egress.stop_egress(request), room=room, item=egress_id))
