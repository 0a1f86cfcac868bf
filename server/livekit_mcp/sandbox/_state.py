"""Rooms, participants and agent dispatches, and the rules livekit-server 1.13.5 applies to them.

Every method is synchronous: the sandbox runs on one asyncio loop, so a mutation can never be interleaved
with another request. Lookups are dicts keyed by room name and identity, so a call costs what its answer
costs, whatever the size of the rest of the state.

Why one module of ~600 lines: it is livekit-server's room manager in one piece (rooms, participants, dispatches
and the rules that tie them: a participant's leaving ends its dispatch's job, a room's deletion its participants);
the services beside it (SIP, egress, ingress, webhooks) are modules of their own.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import agent as proto_agent
from livekit.protocol import agent_dispatch as proto_dispatch
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

from ._egress import EgressStore
from ._errors import SandboxError
from ._faults import Fault, Faults
from ._ids import guid
from ._ingress import IngressStore
from ._limits import MAX_METADATA, MAX_NAME, check_attributes, check_metadata
from ._services import METHODS
from ._sip import SipStore
from ._twirp import ROUTED, TwirpError, no_response, routed, to_dict
from ._versions import V1_13_5, LiveKitVersion
from ._webhooks import Webhooks

ParticipantInfo = proto_models.ParticipantInfo
AgentDispatch = proto_dispatch.AgentDispatch

DATA_KEPT = 100
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
AGENT_NAME_ATTRIBUTE = "lk.agent_name"
AGENT_STATE_ATTRIBUTE = "lk.agent.state"
AGENTS_NAME_ATTRIBUTE = "lk.agent.name"  # livekit-agents' own copy of the agent name
RPC_MAX_PAYLOAD = 15 * 1024  # bytes of an RPC payload (livekit/protocol utils.DataChannelRpcMaxPayloadBytes)

_RUNNING = proto_agent.JobStatus.JS_RUNNING
_Reason = proto_models.DisconnectReason
M = TypeVar("M", bound=Message)


def _copy(message: M) -> M:
    # Callers get copies: the stored messages are the state and must only change through these methods.
    out = type(message)()
    out.CopyFrom(message)
    return out


def _no_participant() -> TwirpError:
    return routed("not_found", "participant does not exist")


def _no_room() -> TwirpError:
    return routed("not_found", "requested room does not exist")


def _enum(enum: Any, name: str, what: str) -> str:
    """`name` as the enum value name protobuf accepts (case-insensitive), or a 400 listing the names."""
    try:
        enum.Value(name.upper())
        return name.upper()
    except (ValueError, AttributeError):  # AttributeError: not a string
        raise SandboxError(400, f"unknown {what} {name!r}; one of {', '.join(enum.keys())}") from None


def _parse(data: Mapping[str, Any], message: M, what: str) -> M:
    if not isinstance(data, Mapping):
        raise SandboxError(400, f"a {what} must be a JSON object")
    try:
        return json_format.ParseDict(dict(data), message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise SandboxError(400, f"invalid {what}: {exc}") from None


@dataclass
class Room:
    info: proto_models.Room
    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, AgentDispatch] = field(default_factory=dict)
    jobs: dict[str, proto_agent.Job] = field(default_factory=dict)
    """The agent jobs of the room's dispatches, by job id. livekit-server does not copy them into the
    dispatches ListDispatch answers (their `state.jobs` stays empty): only the admin state shows them."""
    data: deque[proto_room.SendDataRequest] = field(default_factory=lambda: deque(maxlen=DATA_KEPT))
    """The latest SendData requests delivered to the room: what the admin state shows as `data`."""
    published: set[str] = field(default_factory=set)
    """Identities whose client has published (livekit-server: its publisher connection is established)."""

    def count(self, p: ParticipantInfo, sign: int) -> None:
        """Keep num_participants / num_publishers right without rescanning a large room."""
        # Hidden participants count, agents and egress do not: livekit-server 1.13.5 leaves its "dependent"
        # participants out of num_participants (docs/livekit-behavior.md).
        if p.kind not in (ParticipantInfo.Kind.AGENT, ParticipantInfo.Kind.EGRESS):
            self.info.num_participants += sign
        if p.is_publisher:
            self.info.num_publishers += sign


class State:
    """The sandbox's LiveKit: the Twirp methods (taking and returning protobuf messages) and the
    sandbox-only admin operations (join, join_agent, leave, faults, populate, reset, snapshot)."""

    def __init__(self, webhooks: Webhooks | None = None, version: LiveKitVersion = V1_13_5) -> None:
        self.rooms: dict[str, Room] = {}
        # The livekit-server release answered as (_versions.py).
        self.version = version
        # What a transfer's SIP service reports on 1.13.11 (tests set a failure; reset() restores this); 1.13.5
        # answers Empty.
        self.transfer_outcome = _transfer_done()
        # Where the events of these changes are sent, as livekit-server sends its webhooks (none by default).
        self.webhooks = webhooks or Webhooks("", "")
        self.faults = Faults(frozenset(METHODS))
        # Agent names a simulated worker serves: a dispatch for one of them gets an agent at once.
        self.workers: set[str] = set()
        # Twirp requests being served, and the most at once since the last reset, per "Service/Method": how
        # tests see that a client bounds its concurrency.
        self.in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        # The stores of the SIP, egress and ingress services (_sip.py, _egress.py, _ingress.py).
        self.sip: SipStore = SipStore()
        self.egress: EgressStore = EgressStore()
        self.ingress: IngressStore = IngressStore()

    # -- RoomService ---------------------------------------------------------------------------------

    def create_room(self, req: proto_room.CreateRoomRequest) -> proto_models.Room:
        if len(req.name) > MAX_NAME:
            # Raised by the room allocator behind the routing (pkg/service/roomallocator.go), unlike the size
            # checks of RoomService itself: prefixed, and worded differently (the differential test found it).
            raise routed("invalid_argument", f"room name length exceeds limits: max length {MAX_NAME}")
        check_metadata(req.metadata)
        live = self.rooms.get(req.name)
        if live is not None:
            # Get-or-create: a live room is returned as it is, the request's settings ignored.
            return _copy(live.info)
        return _copy(self._new_room(req.name, req.agents, req).info)

    def list_rooms(self, req: proto_room.ListRoomsRequest) -> proto_room.ListRoomsResponse:
        if not req.names:
            return proto_room.ListRoomsResponse(rooms=[r.info for r in self.rooms.values()])
        found = (self.rooms.get(name) for name in dict.fromkeys(req.names))
        return proto_room.ListRoomsResponse(rooms=[r.info for r in found if r is not None])

    def delete_room(self, req: proto_room.DeleteRoomRequest) -> proto_room.DeleteRoomResponse:
        # Everyone is disconnected with the room; its dispatches go with it.
        room = self.rooms.get(req.room)
        if room is None:
            raise _no_room()
        for identity in list(room.participants):
            self._drop(room, identity, _Reason.ROOM_DELETED)
        del self.rooms[req.room]
        self.webhooks.emit(
            "room_finished", room.info, end_reason="ROOM_END_API_DELETE" if self.version.room_end_reason else ""
        )
        return proto_room.DeleteRoomResponse()

    def list_participants(self, req: proto_room.ListParticipantsRequest) -> proto_room.ListParticipantsResponse:
        room = self.rooms.get(req.room)
        return proto_room.ListParticipantsResponse(participants=room.participants.values() if room else ())

    def get_participant(self, req: proto_room.RoomParticipantIdentity) -> ParticipantInfo:
        return _copy(self._find(req.room, req.identity, _no_participant)[1])

    def remove_participant(self, req: proto_room.RoomParticipantIdentity) -> proto_room.RemoveParticipantResponse:
        room, _ = self._find(req.room, req.identity, _no_participant)
        self._drop(room, req.identity, _Reason.PARTICIPANT_REMOVED)
        return proto_room.RemoveParticipantResponse()

    def mute_published_track(self, req: proto_room.MuteRoomTrackRequest) -> proto_room.MuteRoomTrackResponse:
        # The participant's node answers (so a missing one is no answer), then refuses a remote unmute.
        _, p = self._find(req.room, req.identity, no_response)
        if not req.muted:
            raise routed("failed_precondition", "remote unmute not enabled")
        for track in p.tracks:
            if track.sid == req.track_sid:
                track.muted = req.muted
                return proto_room.MuteRoomTrackResponse(track=track)
        return proto_room.MuteRoomTrackResponse()

    def update_participant(self, req: proto_room.UpdateParticipantRequest) -> ParticipantInfo:
        room, p = self._find(req.room, req.identity, _no_participant)
        if req.metadata:
            p.metadata = req.metadata
        if req.name:
            p.name = req.name
        for key, value in req.attributes.items():
            if value:
                p.attributes[key] = value
            elif key in p.attributes:
                del p.attributes[key]
        if req.HasField("permission") and p.permission != req.permission:
            self._set_permission(room, p, req.permission)
        return _copy(p)

    def _set_permission(self, room: Room, p: ParticipantInfo, permission: proto_models.ParticipantPermission) -> None:
        """As livekit-server 1.13.5's SetPermission (pkg/rtc/participant.go:807-867): the tracks of a source no
        longer allowed are unpublished at once (the reply already lacks them); is_publisher is can_publish once the
        client has published (its publisher connection stays: tracks do not come back when publishing is granted
        again). Found by the differential test (tests/sandbox/test_differential.py)."""
        room.count(p, -1)
        established = p.is_publisher or bool(p.tracks) or p.identity in room.published
        if established:
            room.published.add(p.identity)
        p.permission.CopyFrom(permission)
        allowed = {proto_models.TrackSource.Name(s) for s in permission.can_publish_sources}
        kept = [t for t in p.tracks if permission.can_publish and (not allowed or _source(t) in allowed)]
        for track in p.tracks:
            if track not in kept and self.webhooks.active:
                self.webhooks.emit("track_unpublished", room.info, participant=p, track=track)
        del p.tracks[:]
        p.tracks.extend(kept)
        p.is_publisher = permission.can_publish and established
        room.count(p, +1)

    def update_subscriptions(
        self, req: proto_room.UpdateSubscriptionsRequest
    ) -> proto_room.UpdateSubscriptionsResponse:
        self._find(req.room, req.identity, no_response)
        return proto_room.UpdateSubscriptionsResponse()

    def send_data(self, req: proto_room.SendDataRequest) -> proto_room.SendDataResponse:
        if len(req.nonce) not in (0, 16):
            raise TwirpError(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes"
            )
        self._live_room(req.room).data.append(_copy(req))
        return proto_room.SendDataResponse()

    def move_participant(
        self, req: proto_room.MoveParticipantRequest | proto_room.ForwardParticipantRequest
    ) -> Message:
        """MoveParticipant and ForwardParticipant as open-source livekit-server 1.13.5 answers them (LiveKit Cloud
        implements them): the same room is invalid; the call is routed to the participant, whose node answers
        "not implemented" (pkg/service/roomservice.go:362-396, pkg/service/roommanager.go:900-906)."""
        if req.room == req.destination_room:
            raise TwirpError("invalid_argument", "destination room cannot be the same as source room")
        self._find(req.room, req.identity, no_response)
        raise routed("unknown", "not implemented")

    def perform_rpc(self, req: proto_room.PerformRpcRequest) -> proto_room.PerformRpcResponse:
        # As livekit-server 1.13.5 does, in its order: the identity checked in RoomService, then routed to the
        # participant (nobody claims an absent one), whose node checks the size and sends the request over the
        # data channel. A sandbox participant has no client to acknowledge it: livekit-server's answer to a client
        # that does not acknowledge within 2 s (7 s on 1.13.11: `version.rpc_ack_s`) is 1501 (the sandbox answers
        # after `no_response_s`).
        if not req.destination_identity:
            raise routed("invalid_argument", "destination identity is required")
        self._find(req.room, req.destination_identity, no_response)
        if len(req.payload.encode()) > RPC_MAX_PAYLOAD:
            raise routed("invalid_argument", "RpcError 1402: Request payload too large")
        raise TwirpError("canceled", ROUTED + "RpcError 1501: Connection timeout", unanswered=True)

    def update_room_metadata(self, req: proto_room.UpdateRoomMetadataRequest) -> proto_models.Room:
        room = self.rooms.get(req.room)
        if room is None:
            raise _no_room()
        room.info.metadata = req.metadata
        return _copy(room.info)

    # -- AgentDispatchService ------------------------------------------------------------------------

    def create_dispatch(self, req: proto_dispatch.CreateAgentDispatchRequest) -> AgentDispatch:
        if len(req.metadata.encode()) > MAX_METADATA:
            # The dispatch service's own check, behind the routing: prefixed, without the limit (the differential
            # test found it; docs/livekit-behavior.md section 5).
            raise routed("invalid_argument", "metadata size exceeds limits")
        check_attributes(req.attributes)
        room = self.rooms.get(req.room) or self._new_room(req.room, ())
        spec = proto_dispatch.RoomAgentDispatch(
            agent_name=req.agent_name,
            metadata=req.metadata,
            restart_policy=req.restart_policy,
            deployment=req.deployment,
            attributes=req.attributes,
        )
        return _copy(self._dispatch(room, spec))

    def list_dispatch(self, req: proto_dispatch.ListAgentDispatchRequest) -> proto_dispatch.ListAgentDispatchResponse:
        room = self._live_room(req.room)
        if req.dispatch_id:
            found = room.dispatches.get(req.dispatch_id)
            return proto_dispatch.ListAgentDispatchResponse(agent_dispatches=[found] if found else [])
        return proto_dispatch.ListAgentDispatchResponse(agent_dispatches=room.dispatches.values())

    def delete_dispatch(self, req: proto_dispatch.DeleteAgentDispatchRequest) -> AgentDispatch:
        room = self._live_room(req.room)
        dispatch = room.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise routed("not_found", "dispatch ID not found")
        now = time.time_ns()
        for job in room.jobs.values():
            if job.dispatch_id == dispatch.id and job.state.status == _RUNNING:
                _end(job, now, proto_agent.JobStateReason.JSR_DISPATCH_DELETED)
                # A terminated job's agent leaves the room (on livekit-server, moments later).
                if job.state.participant_identity in room.participants:
                    self._drop(room, job.state.participant_identity, _Reason.CLIENT_INITIATED)
        return dispatch  # as it stood: livekit-server sets no deleted_at in its answer

    # -- sandbox-only admin operations ---------------------------------------------------------------

    def join(
        self,
        room: str,
        identity: str,
        *,
        kind: str = "STANDARD",
        name: str = "",
        kind_details: Sequence[str] = (),
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        permission: Mapping[str, Any] | None = None,
        tracks: Sequence[Mapping[str, Any]] | None = None,
    ) -> ParticipantInfo:
        """A participant joins `room` (created if missing), as a client with a join token would.

        An identity already in the room is replaced by a new participant with a new sid, as on a rejoin.
        """
        if not identity:
            raise SandboxError(400, "identity must not be empty")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in (attributes or {}).items()):
            raise SandboxError(400, "attributes must map strings to strings")
        now_ms = int(time.time() * 1000)
        p = ParticipantInfo(
            sid=guid("PA_"),
            identity=identity,
            name=name,
            state=ParticipantInfo.State.ACTIVE,
            kind=_enum(ParticipantInfo.Kind, kind, "kind"),
            kind_details=[_enum(ParticipantInfo.KindDetail, d, "kind_detail") for d in kind_details],
            metadata=metadata,
            attributes=attributes or {},
            permission=_parse(permission, proto_models.ParticipantPermission(), "permission")
            if permission is not None
            else proto_models.ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True),
            tracks=[_track(t) for t in tracks or ()],
            joined_at=now_ms // 1000,
            joined_at_ms=now_ms,
        )
        p.is_publisher = len(p.tracks) > 0
        target = self._room_or_create(room)
        if identity in target.participants:
            self._drop(target, identity, _Reason.DUPLICATE_IDENTITY)
        elif target.info.max_participants and target.info.num_participants >= target.info.max_participants:
            raise SandboxError(409, f"room {room!r} is full ({target.info.max_participants} participants)")
        target.participants[identity] = p
        target.count(p, +1)
        if self.webhooks.active:
            # A client joins, then publishes: livekit-server's participant_joined shows no tracks yet.
            arrived = _copy(p)
            arrived.ClearField("tracks")
            arrived.is_publisher = False
            self.webhooks.emit("participant_joined", target.info, participant=arrived)
        for track in p.tracks:
            self.webhooks.emit("track_published", target.info, participant=p, track=track)
        return _copy(p)

    def join_agent(
        self,
        room: str,
        agent_name: str,
        *,
        dispatch_id: str | None = None,
        identity: str | None = None,
        state: str = "listening",
        tracks: Sequence[Mapping[str, Any]] | None = None,
    ) -> ParticipantInfo:
        """An agent worker takes a job for a dispatch of `agent_name` (created if none) and joins."""
        target = self._room_or_create(room)
        if dispatch_id is not None:
            dispatch = target.dispatches.get(dispatch_id)
            if dispatch is None or dispatch.agent_name != agent_name:
                raise SandboxError(404, f"room {room!r} has no dispatch {dispatch_id!r} for agent {agent_name!r}")
        else:
            dispatch = next((d for d in target.dispatches.values() if d.agent_name == agent_name), None)
            if dispatch is None:
                dispatch = self._dispatch(target, proto_dispatch.RoomAgentDispatch(agent_name=agent_name), launch=False)
        return self._start_job(target, dispatch, identity, state, tracks)

    def leave(self, room: str, identity: str) -> None:
        """A participant disconnects on its own; an agent's job ends."""
        target = self.rooms.get(room)
        if target is None or identity not in target.participants:
            raise SandboxError(404, f"no participant {identity!r} in room {room!r}")
        self._drop(target, identity, _Reason.CLIENT_INITIATED)

    def fault(
        self,
        method: str,
        *,
        latency_ms: int = 0,
        error: tuple[str, str] | None = None,
        drop: bool = False,
        malformed: bool = False,
        times: int | None = None,
    ) -> Fault:
        """Inject a fault into calls of `method` ("Service/Method" or "*"); see `Faults`."""
        return self.faults.add(method, latency_ms=latency_ms, error=error, drop=drop, malformed=malformed, times=times)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_workers(self, agent_names: Iterable[str]) -> None:
        """Agent names a simulated worker serves: their dispatches get an agent at once."""
        self.workers = set(agent_names)

    @contextmanager
    def serving(self, method: str) -> Iterator[None]:
        """Count a request of `method` ("Service/Method"; other paths are not counted) while it is served."""
        if method not in METHODS:
            yield
            return
        self.in_flight[method] += 1
        self.peak_in_flight[method] = max(self.peak_in_flight[method], self.in_flight[method])
        try:
            yield
        finally:
            self.in_flight[method] -= 1

    def reset(self, seed: bool = True) -> None:
        """Forget every room, fault, worker and peak of requests in flight; then load the demo data if `seed`."""
        self.rooms.clear()
        self.faults.clear()
        self.workers.clear()
        self.sip.clear()
        self.egress.clear()
        self.ingress.clear()
        self.transfer_outcome = _transfer_done()
        self.peak_in_flight = self.in_flight.copy()
        if seed:
            from ._seed import seed_demo  # the demo data is built through this class's own methods

            seed_demo(self)

    def populate(
        self, *, room: str | None = None, participants: int = 0, rooms: int = 0, prefix: str = "room-"
    ) -> dict[str, int]:
        """Bulk data for scale tests: `rooms` rooms named `<prefix><n>`, and/or `participants` STANDARD
        participants `participant-<n>` in `room` (default "crowd")."""
        if participants < 0 or rooms < 0:
            raise SandboxError(400, "participants and rooms must be >= 0")
        width = len(str(max(rooms, 1) - 1))
        for n in range(rooms):
            self._room_or_create(f"{prefix}{n:0{width}d}")
        target = room or "crowd"
        width = len(str(max(participants, 1) - 1))
        for n in range(participants):
            self.join(target, f"participant-{n:0{width}d}")
        return {"rooms": rooms, "participants": participants}

    def snapshot(self) -> dict[str, Any]:
        """Every room with its participants and dispatches, the SIP, egress and ingress stores, as protojson (for
        tests to inspect)."""
        return {
            "rooms": [
                {
                    **to_dict(r.info),
                    "participants": [to_dict(p) for p in r.participants.values()],
                    "dispatches": [to_dict(d) for d in r.dispatches.values()],
                    "jobs": [to_dict(j) for j in r.jobs.values()],
                    "data": [to_dict(d) for d in r.data],
                }
                for r in self.rooms.values()
            ],
            "sip": {
                "trunks": [to_dict(t) for t in [*self.sip.inbound.values(), *self.sip.outbound.values()]],
                "rules": [to_dict(r) for r in self.sip.rules.values()],
            },
            "egress": [to_dict(e) for e in self.egress.items.values()],
            "ingress": [to_dict(i) for i in self.ingress.items.values()],
            "workers": sorted(self.workers),
            "faults": {method: asdict(fault) for method, fault in self.faults.active().items()},
            "peak_in_flight": {method: n for method, n in self.peak_in_flight.items() if n},
        }

    # -- internals -----------------------------------------------------------------------------------

    def _find(self, room_name: str, identity: str, missing: Callable[[], TwirpError]) -> tuple[Room, ParticipantInfo]:
        room = self.rooms.get(room_name)
        p = room.participants.get(identity) if room else None
        if room is None or p is None:
            raise missing()
        return room, p

    def _live_room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise no_response()
        return room

    def _room_or_create(self, name: str) -> Room:
        return self.rooms.get(name) or self._new_room(name, ())

    def _new_room(
        self,
        name: str,
        agents: Sequence[proto_dispatch.RoomAgentDispatch],
        settings: proto_room.CreateRoomRequest | None = None,
    ) -> Room:
        """A new room, with the settings of a CreateRoom (unset ones at LiveKit's defaults), told as room_started."""
        asked = settings or proto_room.CreateRoomRequest()
        now_ms = int(time.time() * 1000)
        room = Room(
            proto_models.Room(
                sid=guid("RM_"),
                name=name,
                empty_timeout=asked.empty_timeout or DEFAULT_EMPTY_TIMEOUT,
                departure_timeout=asked.departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
                max_participants=asked.max_participants,
                metadata=asked.metadata,
                creation_time=now_ms // 1000,
                creation_time_ms=now_ms,
            )
        )
        self.rooms[name] = room
        self.webhooks.emit("room_started", room.info)
        # Without explicit agents a new room gets the default dispatch (empty agent name).
        for spec in agents or [proto_dispatch.RoomAgentDispatch()]:
            self._dispatch(room, spec)
        return room

    def _dispatch(self, room: Room, spec: proto_dispatch.RoomAgentDispatch, *, launch: bool = True) -> AgentDispatch:
        dispatch = AgentDispatch(
            id=guid("AD_"),
            agent_name=spec.agent_name,
            room=room.info.name,
            metadata=spec.metadata,
            restart_policy=spec.restart_policy,
            deployment=spec.deployment,
            attributes=spec.attributes,
            state=proto_dispatch.AgentDispatchState(created_at=time.time_ns()),
        )
        room.dispatches[dispatch.id] = dispatch
        if launch and spec.agent_name in self.workers:
            self._start_job(room, dispatch, None, "listening", None)
        return dispatch

    def _start_job(
        self,
        room: Room,
        dispatch: AgentDispatch,
        identity: str | None,
        state: str,
        tracks: Sequence[Mapping[str, Any]] | None,
    ) -> ParticipantInfo:
        job_id = guid("AJ_")
        identity = identity or f"agent-{job_id}"
        p = self.join(
            room.info.name,
            identity,
            kind="AGENT",
            # lk.agent_name is set by the server; lk.agent.name and lk.agent.state by livekit-agents.
            attributes={
                AGENT_NAME_ATTRIBUTE: dispatch.agent_name,
                AGENTS_NAME_ATTRIBUTE: dispatch.agent_name,
                AGENT_STATE_ATTRIBUTE: state,
            },
            permission={"can_subscribe": True, "can_publish": True, "can_publish_data": True, "agent": True},
            tracks=tracks,
        )
        now = time.time_ns()
        room.jobs[job_id] = proto_agent.Job(
            id=job_id,
            dispatch_id=dispatch.id,
            type=proto_agent.JobType.JT_ROOM,
            room=proto_models.Room(sid=room.info.sid, name=room.info.name),
            agent_name=dispatch.agent_name,
            metadata=dispatch.metadata,
            state=proto_agent.JobState(
                status=_RUNNING,
                started_at=now,
                updated_at=now,
                participant_identity=identity,
                worker_id=guid("AW_"),
            ),
        )
        return p

    def _drop(self, room: Room, identity: str, reason: proto_models.DisconnectReason) -> None:
        """Disconnect a participant; if it ran an agent job, the job ends (the dispatch stays listed)."""
        p = room.participants.pop(identity)
        room.count(p, -1)
        if self.webhooks.active:
            for track in p.tracks:
                self.webhooks.emit("track_unpublished", room.info, participant=p, track=track)
            gone = _copy(p)
            gone.ClearField("tracks")  # unpublished just before (is_publisher stays, as on livekit-server)
            gone.state, gone.disconnect_reason = ParticipantInfo.State.DISCONNECTED, reason
            self.webhooks.emit("participant_left", room.info, participant=gone)
        if p.kind != ParticipantInfo.Kind.AGENT and not p.permission.agent:
            return
        now = time.time_ns()
        for job in room.jobs.values():
            if job.state.participant_identity == identity and job.state.status == _RUNNING:
                _end(job, now, proto_agent.JobStateReason.JSR_UNSPECIFIED)


def _end(job: proto_agent.Job, now: int, reason: proto_agent.JobStateReason) -> None:
    job.state.status = proto_agent.JobStatus.JS_SUCCESS
    job.state.ended_at = now
    job.state.updated_at = now
    job.state.reason = reason


_TRACK_DEFAULTS: dict[proto_models.TrackType, tuple[proto_models.TrackSource, str]] = {
    proto_models.TrackType.AUDIO: (proto_models.TrackSource.MICROPHONE, "audio/opus"),
    proto_models.TrackType.VIDEO: (proto_models.TrackSource.CAMERA, "video/VP8"),
}


def _transfer_done() -> proto_sip.TransferSIPParticipantResponse:
    return proto_sip.TransferSIPParticipantResponse(
        status=proto_sip.STS_TRANSFER_SUCCESSFUL, reason=proto_sip.STR_COMPLETED
    )


def _source(track: proto_models.TrackInfo) -> str:
    return proto_models.TrackSource.Name(track.source)


def _track(data: Mapping[str, Any]) -> proto_models.TrackInfo:
    track = _parse(data, proto_models.TrackInfo(), "track")
    if track.type not in _TRACK_DEFAULTS:
        raise SandboxError(400, "a track's type must be AUDIO or VIDEO")
    source, mime = _TRACK_DEFAULTS[track.type]
    track.sid = guid("TR_")
    if "source" not in data:
        track.source = source
    track.mime_type = track.mime_type or mime
    if track.type == proto_models.TrackType.VIDEO and not track.width:
        track.width, track.height = 1280, 720
    return track
