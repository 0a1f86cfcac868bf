"""Pydantic models: what the LiveKit seam returns and what the tools answer.

Output is written for a model's context: enum names, ISO 8601 UTC times, no empty fields (tools dump with
`exclude_none`), long metadata shortened with a flag saying so.

Why one module of ~700 lines: the seam's models (Room, Participant, …) are shared by every toolset, and each
toolset's answers are built from them; kept together, the output schemas (what tools/list publishes with
--output-schemas) are read and reviewed in one place. Split it by toolset when a toolset's answers outgrow it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from livekit_mcp.text import shown

AGENT_NAME_ATTRIBUTE = "lk.agent_name"
AGENT_NAME_ATTRIBUTES = (AGENT_NAME_ATTRIBUTE, "lk.agent.name")
"""Where an agent's name is found: the server sets both (v1.13.5); older servers only the first."""
AGENT_STATE_ATTRIBUTE = "lk.agent.state"
METADATA_PREVIEW = 200
"""Characters of room/participant metadata shown in lists; the full text is one get_* call away."""
METADATA_DETAIL = 4000
"""Characters of metadata shown by get_room / get_participant: enough for any sane JSON blob, bounded for a huge one."""
SHUTDOWN_METHOD = "livekit-mcp.shutdown"
"""The RPC method remove_agent(grace_seconds=N) calls on an agent to ask it to end its session itself."""
SHUTDOWN_TOPIC = "livekit-mcp.shutdown"
"""The data-message topic of the same request, sent when the RPC is not answered (README: stopping gracefully)."""


def iso(seconds: float) -> str | None:
    """A Unix time as ISO 8601 UTC (`2026-11-22T04:07:00Z`); LiveKit's 0 means unknown."""
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def preview(text: str, limit: int = METADATA_PREVIEW) -> tuple[str | None, bool | None]:
    """Metadata shortened to `limit` characters, and whether it was shortened (None when it was not)."""
    if not text:
        return None, None
    if len(text) <= limit:
        return text, None
    return text[:limit] + "…", True


def effective_kind(kind: str, agent_permission: bool) -> str:
    """The kind LiveKit gives, and AGENT for older agents (STANDARD with permission.agent set).

    The permission bit counts only for STANDARD: it can be set through UpdateParticipant, so it must never turn a
    SIP caller (or an ingress, an egress) into something policy judges otherwise.
    """
    return "AGENT" if kind == "STANDARD" and agent_permission else kind


class Model(BaseModel):
    """Every model here: built when first used (a call's answer, an output schema), not when imported; most are not
    needed by the first answers, and building them all cost ~30 ms of every start."""

    model_config = ConfigDict(defer_build=True)


# --- What the LiveKit seam returns -------------------------------------------------------------------


class Track(Model):
    sid: str
    type: str
    source: str
    name: str = ""
    muted: bool = False


class Permission(Model):
    # What a participant may do; LiveKit replaces it whole when it is updated (a comment, not a docstring: pydantic
    # would copy a docstring into update_participant's input schema, which says it already). Frozen: the seam
    # shares one instance between the participants that have the same permission.

    model_config = ConfigDict(defer_build=True, frozen=True)

    can_subscribe: bool = False
    can_publish: bool = False
    can_publish_data: bool = False
    can_publish_sources: list[Literal["CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO"]] = Field(
        default_factory=list, description="Empty: any source."
    )
    hidden: bool = False
    can_update_metadata: bool = False
    agent: bool = Field(default=False, description="Set by LiveKit for agents; older agents are known by it.")
    can_subscribe_metrics: bool = False


class Participant(Model):
    sid: str
    identity: str
    name: str = ""
    kind: str
    kind_details: list[str] = Field(default_factory=list)
    state: str
    joined_at: float = 0.0
    is_publisher: bool = False
    metadata: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    tracks: list[Track] = Field(default_factory=list)
    permission: Permission | None = None

    @property
    def is_agent(self) -> bool:
        return effective_kind(self.kind, self.permission is not None and self.permission.agent) == "AGENT"

    @property
    def agent_name(self) -> str | None:
        """The agent name it was dispatched under ("" for automatic dispatch); None for a non-agent."""
        if not self.is_agent:
            return None
        return next((self.attributes[a] for a in AGENT_NAME_ATTRIBUTES if a in self.attributes), None)

    @property
    def agent_state(self) -> str | None:
        return self.attributes.get(AGENT_STATE_ATTRIBUTE) if self.is_agent else None

    @property
    def effective_kind(self) -> str:
        return effective_kind(self.kind, self.permission is not None and self.permission.agent)


class Room(Model):
    sid: str
    name: str
    num_participants: int = 0
    num_publishers: int = 0
    creation_time: float = 0.0
    metadata: str = ""
    empty_timeout: int = 0
    departure_timeout: int = 0
    max_participants: int = 0


class Job(Model):
    id: str
    status: str = Field(description="As LiveKit's dispatch reports it, which can lag: see in_room.")
    participant_identity: str | None = None
    in_room: bool | None = Field(
        default=None, description="Whether its participant is in the room now (a job can be listed after it ended)."
    )


class Dispatch(Model):
    id: str
    agent_name: str
    room: str
    metadata: str = ""
    created_at: float = 0.0
    jobs: list[Job] = Field(default_factory=list)


# --- What the tools answer ---------------------------------------------------------------------------


class RoomSummary(Model):
    name: str
    sid: str
    participants: int
    publishers: int
    created_at: str | None = None
    metadata: str | None = None
    metadata_truncated: bool | None = None

    @classmethod
    def of(cls, room: Room) -> RoomSummary:
        metadata, truncated = preview(room.metadata)
        return cls(
            name=room.name,
            sid=room.sid,
            participants=room.num_participants,
            publishers=room.num_publishers,
            created_at=iso(room.creation_time),
            metadata=metadata,
            metadata_truncated=truncated,
        )


class RoomList(Model):
    rooms: list[RoomSummary]
    total: int = Field(description="Rooms matching the request, across all pages.")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")
    not_found: list[str] | None = Field(default=None, description="Requested names that are not rooms.")


class TrackCounts(Model):
    audio: int = 0
    video: int = 0
    muted: int = 0


class ParticipantSummary(Model):
    identity: str
    name: str | None = None
    sid: str
    kind: str
    state: str
    joined_at: str | None = None
    publisher: bool
    tracks: TrackCounts | None = None
    agent_name: str | None = None
    agent_state: str | None = None

    @classmethod
    def of(cls, p: Participant) -> ParticipantSummary:
        counts = None
        if p.tracks:
            counts = TrackCounts(
                audio=sum(t.type == "AUDIO" for t in p.tracks),
                video=sum(t.type == "VIDEO" for t in p.tracks),
                muted=sum(t.muted for t in p.tracks),
            )
        return cls(
            identity=p.identity,
            name=p.name or None,
            sid=p.sid,
            kind=p.effective_kind,
            state=p.state,
            joined_at=iso(p.joined_at),
            publisher=p.is_publisher,
            tracks=counts,
            agent_name=p.agent_name,
            agent_state=p.agent_state,
        )


class ParticipantList(Model):
    room: str
    participants: list[ParticipantSummary]
    total: int = Field(description="Participants matching the request, across all pages.")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class AgentInfo(Model):
    room: str
    identity: str
    sid: str
    agent_name: str | None = None
    state: str | None = None
    kind: str = Field(description="AGENT, or STANDARD for older agents that only set permission.agent.")
    joined_at: str | None = None

    @classmethod
    def of(cls, room: str, p: Participant) -> AgentInfo:
        return cls(
            room=room,
            identity=p.identity,
            sid=p.sid,
            agent_name=p.agent_name,
            state=p.agent_state,
            kind=p.kind,
            joined_at=iso(p.joined_at),
        )


class AgentList(Model):
    agents: list[AgentInfo]
    rooms_searched: int
    rooms_from_history: int | None = Field(
        default=None, description="Of those, answered from room history's live index (each agent confirmed)."
    )


class Leaving(Model):
    """Someone a call would make leave their room, and why."""

    identity: str
    kind: str
    why: str
    sid: str | None = None


class Confirmable(Model):
    """The outcome fields of a confirmed tool: what it did, or why it did nothing yet, as data a bot can read
    (the question to show, who would leave, the token and until when it is valid)."""

    outcome: Literal["done", "confirmation_required", "declined", "cancelled"] = Field(
        default="done", description="Anything but done: nothing was changed."
    )
    confirm_token: str | None = Field(
        default=None, description="With confirmation_required: call again with the same arguments and this token."
    )
    expires_at: str | None = None
    question: str | None = Field(default=None, description="When nothing was done: what the call would do.")
    leaving: list[Leaving] | None = Field(default=None, description="Who the call would make leave, and why.")


class RemovedParticipant(Confirmable):
    room: str
    identity: str
    sid: str
    kind: str
    name: str | None = None
    agent_name: str | None = None
    notes: list[str]


class DeletedRoom(Confirmable):
    room: str
    sid: str
    disconnected: dict[str, int] = Field(description="Participants disconnected, by kind.")
    total_disconnected: int


class TrackDetail(Model):
    sid: str
    type: str
    source: str
    name: str | None = None
    muted: bool

    @classmethod
    def of(cls, t: Track) -> TrackDetail:
        return cls(sid=t.sid, type=t.type, source=t.source, name=t.name or None, muted=t.muted)


class ParticipantDetail(Model):
    room: str
    identity: str
    name: str | None = None
    sid: str
    kind: str
    kind_details: list[str] | None = None
    state: str
    joined_at: str | None = None
    publisher: bool
    tracks: list[TrackDetail]
    permission: Permission | None = None
    attributes: dict[str, str] | None = None
    metadata: str | None = None
    metadata_truncated: bool | None = None
    agent_name: str | None = None
    agent_state: str | None = None

    @classmethod
    def of(cls, room: str, p: Participant) -> ParticipantDetail:
        metadata, truncated = preview(p.metadata, METADATA_DETAIL)
        return cls(
            room=room,
            identity=p.identity,
            name=p.name or None,
            sid=p.sid,
            kind=p.effective_kind,
            kind_details=p.kind_details or None,
            state=p.state,
            joined_at=iso(p.joined_at),
            publisher=p.is_publisher,
            tracks=[TrackDetail.of(t) for t in p.tracks],
            permission=p.permission,
            attributes=p.attributes or None,
            metadata=metadata,
            metadata_truncated=truncated,
            agent_name=p.agent_name,
            agent_state=p.agent_state,
        )


DispatchAgent = Literal["agent_present", "pending", "no_job", "agent_gone"]
JOB_LAG = 10.0
"""Seconds after a dispatch during which no agent and no job is not yet a sign of trouble: livekit-server v1.13.5
lists a dispatch's job up to ~5 s after its agent joined, and an agent joins within ~1 s when a worker is free."""
DISPATCH_AGENT_TOLD = {
    "pending": " yet (made moments ago: it may still come)",
    "no_job": " and no job: no worker registered or free for this name took it, and LiveKit does not retry it",
    "agent_gone": ": a worker took its job, but its agent left or never joined",
}


def dispatch_agent_state(d: Dispatch, present: bool, now: float) -> DispatchAgent:
    """Whether a dispatch's agent is in the room and, if not, what LiveKit's dispatch says about why."""
    if present:
        return "agent_present"
    if d.jobs:
        return "agent_gone"
    return "pending" if now - d.created_at < JOB_LAG else "no_job"


class DispatchInfo(Model):
    id: str
    agent_name: str = Field(description='"" is the default dispatch LiveKit gives every new room (automatic agents).')
    metadata: str | None = None
    created_at: str | None = None
    agents_in_room: list[str] | None = Field(
        default=None,
        description="Identities of the agents in the room now under this agent name: the sign that its job runs.",
    )
    jobs: list[Job] | None = Field(
        default=None,
        description="As LiveKit lists them; its list can be empty while the agent is in the room, or show a job "
        "running after its agent left: agents_in_room and in_room say what is true now.",
    )
    agent: DispatchAgent | None = Field(
        default=None,
        description="agent_present; pending (made moments ago); no_job (no agent and no job: no worker registered "
        "or free for this name took it, and LiveKit does not retry); agent_gone (a worker took it, its agent is not "
        "in the room).",
    )

    @classmethod
    def of(
        cls,
        d: Dispatch,
        participants: Sequence[Participant] | None = None,
        now: float | None = None,
        present: Collection[str] | None = None,
    ) -> DispatchInfo:
        """The dispatch, cross-checked with the room's participants when they are given: all of them, or at least
        its agents with `present` naming everyone (a room's census converts only its agents).

        LiveKit's own job list is not reliable (livekit-server v1.13.5: a dispatch made in a live room lists no
        job while its agent is there, and a job can stay JS_RUNNING after its agent was removed), so which
        agents run is read from the participants: agents whose agent name is this dispatch's, or who are named
        by one of its jobs."""
        if participants is None:
            return cls(
                id=d.id,
                agent_name=d.agent_name,
                metadata=preview(d.metadata)[0],
                created_at=iso(d.created_at),
                jobs=d.jobs or None,
            )
        if present is None:
            present = {p.identity for p in participants}
        named = {j.participant_identity for j in d.jobs if j.participant_identity}
        agents = [
            p.identity for p in participants if p.is_agent and (p.agent_name == d.agent_name or p.identity in named)
        ]
        jobs = [j.model_copy(update={"in_room": j.participant_identity in present}) for j in d.jobs]
        return cls(
            id=d.id,
            agent_name=d.agent_name,
            metadata=preview(d.metadata)[0],
            created_at=iso(d.created_at),
            agents_in_room=agents,
            jobs=jobs or None,
            agent=dispatch_agent_state(d, bool(agents), time.time() if now is None else now),
        )

    @property
    def line(self) -> str:
        """One line for a tool's text."""
        name = (
            f"'{shown(self.agent_name)}'" if self.agent_name else "'' (the room's default dispatch, automatic agents)"
        )
        if self.agents_in_room is None:
            where = f"{len(self.jobs or [])} job(s) listed"
        elif self.agents_in_room:
            where = f"agent(s) in the room: {', '.join(map(shown, self.agents_in_room))}"
        else:
            where = "no agent of it in the room" + DISPATCH_AGENT_TOLD.get(self.agent or "", "")
        return f"- dispatch {self.id} agent_name={name}: {where}"


class RoomDetail(Model):
    room: RoomSummary
    running_for: str | None = Field(default=None, description="How long the room has existed, e.g. 1h05m.")
    empty_timeout: int
    departure_timeout: int
    max_participants: int | None = None
    participants_by_kind: dict[str, int]
    publishers: list[str] = Field(description="Identities of those publishing tracks.")
    agents: list[AgentInfo]
    dispatches: list[DispatchInfo]
    recent_history: list[HistoryEntry] | None = Field(
        default=None, description="The room's last events from history (room_history has them all)."
    )


class CreatedRoom(Model):
    room: RoomSummary
    created: bool = Field(description="False when the room already existed (CreateRoom is get-or-create).")
    empty_timeout: int = Field(description="The room's actual settings, whatever was asked.")
    departure_timeout: int
    max_participants: int | None = None
    not_applied: dict[str, int | str] | None = Field(
        default=None,
        description="Settings given that the room does not have: LiveKit leaves an existing room as it is.",
    )


class UpdatedParticipant(Model):
    participant: ParticipantDetail
    changed: list[str]
    permission_before: Permission | None = Field(default=None, description="Only when the permission was replaced.")


class MutedTrack(Model):
    room: str
    identity: str
    track: TrackDetail


class SentData(Confirmable):
    room: str
    bytes: int
    topic: str | None = None
    destination_identities: list[str] | None = None
    reliable: bool


class DispatchList(Model):
    room: str
    dispatches: list[DispatchInfo]


class AgentArrival(Model):
    """Whether a dispatched agent came, as far as dispatch_agent waited and LiveKit tells."""

    status: Literal["joined", "not_joined", "dispatch_gone", "room_gone", "not_waited"]
    identity: str | None = None
    seconds: float | None = Field(default=None, description="After the dispatch: until it joined, or waited.")
    last_joined_at: str | None = Field(default=None, description="When history last saw this agent name join.")
    why: str | None = None


class DispatchResult(Confirmable):
    room: str
    dispatch: DispatchInfo
    arrival: AgentArrival | None = None
    notes: list[str] | None = None


# --- RPC to a participant, join tokens ---------------------------------------------------------------


class RpcFailure(Model):
    """An RPC error as LiveKit relays it: the participant's own, or LiveKit's (14xx, 15xx)."""

    code: int | None = Field(default=None, description="RPC error code; none when LiveKit itself gave up.")
    message: str
    data: str | None = None


class RpcAnswer(Model):
    """What the seam returns for PerformRpc: the participant's payload, or the RPC error."""

    payload: str | None = None
    error: RpcFailure | None = None


RpcOutcome = Literal["answered", "error", "no_answer", "confirmation_required", "declined", "cancelled"]


class RpcResult(Confirmable):
    room: str
    destination_identity: str
    method: str
    # An RPC's own outcomes besides the confirmation's (a shutdown request is confirmed): a wider set than the base's.
    outcome: RpcOutcome = "answered"  # type: ignore[assignment]
    payload: str | None = Field(default=None, description="The participant's answer.")
    error: RpcFailure | None = None


class JoinToken(Model):
    room: str
    identity: str
    url: str = Field(description="The LiveKit URL to connect to with the token.")
    token: str
    expires_at: str | None
    ttl_seconds: int
    grants: dict[str, bool]


class AgentDeparture(Model):
    identity: str
    left: Literal["by_itself", "removed_after_grace", "removed", "ended_with_dispatch"]
    asked: str = Field(description="How it was asked to leave, and what it answered.")
    seconds: float | None = Field(default=None, description="Seconds after the request that it was seen gone.")


class RemovedAgents(Confirmable):
    room: str
    removed: list[AgentInfo]
    cancelled_dispatches: list[str]
    steps: list[str]
    departures: list[AgentDeparture] | None = Field(default=None, description="With grace_seconds: how each left.")


# --- Room history (webhooks kept in the store) ---------------------------------------------------------


class HistoryEntry(Model):
    at: str | None
    event: str
    """LiveKit's webhook event name, or `changed` for a change made through this server."""
    said: str
    identity: str | None = None
    kind: str | None = None
    reason: str | None = None


class RoomSession(Model):
    """One life of a room, by its sid: from room_started to room_finished (None while it runs, or not heard)."""

    room_sid: str
    started: str | None = None
    ended: str | None = None
    events: list[HistoryEntry] = Field(default_factory=list)


class RecentRoom(Model):
    room: str
    room_sid: str
    last_event: str | None
    ended: str | None = None
    """When the session ended; None while it is live (as far as LiveKit's webhooks said)."""
    events: int


class Seconds(Model):
    """Seconds to join over a set of visits."""

    count: int
    p50: float
    p90: float
    max: float


class MissedRoom(Model):
    """A room the agent was expected in and never came to."""

    room: str
    expected_at: str | None
    dispatch_id: str | None = None
    room_ended_at: str | None = Field(default=None, description="The room ended without it.")


class AgentHealth(Model):
    """How an agent did over a period, from room history: the rooms it was expected in (dispatched through this
    server, or joined), how many it joined and how fast, how its sessions ended, and where it never came."""

    agent_name: str
    since: str | None
    expected: int
    joined: int
    never_came: int
    waiting: int = Field(description="Dispatched moments ago, no agent yet: counted neither way.")
    join_rate: float | None = Field(default=None, description="joined / (expected - waiting).")
    from_dispatch: Seconds | None = Field(default=None, description="Seconds from dispatch to join.")
    from_room_start: Seconds | None = Field(default=None, description="Seconds from the room's start to join.")
    endings: dict[str, int] | None = Field(default=None, description="Sessions by disconnect reason.")
    still_in: int = 0
    missed: list[MissedRoom] | None = None
    truncated: bool | None = Field(default=None, description="More visits than one answer reads: the latest left.")


class RoomHistory(Model):
    history: Literal["on", "off", "unavailable"]
    """on: kept, and this is what is known (possibly nothing); off: not kept here; unavailable: the store is down."""
    room: str | None = None
    sessions: list[RoomSession] | None = None
    rooms: list[RecentRoom] | None = None
    agent: AgentHealth | None = None
    next_cursor: str | None = None
    note: str | None = None


RoomDetail.model_rebuild()  # it names HistoryEntry, defined after it


# --- SIP, egress and ingress -------------------------------------------------------------------------


class SipTrunk(Model):
    """A SIP trunk as configured: its numbers and addresses, never its password."""

    id: str
    direction: Literal["inbound", "outbound"]
    name: str | None = None
    numbers: list[str] = Field(default_factory=list)
    address: str | None = Field(default=None, description="Outbound: the SIP server calls are sent to.")
    transport: str | None = None
    allowed_addresses: list[str] | None = Field(default=None, description="Inbound: only calls from these.")
    allowed_numbers: list[str] | None = Field(default=None, description="Inbound: only calls from these numbers.")
    auth_username: str | None = Field(default=None, description="Set when the trunk uses digest auth.")
    metadata: str | None = None


class SipTrunkList(Model):
    trunks: list[SipTrunk]
    inbound: int
    outbound: int


class SipDispatchRule(Model):
    """Which inbound calls a rule takes, and the room (and agents) it sends them to."""

    id: str
    name: str | None = None
    kind: Literal["direct", "individual", "callee", "unknown"]
    room: str | None = Field(default=None, description="direct: every call goes to this room.")
    room_prefix: str | None = Field(default=None, description="individual, callee: rooms named from this prefix.")
    pin_required: bool | None = None
    trunk_ids: list[str] = Field(default_factory=list, description="Empty: calls on any inbound trunk.")
    numbers: list[str] = Field(default_factory=list, description="Called numbers it matches; empty: any.")
    agents: list[str] = Field(default_factory=list, description="Agents dispatched into the call's room.")
    hide_phone_number: bool | None = None
    metadata: str | None = None


class SipDispatchRuleList(Model):
    rules: list[SipDispatchRule]


class SipCall(Confirmable):
    """A phone call dialled into a room: the SIP participant LiveKit created for it."""

    room: str
    sip_trunk_id: str
    sip_call_to: str
    participant_identity: str | None = None
    participant_sid: str | None = None
    sip_call_id: str | None = None


class SipTransfer(Confirmable):
    room: str
    identity: str
    transfer_to: str
    phone_number: str | None = Field(default=None, description="The caller's number, as LiveKit shows it.")
    sip_call_id: str | None = None
    status: str | None = Field(
        default=None,
        description="successful or ongoing, as livekit-server 1.13.6+ reports it (a failed transfer is an error); "
        "absent when the server reports none (1.13.5 and earlier answer once the transfer is done).",
    )


class Egress(Model):
    """A recording or stream of a room (an egress), without any storage credential or stream key."""

    egress_id: str
    room: str
    kind: str = Field(description="room_composite, participant, track_composite, track, web.")
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    outputs: list[str] = Field(default_factory=list, description="Files and streams (hosts only).")
    error: str | None = None


class EgressList(Model):
    egress: list[Egress]


class EgressResult(Confirmable):
    egress: Egress


class Ingress(Model):
    """An ingress: where a stream is pushed (or pulled from) to publish into a room."""

    ingress_id: str
    name: str | None = None
    input_type: str
    room: str
    participant_identity: str
    status: str
    url: str | None = Field(default=None, description="RTMP/WHIP: where to push; URL input: what is pulled.")
    stream_key: str | None = Field(default=None, description="In lists only its last 4 characters.")
    publishing: bool | None = None
    error: str | None = None


class IngressList(Model):
    ingress: list[Ingress]


class IngressResult(Confirmable):
    ingress: Ingress


class ProjectInfo(Model):
    name: str = Field(description='As `lk` names it; "" for the project of LIVEKIT_URL (pass no project for it).')
    url: str
    default: bool = False
    read_only: bool = False


class ProjectList(Model):
    projects: list[ProjectInfo]
