"""The ingress service (livekit.Ingress) as livekit-server 1.13.5 answers it: RTMP and WHIP ingress are kept in
its own store (no ingress service needed to create, list or delete them); a URL ingress is started by a connected
ingress service, which the sandbox plays (the pull itself never runs: it stays inactive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livekit.protocol import ingress as proto_ingress

from ._ids import guid
from ._twirp import TwirpError, routed

if TYPE_CHECKING:
    from ._state import State

INPUT = proto_ingress.IngressInput


@dataclass
class IngressStore:
    items: dict[str, proto_ingress.IngressInfo] = field(default_factory=dict)

    def clear(self) -> None:
        self.items.clear()

    def list(self, req: proto_ingress.ListIngressRequest) -> proto_ingress.ListIngressResponse:
        if req.ingress_id:
            return proto_ingress.ListIngressResponse(items=[self._find(req.ingress_id)])
        items = [i for i in self.items.values() if not req.room_name or i.room_name == req.room_name]
        return proto_ingress.ListIngressResponse(items=items)

    def delete(self, req: proto_ingress.DeleteIngressRequest) -> proto_ingress.IngressInfo:
        info = self._find(req.ingress_id)
        del self.items[req.ingress_id]
        info.state.status = proto_ingress.IngressState.Status.ENDPOINT_INACTIVE
        return info

    def _find(self, ingress_id: str) -> proto_ingress.IngressInfo:
        info = self.items.get(ingress_id)
        if info is None:
            raise routed("not_found", "ingress does not exist")
        return info


def _invalid(reason: str) -> TwirpError:
    return routed("invalid_argument", f"invalid ingress: {reason}")


def create(state: State, req: proto_ingress.CreateIngressRequest) -> proto_ingress.IngressInfo:
    if req.input_type not in (INPUT.RTMP_INPUT, INPUT.WHIP_INPUT, INPUT.URL_INPUT):
        raise TwirpError("invalid_argument", "invalid ingress type")
    # livekit-server answers its ingress.rtmp_base_url / whip_base_url, unset in a --dev configuration.
    url = req.url if req.input_type == INPUT.URL_INPUT else ""
    if req.input_type == INPUT.URL_INPUT:
        if not req.url:
            raise _invalid("missing URL parameter")
        if not req.url.lower().startswith(("http://", "https://", "srt://")):
            raise _invalid(f"invalid url scheme {req.url.partition(':')[0]}")
        if not req.room_name:
            raise _invalid("no room name")
    if not req.participant_identity:
        raise _invalid("no participant identity")
    info = proto_ingress.IngressInfo(
        ingress_id=guid("IN_"),
        name=req.name,
        stream_key="" if req.input_type == INPUT.URL_INPUT else guid(""),
        url=url,
        input_type=req.input_type,
        room_name=req.room_name,
        participant_identity=req.participant_identity,
        participant_name=req.participant_name,
        participant_metadata=req.participant_metadata,
        reusable=req.input_type != INPUT.URL_INPUT,
        state=proto_ingress.IngressState(),
    )
    if req.HasField("enabled"):
        info.enabled = req.enabled
    # livekit-server's defaults: WHIP is not transcoded, RTMP and URL are.
    transcoding = req.enable_transcoding if req.HasField("enable_transcoding") else req.input_type != INPUT.WHIP_INPUT
    info.enable_transcoding = transcoding
    info.bypass_transcoding = not transcoding
    state.ingress.items[info.ingress_id] = info
    return info
