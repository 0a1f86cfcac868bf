"""Shared test helpers: the target server, raw replies, tokens, unique names, participants on either backend."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import api
from livekit.protocol.agent_dispatch import AgentDispatch
from livekit.protocol.models import ParticipantInfo

from livekit_mcp.sandbox import Sandbox
from realkit.participants import RealPeople
from realkit.processes import until

# Long enough that PyJWT does not warn; the dev default ("secret") has its own test.
KEY = "contract-key"
SECRET = "contract-secret-0123456789abcdef0123456789"
# A WebRTC join, a track's publication or an agent's arrival, on a loaded two-core machine.
JOIN_SECONDS = 20


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str
    api_secret: str
    sandbox: Sandbox | None  # None: the real livekit-server

    @property
    def real(self) -> bool:
        return self.sandbox is None


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def token(target: Target, grants: api.VideoGrants | None = None, *, secret: str | None = None) -> str:
    return (
        api.AccessToken(target.api_key, secret or target.api_secret).with_grants(grants or api.VideoGrants()).to_jwt()
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def code_of(call: Awaitable[object]) -> tuple[str, str, int]:
    """The (code, message, status) of the ServerError that awaiting `call` raises."""
    with pytest.raises(api.TwirpError) as caught:
        await call
    return caught.value.code, caught.value.message, caught.value.status


# A call routed to a room or participant that is not live: nobody answers it (after ~3 s on the real server).
NO_RESPONSE = ("unavailable", "twirp error unknown: no response from servers", 503)


async def perform_rpc(lk: api.LiveKitAPI, request: api.PerformRpcRequest) -> api.PerformRpcResponse:
    """PerformRpc as our seam sends it (livekit-api has no wrapper for it)."""
    rooms = lk.room
    auth = rooms._auth_header(api.VideoGrants(room_admin=True, room=request.room))
    return await rooms._client.request("RoomService", "PerformRpc", request, auth, api.PerformRpcResponse)


def rpc(room: str, identity: str, payload: str = "hi") -> api.PerformRpcRequest:
    return api.PerformRpcRequest(
        room=room, destination_identity=identity, method="m", payload=payload, response_timeout_ms=2000
    )


# -- participants and agents on either backend ---------------------------------------------------------

MICROPHONE = {"type": "AUDIO", "source": "MICROPHONE", "name": "microphone"}  # as RealPeople publishes it


@dataclass(frozen=True)
class Joining:
    """One participant's join, as `Crowd.join` was asked for it: what each backend's `_join` carries out."""

    room: str
    identity: str
    name: str
    kind: str
    metadata: str
    attributes: dict[str, str]
    audio: bool
    agent: bool
    hidden: bool


class Crowd:
    """Participants and agents joining a room, on the sandbox (admin API) or on the real server (WebRTC
    participants and `livekit-agents` workers). Each step returns once the server shows its effect:
    on the real server joins, tracks and agents appear asynchronously."""

    # livekit-server 1.13.5 drops a dispatch for good when it finds its worker unavailable for a moment
    # (its log: "failed to send job request ... no servers available"), as just after the worker's
    # previous job ended; the real crowd then dispatches once more. The sandbox never drops one.
    DISPATCH_ATTEMPTS = 1

    def __init__(self, lk: api.LiveKitAPI) -> None:
        self.lk = lk

    async def join(
        self,
        room: str,
        identity: str,
        *,
        name: str = "",
        kind: str = "STANDARD",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
        audio: bool = False,
        agent: bool = False,
        hidden: bool = False,
    ) -> ParticipantInfo:
        """`identity` joins `room` (created if missing); with `audio` it publishes a microphone track.
        Returns the participant as GetParticipant shows it once it is active (with its track)."""
        joining = Joining(room, identity, name, kind, metadata, attributes or {}, audio, agent, hidden)
        await self._join(joining)
        return await self.shown(room, identity, tracks=1 if audio else 0)

    async def shown(self, room: str, identity: str, *, tracks: int = 0) -> ParticipantInfo:
        """The participant once GetParticipant shows it active with `tracks` tracks (bounded wait)."""
        seen: list[ParticipantInfo] = []

        async def active() -> bool:
            try:
                p = await self.lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=identity))
            except api.TwirpError:
                return False
            seen[:] = [p]
            return p.state == ParticipantInfo.State.ACTIVE and len(p.tracks) == tracks

        await until(f"{identity} active in {room} with {tracks} track(s)", active, JOIN_SECONDS)
        return seen[0]

    async def dispatch_agent(self, room: str, agent_name: str) -> tuple[AgentDispatch, ParticipantInfo]:
        """CreateDispatch for `agent_name`, served by a worker: returns the dispatch and its agent once
        the agent is in the room and listening."""
        self._serve(agent_name)
        before = await self._agents(room, agent_name)
        joined: list[ParticipantInfo] = []

        async def arrived() -> bool:
            joined[:] = [
                p
                for p in (await self._agents(room, agent_name)).values()
                if p.identity not in before and p.attributes.get("lk.agent.state") == "listening"
            ]
            return len(joined) == 1

        async def dispatched() -> AgentDispatch:
            request = api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
            return await self.lk.agent_dispatch.create_dispatch(request)

        waited = f"an agent {agent_name!r} listening in {room}"
        for _ in range(self.DISPATCH_ATTEMPTS - 1):
            dispatch = await dispatched()
            with contextlib.suppress(AssertionError):
                await until(waited, arrived, JOIN_SECONDS / 2)
                return dispatch, joined[0]
        dispatch = await dispatched()
        await until(waited, arrived, JOIN_SECONDS)
        return dispatch, joined[0]

    async def _agents(self, room: str, agent_name: str) -> dict[str, ParticipantInfo]:
        listed = await self.lk.room.list_participants(api.ListParticipantsRequest(room=room))
        return {p.identity: p for p in listed.participants if p.attributes.get("lk.agent_name") == agent_name}

    async def _join(self, joining: Joining) -> None:
        raise NotImplementedError

    def _serve(self, agent_name: str) -> None:
        raise NotImplementedError


class SandboxCrowd(Crowd):
    def __init__(self, lk: api.LiveKitAPI, sandbox: Sandbox) -> None:
        super().__init__(lk)
        self.state = sandbox.state

    async def _join(self, joining: Joining) -> None:
        # What a join token with these grants gives a participant on the real server.
        permission = {"can_subscribe": True, "can_publish": True, "can_publish_data": True, "agent": joining.agent}
        if joining.hidden:
            permission["hidden"] = True
        self.state.join(
            joining.room,
            joining.identity,
            name=joining.name,
            kind=joining.kind,
            metadata=joining.metadata,
            attributes=joining.attributes,
            permission=permission,
            tracks=[MICROPHONE] if joining.audio else [],
        )

    def _serve(self, agent_name: str) -> None:
        self.state.set_workers({*self.state.workers, agent_name})


class RealCrowd(Crowd):
    DISPATCH_ATTEMPTS = 2

    def __init__(self, lk: api.LiveKitAPI, people: RealPeople, workers: Callable[[str], object]) -> None:
        super().__init__(lk)
        self.people = people
        self.workers = workers

    async def _join(self, joining: Joining) -> None:
        await self.people.join(
            joining.room,
            joining.identity,
            name=joining.name,
            kind="" if joining.kind == "STANDARD" else joining.kind.lower(),
            metadata=joining.metadata,
            attributes=joining.attributes,
            audio=joining.audio,
            agent=joining.agent,
            hidden=joining.hidden,
        )

    def _serve(self, agent_name: str) -> None:
        self.workers(agent_name)  # a worker per agent name, started once for the session
