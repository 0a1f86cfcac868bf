"""The egress service (livekit.Egress): room recordings as a connected egress service runs them, and the
egress list livekit-server 1.13.5 keeps in its store.

Starting joins a hidden EGRESS participant to the room (what a real recorder does); stopping ends the egress
(COMPLETE, with its file or stream results) and that participant leaves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livekit.protocol import egress as proto_egress

from ._ids import guid
from ._twirp import TwirpError, routed

if TYPE_CHECKING:
    from ._state import State

RUNNING = (proto_egress.EgressStatus.EGRESS_STARTING, proto_egress.EgressStatus.EGRESS_ACTIVE)


@dataclass
class EgressStore:
    items: dict[str, proto_egress.EgressInfo] = field(default_factory=dict)

    def clear(self) -> None:
        self.items.clear()

    def list(self, req: proto_egress.ListEgressRequest) -> proto_egress.ListEgressResponse:
        if req.egress_id:
            found = self.items.get(req.egress_id)
            if found is None:
                raise routed("not_found", "egress does not exist")
            return proto_egress.ListEgressResponse(items=[found])
        items = [
            e
            for e in self.items.values()
            if (not req.room_name or e.room_name == req.room_name) and (not req.active or e.status in RUNNING)
        ]
        return proto_egress.ListEgressResponse(items=items)


def start_room_composite(state: State, req: proto_egress.RoomCompositeEgressRequest) -> proto_egress.EgressInfo:
    room = state.rooms.get(req.room_name)
    if room is None:
        raise routed("not_found", "requested room does not exist")
    if not (req.HasField("file") or req.file_outputs or req.HasField("stream") or req.stream_outputs):
        raise TwirpError("invalid_argument", "no outputs")  # livekit/egress: every request needs an output
    now = time.time_ns()
    info = proto_egress.EgressInfo(
        egress_id=guid("EG_"),
        room_id=room.info.sid,
        room_name=req.room_name,
        source_type=proto_egress.EgressSourceType.EGRESS_SOURCE_TYPE_WEB,
        status=proto_egress.EgressStatus.EGRESS_ACTIVE,
        started_at=now,
        updated_at=now,
        room_composite=req,
    )
    for output in [*req.file_outputs, *([req.file] if req.HasField("file") else [])]:
        info.file_results.add(filename=output.filepath, started_at=now)
    for stream in [*req.stream_outputs, *([req.stream] if req.HasField("stream") else [])]:
        for url in stream.urls:
            info.stream_results.add(url=url, started_at=now, status=proto_egress.StreamInfo.Status.ACTIVE)
    state.egress.items[info.egress_id] = info
    # The recorder joins as a hidden participant named after its egress.
    state.join(req.room_name, info.egress_id, kind="EGRESS", permission={"hidden": True, "can_subscribe": True})
    return info


def stop(state: State, req: proto_egress.StopEgressRequest) -> proto_egress.EgressInfo:
    info = state.egress.items.get(req.egress_id)
    if info is None:
        raise routed("not_found", "egress does not exist")
    if info.status not in RUNNING:
        status = proto_egress.EgressStatus.Name(info.status)
        raise TwirpError("failed_precondition", f"egress with status {status} cannot be stopped")
    now = time.time_ns()
    info.status = proto_egress.EgressStatus.EGRESS_ENDING
    info.updated_at = now
    answer = proto_egress.EgressInfo()
    answer.CopyFrom(info)
    # The recording then finishes: COMPLETE, and the recorder leaves the room.
    info.status = proto_egress.EgressStatus.EGRESS_COMPLETE
    info.ended_at = now
    room = state.rooms.get(info.room_name)
    if room is not None and info.egress_id in room.participants:
        state.leave(info.room_name, info.egress_id)
    return answer
