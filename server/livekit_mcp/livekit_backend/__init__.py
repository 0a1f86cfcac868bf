"""The one seam to LiveKit: the only package that imports `livekit.api` (through `_imports`, lazily).

It owns the single `LiveKitAPI` (one aiohttp session) of the process, bounds every call with our own
timeout (`livekit-api` ignores its own), retries reads that failed in passing, converts protobuf to our
models (`_convert`), and maps every foreign failure to the exception tree of `errors.py` in one place (`_mapped`).
Every private attribute of livekit-api and aiohttp it uses is in `_private`.
"""

from __future__ import annotations

import bisect
import functools
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import NamedTuple, Self, TypeVar

import anyio
from google.protobuf.message import DecodeError
from pydantic import SecretStr

from livekit_mcp.errors import (
    AuthenticationFailed,
    BadAnswer,
    DispatchNotFound,
    EgressOutputMissing,
    LiveKitError,
    NotFound,
    ParticipantNotFound,
    PermissionDenied,
    RoomNotFound,
    RoomNotLive,
    ServerFailure,
    ServiceMissing,
    Timeout,
    Unreachable,
    unsure,
)
from livekit_mcp.models import (
    Dispatch,
    Egress,
    Ingress,
    JoinToken,
    Participant,
    Permission,
    Room,
    RpcAnswer,
    RpcFailure,
    SipCall,
    SipDispatchRule,
    SipTrunk,
    Track,
    effective_kind,
)
from livekit_mcp.policy import Policy

from . import _convert, _tokens
from ._convert import display_url as display_url
from ._imports import aiohttp, api
from ._private import read_with, sign_with, twirp_call
from ._tokens import CallTokens
from ._webhooks import webhook_verifier as webhook_verifier

_Tokens = CallTokens  # its old name, which tests/test_call_tokens.py uses


log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")

# LiveKit's not_found messages (docs/livekit-behavior.md): the message is what tells them apart. They are
# matched by their end: livekit-server v1.13.5 wraps the errors of its room layer (utils/xtwirp), so the
# message reads "twirp error unknown: requested room does not exist"; other servers send it bare.
_ROOM_MISSING = "requested room does not exist"
_PARTICIPANT_MISSING = "participant does not exist"
_DISPATCH_MISSING = "dispatch ID not found"
# A call routed (psrpc) to the node of a room or participant that is not live is claimed by nobody: after
# about 3 s livekit-server v1.13.5 answers 503 unavailable "twirp error unknown: no response from servers"
# (MutePublishedTrack, SendData, UpdateSubscriptions, ListDispatch, DeleteDispatch). Nothing was done, and
# asking again brings the same answer 3 s later: it is "not there", not a failure in passing.
_NO_RESPONSE = "no response from servers"

# Every LiveKit method this module calls, read or change: the one place that decides what may be sent twice.
# A read changes nothing, so one that failed in passing (connection, 5xx, 408, 429) is simply sent again.
READS = frozenset(
    {
        "ListRooms",
        "ListParticipants",
        "GetParticipant",
        "ListDispatch",
        "ListSIPInboundTrunk",
        "ListSIPOutboundTrunk",
        "ListSIPDispatchRule",
        "ListEgress",
        "ListIngress",
    }
)
# A change is sent once. When its fate is unknown (timeout, connection lost after sending, garbled answer) the
# error names the tool that shows whether it happened ("": none can).
CHANGES = {
    "CreateRoom": "list_rooms",
    "DeleteRoom": "list_rooms",
    "UpdateRoomMetadata": "get_room",
    "SendData": "",
    "RemoveParticipant": "list_participants",
    "UpdateParticipant": "get_participant",
    "MutePublishedTrack": "get_participant",
    "CreateDispatch": "list_dispatches",
    "DeleteDispatch": "list_dispatches",
    "PerformRpc": "",  # the participant's handler may have run: nothing shows it
    "CreateSIPParticipant": "list_participants",
    "TransferSIPParticipant": "list_participants",
    "StartRoomCompositeEgress": "list_egress",
    "StopEgress": "list_egress",
    "CreateIngress": "list_ingress",
    "DeleteIngress": "list_ingress",
}
# The LiveKit service behind each method that is not livekit-server's own: SIP, egress and ingress run as separate
# services (livekit/sip, livekit/egress, livekit/ingress) that livekit-server reaches through Redis.
SERVICES = {
    method: service
    for service, methods in {
        "SIP": (
            "ListSIPInboundTrunk",
            "ListSIPOutboundTrunk",
            "ListSIPDispatchRule",
            "CreateSIPParticipant",
            "TransferSIPParticipant",
        ),
        "egress": ("ListEgress", "StartRoomCompositeEgress", "StopEgress"),
        "ingress": ("ListIngress", "CreateIngress", "DeleteIngress"),
    }.items()
    for method in methods
}
# livekit-server v1.13.5 without Redis: "sip not connected (redis required)", and likewise for egress and ingress.
_NOT_CONNECTED = "not connected (redis required)"
_EGRESS_MISSING = "egress does not exist"
_INGRESS_MISSING = "ingress does not exist"
_TRUNK_MISSING = "requested sip trunk does not exist"
_ITEMS_MISSING = (
    (_EGRESS_MISSING, "egress", "list_egress"),
    (_INGRESS_MISSING, "ingress", "list_ingress"),
    (_TRUNK_MISSING, "SIP trunk", "list_sip_trunks"),
)
EGRESS_LIMIT = 40.0
"""Seconds StartRoomCompositeEgress may take: livekit-server v1.13.5 waits ~25 s for an egress service before it
answers that none is there (docs/livekit-behavior.md), and one that is there answers within seconds."""
SIP_LIMIT = 30.0
"""Seconds LiveKit may take to dial out or transfer a call (livekit-server's own limit for both, without waiting
for an answer); our call waits a little longer, so that LiveKit's answer, not our clock, says how it went."""

BACKOFF_FIRST = 0.05
"""Seconds before the first retry; doubled for each next one, up to BACKOFF_MAX, each with jitter."""
BACKOFF_MAX = 1.0
MAX_ANSWER = 64 * 1024 * 1024
"""Bytes of an answer we read at most, whatever its framing (10,000 rooms or participants are a few MiB)."""

# PerformRpc (docs/livekit-behavior.md): an RPC error reaches us as a Twirp error whose message is Go's
# `RpcError <code>: <message>[: <data>]`, behind the "twirp error unknown: " of livekit-server's routing.
_RPC_ERROR = re.compile(r"RpcError (\d+): (.*)\Z", re.DOTALL)
# LiveKit's own RPC errors (livekit/protocol utils/data_channel_rpc.go, as livekit-server v1.13.5 sends them):
# their message is known, so whatever follows it is the data.
RPC_MESSAGES = {
    1400: "Method not supported at destination",
    1401: "Recipient not found",
    1402: "Request payload too large",
    1403: "RPC not supported by server",
    1404: "Unsupported RPC version",
    1500: "Application error in method handler",
    1501: "Connection timeout",
    1502: "Response timeout",
    1503: "Recipient disconnected",
    1504: "Response payload too large",
    1505: "Failed to send",
}
RPC_MARGIN = 8.0
"""Seconds our PerformRpc call waits beyond the participant's response timeout: LiveKit's 2 s for the client's
acknowledgement and its ~3 s routing to nobody; livekit-server's own retries end by 15 s (docs/livekit-behavior.md)."""


class _NotLiveKit(Exception):
    """An answer no LiveKit server gives, caught in the session before `livekit-api` reads it as protobuf."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def _check_answer(response: aiohttp.ClientResponse) -> None:
    # `livekit-api` decodes any 200 as protobuf, and an empty body decodes as an empty list: a web page or a
    # proxy's answer would pass for "no rooms". LiveKit always labels its successes application/protobuf.
    if response.status == 200 and response.content_type != "application/protobuf":
        raise _NotLiveKit(200, f"{response.content_type} instead of protobuf")
    if (response.content_length or 0) > MAX_ANSWER:
        raise _NotLiveKit(response.status, f"{response.content_length:,} bytes announced, over the {MAX_ANSWER:,} read")


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """A body of at most MAX_ANSWER bytes: `livekit-api` reads every answer whole, and one without Content-Length
    (chunked, or until the connection closes) has no size to check in advance."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_any():  # decompressed bytes: a zip bomb counts in full
            size += len(chunk)
            if size > MAX_ANSWER:
                raise _NotLiveKit(response.status, f"an answer longer than the {MAX_ANSWER:,} bytes read")
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    return b"".join(chunks)


@functools.cache
def _bounded_response() -> type[aiohttp.ClientResponse]:
    return read_with(_read_bounded)


def _not_live(exc: Exception) -> bool:
    """LiveKit's answer to a call routed to a room or participant that is not live (see `_NO_RESPONSE`)."""
    return isinstance(exc, api.ServerError) and exc.status == 503 and exc.message.endswith(_NO_RESPONSE)


def _service_missing(exc: Exception) -> bool:
    """LiveKit's answer when no SIP, egress or ingress service serves the call (docs/livekit-behavior.md)."""
    if not isinstance(exc, api.ServerError):
        return False
    return exc.message.endswith(_NOT_CONNECTED) or (exc.status == 503 and exc.message.endswith(_NO_RESPONSE))


def _transient(exc: Exception) -> bool:
    """A failure that another attempt may not meet: the only kind a read is retried on."""
    if _not_live(exc) or _service_missing(exc):
        return False
    if isinstance(exc, api.ServerError):
        # 501 (unimplemented) is a 5xx that will never change.
        return exc.status in (408, 429) or (exc.status >= 500 and exc.status != 501)
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorDNSError | aiohttp.ServerFingerprintMismatch):
        return False  # a wrong URL or certificate: the same answer would come back
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def _backoff(attempt: int) -> float:
    """Capped exponential backoff with jitter, so that many clients do not retry in step."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def _rpc_failure(exc: api.ServerError) -> RpcFailure | None:
    """The RPC error a PerformRpc failure carries, or None when it is not one (LiveKit's own routing or auth)."""
    found = _RPC_ERROR.search(exc.message)
    if found is not None:
        code, rest = int(found.group(1)), found.group(2)
        known = RPC_MESSAGES.get(code)
        if known is not None and rest.startswith(known):
            message, data = known, rest[len(known) :].removeprefix(": ")
        else:
            # The participant's own error: Go joins message and data with ": ", so the first one splits them.
            message, _, data = rest.partition(": ")
        return RpcFailure(code=code, message=message, data=data or None)
    if exc.code == "deadline_exceeded":
        # livekit-server sent the request up to 3 times (3, 5 and 7 s) and no attempt was answered in time.
        return RpcFailure(message="request timed out")
    return None


class ParticipantPage(NamedTuple):
    participants: list[Participant]
    total: int
    """How many match, across all pages."""
    more: bool
    anyone: bool
    """Whether the room has anyone at all: LiveKit lists a missing room as an empty one."""


class LiveKit:
    """A connection to one LiveKit deployment. Use as an async context manager (one per process)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: SecretStr,
        *,
        timeout: float,
        concurrency: int,
        retries: int = 3,
        policy: Policy | None = None,
        egress_output: SecretStr | None = None,
    ) -> None:
        """`timeout` bounds each call, retries included; `concurrency` bounds the calls of fan-outs in flight at
        once, process-wide; `retries` is how many times a read that failed in passing is sent again; `policy`
        says which rooms may be seen and changed (checked here, so nothing can get around it); `egress_output` is
        where start_room_egress records (LIVEKIT_MCP_EGRESS_OUTPUT)."""
        self._egress_output = egress_output
        self.policy = policy or Policy()
        self.url = display_url(url)
        self._target = url
        self.api_key = api_key
        self._secret = api_secret
        self.timeout = timeout
        self.concurrency = concurrency
        self.retries = retries
        self._api: api.LiveKitAPI | None = None
        self._session: aiohttp.ClientSession | None = None
        self._fan_out: anyio.CapacityLimiter | None = None
        self._open = False

    async def __aenter__(self) -> Self:
        self._fan_out = anyio.CapacityLimiter(self.concurrency)
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._api is not None:
            await self._api.aclose()  # leaves a session it did not create open: ours is closed below
            self._api = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._open = False

    @property
    def _lk(self) -> api.LiveKitAPI:
        return self._opened()

    def _opened(self) -> api.LiveKitAPI:
        """The client, created by the first call (which imports livekit-api: see `_lazy`)."""
        if not self._open:
            raise RuntimeError("LiveKit is used outside its `async with` block")
        if self._api is None:
            self._session = aiohttp.ClientSession(raise_for_status=_check_answer, response_class=_bounded_response())
            # failover=False: LiveKit Cloud failover replays requests, and a change must never be replayed blindly.
            self._api = api.LiveKitAPI(
                self._target, self.api_key, self._secret.get_secret_value(), session=self._session, failover=False
            )
            tokens = CallTokens(self.api_key, self._secret)
            for service in (
                self._api.room,
                self._api.agent_dispatch,
                self._api.sip,
                self._api.egress,
                self._api.ingress,
            ):
                sign_with(service, tokens.header)  # reuse tokens instead of signing one per call
        return self._api

    # --- Rooms ---------------------------------------------------------------------------------------

    async def list_rooms(self, names: Sequence[str] = ()) -> list[Room]:
        """Rooms by name (unknown names are left out), or every room when no names are given."""
        response = await self._call("ListRooms", lambda: self._lk.room.list_rooms(api.ListRoomsRequest(names=names)))
        return [_convert.room(r) for r in response.rooms if self.policy.visible(r.name)]

    async def get_room(self, room: str) -> Room:
        self.policy.check_room(room, changes=False)  # refused by name, rather than "does not exist"
        rooms = await self.list_rooms([room])
        if not rooms:
            raise RoomNotFound(room)
        return rooms[0]

    async def create_room(
        self, room: str, *, empty_timeout: int, departure_timeout: int, max_participants: int, metadata: str
    ) -> Room:
        request = api.CreateRoomRequest(
            name=room,
            empty_timeout=empty_timeout,
            departure_timeout=departure_timeout,
            max_participants=max_participants,
            metadata=metadata,
        )
        return _convert.room(await self._call("CreateRoom", lambda: self._lk.room.create_room(request), room=room))

    async def update_room_metadata(self, room: str, metadata: str) -> Room:
        request = api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
        return _convert.room(
            await self._call("UpdateRoomMetadata", lambda: self._lk.room.update_room_metadata(request), room=room)
        )

    async def send_data(
        self, room: str, data: bytes, *, reliable: bool, topic: str | None, destination_identities: Sequence[str]
    ) -> None:
        request = api.SendDataRequest(
            room=room,
            data=data,
            kind=api.DataPacket.Kind.RELIABLE if reliable else api.DataPacket.Kind.LOSSY,
            topic=topic,
            destination_identities=destination_identities,
        )
        await self._call("SendData", lambda: self._lk.room.send_data(request), room=room)

    async def perform_rpc(
        self, room: str, identity: str, method: str, payload: str, *, response_timeout: float
    ) -> RpcAnswer:
        """Calls `method` of a participant (livekit-api has no wrapper for PerformRpc: see `_private.twirp_call`).

        The participant's answer or its RPC error is returned; LiveKit's failures are raised as the others are."""
        request = api.PerformRpcRequest(
            room=room,
            destination_identity=identity,
            method=method,
            payload=payload,
            response_timeout_ms=round(response_timeout * 1000),
        )
        rooms = self._lk.room

        async def send() -> RpcAnswer:
            try:
                grants = api.VideoGrants(room_admin=True, room=room)
                response = await twirp_call(rooms, "RoomService", "PerformRpc", request, grants, api.PerformRpcResponse)
            except api.ServerError as exc:
                failure = _rpc_failure(exc)
                if failure is None:
                    raise
                return RpcAnswer(error=failure)
            return RpcAnswer(payload=response.payload)

        # Our limit covers LiveKit's: a call cut short here would leave the handler's fate unknown.
        limit = max(self.timeout, response_timeout + RPC_MARGIN)
        return await self._call("PerformRpc", send, room=room, identity=identity, limit=limit)

    def join_token(
        self,
        room: str,
        identity: str,
        *,
        ttl_seconds: int,
        name: str,
        can_publish: bool,
        can_subscribe: bool,
        can_publish_data: bool,
    ) -> JoinToken:
        """A join token for one room, signed with our key; only the join grants, never an admin one."""
        self.policy.check_room(room, changes=True)
        grants = {"can_publish": can_publish, "can_subscribe": can_subscribe, "can_publish_data": can_publish_data}
        return _tokens.join_token(self.api_key, self._secret, self.url, room, identity, name, ttl_seconds, grants)

    async def delete_room(self, room: str) -> None:
        await self._call("DeleteRoom", lambda: self._lk.room.delete_room(api.DeleteRoomRequest(room=room)), room=room)

    # --- Participants --------------------------------------------------------------------------------

    async def _participants(self, room: str) -> Sequence[api.ParticipantInfo]:
        response = await self._call(
            "ListParticipants",
            lambda: self._lk.room.list_participants(api.ListParticipantsRequest(room=room)),
            room=room,
        )
        return response.participants

    async def list_participants(self, room: str) -> list[Participant]:
        """Everyone in the room; LiveKit answers a missing room with an empty list, as it does an empty room."""
        return [_convert.participant(p) for p in await self._participants(room)]

    async def participant_page(
        self, room: str, *, kind: str | None, limit: int, after: tuple[float, str] | None
    ) -> ParticipantPage:
        """One page of a room's participants (of `kind`), by join time then identity, after the key `after`.

        Sorting and filtering work on the protobuf messages and only the page is converted: in a 5,000-person
        webinar, converting everyone cost ten times the LiveKit call itself."""
        everyone = await self._participants(room)

        def key(p: api.ParticipantInfo) -> tuple[float, str]:
            return (_convert.joined_at(p), p.identity)

        if kind is None:
            chosen = list(everyone)
        else:
            names = api.ParticipantInfo.Kind
            chosen = [
                p for p in everyone if effective_kind(_convert.enum_name(names, p.kind), p.permission.agent) == kind
            ]
        chosen.sort(key=key)
        start = 0 if after is None else bisect.bisect_right(chosen, after, key=key)
        page = [_convert.participant(p) for p in chosen[start : start + limit]]
        return ParticipantPage(page, total=len(chosen), more=start + limit < len(chosen), anyone=bool(everyone))

    async def get_participant(self, room: str, identity: str) -> Participant:
        info = await self._call(
            "GetParticipant",
            lambda: self._lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=identity)),
            room=room,
            identity=identity,
        )
        return _convert.participant(info)

    async def remove_participant(self, room: str, identity: str) -> None:
        await self._call(
            "RemoveParticipant",
            lambda: self._lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity)),
            room=room,
            identity=identity,
        )

    async def update_participant(
        self,
        room: str,
        identity: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        permission: Permission | None = None,
    ) -> Participant:
        request = api.UpdateParticipantRequest(
            room=room,
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=attributes,
            permission=_convert.to_permission(permission) if permission is not None else None,
        )
        info = await self._call(
            "UpdateParticipant",
            lambda: self._lk.room.update_participant(request),
            room=room,
            identity=identity,
        )
        return _convert.participant(info)

    async def mute_track(self, room: str, identity: str, track_sid: str, muted: bool) -> Track | None:
        """The track as LiveKit reports it after the change; None when LiveKit knows no such track."""
        request = api.MuteRoomTrackRequest(room=room, identity=identity, track_sid=track_sid, muted=muted)
        response = await self._call(
            "MutePublishedTrack",
            lambda: self._lk.room.mute_published_track(request),
            room=room,
            identity=identity,
        )
        return _convert.track(response.track) if response.HasField("track") else None

    # --- Agent dispatch ------------------------------------------------------------------------------

    async def list_dispatches(self, room: str) -> list[Dispatch]:
        dispatches = await self._call("ListDispatch", lambda: self._lk.agent_dispatch.list_dispatch(room), room=room)
        return [_convert.dispatch(d) for d in dispatches]

    async def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        request = api.CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        dispatch = await self._call(
            "CreateDispatch", lambda: self._lk.agent_dispatch.create_dispatch(request), room=room
        )
        return _convert.dispatch(dispatch)

    async def delete_dispatch(self, room: str, dispatch_id: str) -> Dispatch:
        dispatch = await self._call(
            "DeleteDispatch",
            lambda: self._lk.agent_dispatch.delete_dispatch(dispatch_id, room),
            room=room,
            dispatch_id=dispatch_id,
        )
        return _convert.dispatch(dispatch)

    # --- SIP, egress and ingress ---------------------------------------------------------------------

    async def list_sip_trunks(self) -> list[SipTrunk]:
        """Inbound and outbound trunks, numbers and addresses as configured; passwords are never read out."""
        sip = self._lk.sip
        inbound = await self._call(
            "ListSIPInboundTrunk", lambda: sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        )
        outbound = await self._call(
            "ListSIPOutboundTrunk", lambda: sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        )
        return [_convert.inbound_trunk(t) for t in inbound.items] + [_convert.outbound_trunk(t) for t in outbound.items]

    async def list_sip_dispatch_rules(self) -> list[SipDispatchRule]:
        found = await self._call(
            "ListSIPDispatchRule", lambda: self._lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        )
        rules = [_convert.dispatch_rule(r) for r in found.items]
        # A rule sending every call to one room shows that room: one outside allowed_rooms stays unseen.
        return [r for r in rules if r.room is None or self.policy.visible(r.room)]

    async def create_sip_participant(
        self, room: str, sip_trunk_id: str, sip_call_to: str, *, identity: str, name: str
    ) -> SipCall:
        """Dials `sip_call_to` through the outbound trunk; LiveKit answers once the SIP participant is in the room
        (before the phone is picked up)."""
        request = api.CreateSIPParticipantRequest(
            room_name=room,
            sip_trunk_id=sip_trunk_id,
            sip_call_to=sip_call_to,
            participant_identity=identity,
            participant_name=name,
        )
        made = await self._call(
            "CreateSIPParticipant",
            lambda: self._lk.sip.create_sip_participant(request, timeout=SIP_LIMIT),
            room=room,
            item=sip_trunk_id,
            limit=max(self.timeout, SIP_LIMIT + 5),
        )
        return SipCall(
            room=room,
            sip_trunk_id=sip_trunk_id,
            sip_call_to=sip_call_to,
            participant_identity=made.participant_identity or None,
            participant_sid=made.participant_id or None,
            sip_call_id=made.sip_call_id or None,
        )

    async def transfer_sip_participant(self, room: str, identity: str, transfer_to: str) -> None:
        request = api.TransferSIPParticipantRequest(
            room_name=room, participant_identity=identity, transfer_to=transfer_to
        )
        await self._call(
            "TransferSIPParticipant",
            lambda: self._lk.sip.transfer_sip_participant(request, timeout=SIP_LIMIT),
            room=room,
            identity=identity,
            limit=max(self.timeout, SIP_LIMIT + 5),
        )

    async def list_egress(self, *, room: str = "", egress_id: str = "", active: bool = False) -> list[Egress]:
        if room:
            self.policy.check_room(room, changes=False)
        request = api.ListEgressRequest(room_name=room, egress_id=egress_id, active=active)
        found = await self._call("ListEgress", lambda: self._lk.egress.list_egress(request), item=egress_id)
        return [_convert.egress(e) for e in found.items if self.policy.visible(e.room_name)]

    @property
    def egress_output(self) -> str | None:
        """Where start_room_egress records, as it may be shown: a file path template, or a stream's host."""
        if self._egress_output is None:
            return None
        output = self._egress_output.get_secret_value()
        return f"stream {display_url(output)}" if "://" in output else f"file {output}"

    async def start_room_egress(self, room: str, *, audio_only: bool) -> Egress:
        """Records (or streams) the room to the output of LIVEKIT_MCP_EGRESS_OUTPUT, which the caller never sees
        whole: a stream URL carries its key, and file storage is the egress service's own configuration."""
        if self._egress_output is None:
            raise EgressOutputMissing()
        output = self._egress_output.get_secret_value()
        request = api.RoomCompositeEgressRequest(room_name=room, audio_only=audio_only)
        if "://" in output:
            request.stream_outputs.append(api.StreamOutput(urls=[output]))
        else:
            request.file_outputs.append(api.EncodedFileOutput(filepath=output))
        started = await self._call(
            "StartRoomCompositeEgress",
            lambda: self._lk.egress.start_room_composite_egress(request),
            room=room,
            limit=max(self.timeout, EGRESS_LIMIT),
        )
        return _convert.egress(started)

    async def stop_egress(self, room: str, egress_id: str) -> Egress:
        stopped = await self._call(
            "StopEgress",
            lambda: self._lk.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id)),
            room=room,
            item=egress_id,
        )
        return _convert.egress(stopped)

    async def list_ingress(self, *, room: str = "", ingress_id: str = "") -> list[Ingress]:
        if room:
            self.policy.check_room(room, changes=False)
        request = api.ListIngressRequest(room_name=room, ingress_id=ingress_id)
        found = await self._call("ListIngress", lambda: self._lk.ingress.list_ingress(request), item=ingress_id)
        return [_convert.ingress(i, masked=True) for i in found.items if self.policy.visible(i.room_name)]

    async def create_ingress(
        self, room: str, input_type: str, *, identity: str, name: str, participant_name: str, url: str
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
        made = await self._call("CreateIngress", lambda: self._lk.ingress.create_ingress(request), room=room)
        return _convert.ingress(made, masked=False)

    async def delete_ingress(self, room: str, ingress_id: str) -> Ingress:
        deleted = await self._call(
            "DeleteIngress",
            lambda: self._lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=ingress_id)),
            room=room,
            item=ingress_id,
        )
        return _convert.ingress(deleted, masked=True)

    # --- Fan-out -------------------------------------------------------------------------------------

    async def gather(self, fn: Callable[[T], Awaitable[U]], items: Sequence[T]) -> list[U]:
        """`fn` over every item, results in item order, with at most `concurrency` fan-out calls in flight in
        the whole process (however many tools fan out at once) and as many tasks, not one per item."""
        if self._fan_out is None:
            raise RuntimeError("LiveKit is used outside its `async with` block")
        limiter = self._fan_out
        results: list[U | None] = [None] * len(items)
        pending = iter(range(len(items)))  # shared by the workers: each takes the next item
        failures: list[Exception] = []

        async def worker() -> None:
            for i in pending:
                async with limiter:
                    try:
                        results[i] = await fn(items[i])
                    except Exception as exc:
                        # The first failure stops the rest, and is raised as itself below: inside an
                        # ExceptionGroup the SDK would report a bare "Error executing tool".
                        failures.append(exc)
                        tg.cancel_scope.cancel()
                        return

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.concurrency, len(items))):
                tg.start_soon(worker)
        if failures:
            raise failures[0]
        return results  # type: ignore[return-value]  # every slot was filled, or a failure was raised

    # --- The one place foreign errors are mapped -----------------------------------------------------

    async def _call(
        self,
        method: str,
        request: Callable[[], Awaitable[T]],
        *,
        room: str = "",
        identity: str = "",
        dispatch_id: str = "",
        item: str = "",
        limit: float | None = None,
    ) -> T:
        """One LiveKit call within `limit` seconds (our timeout unless given), a read retried while it fails in
        passing; errors mapped. `item` names the trunk, egress or ingress the call is about, for its not-found."""
        if room:
            self.policy.check_room(room, changes=method in CHANGES)
        self._opened()  # before the clock starts: importing livekit-api is not LiveKit's time
        try:
            with anyio.fail_after(limit or self.timeout) as scope:
                return await self._attempts(method, request, scope.deadline)
        except Exception as exc:
            error = self._mapped(
                exc,
                method,
                room=room,
                identity=identity,
                dispatch_id=dispatch_id,
                item=item,
                timeout=limit or self.timeout,
            )
            if error is None:
                raise  # not a LiveKit or transport failure: a bug of ours, for the SDK to log with its traceback
            if isinstance(error, ParticipantNotFound) and await self._room_exists(room) is False:
                # LiveKit says "participant does not exist" for a missing room too; the room is the real news.
                error = RoomNotFound(room)
            elif isinstance(error, RoomNotFound) and _not_live(exc) and await self._room_exists(room):
                # Listed, yet no node answered for it: closing, or its node is down. Not "does not exist".
                error = RoomNotLive(method, room)
            log.info("LiveKit %s failed: %s (%s: %s)", method, error, type(exc).__name__, _reason(exc))
            log.debug("LiveKit %s failure in detail", method, exc_info=exc)
            raise error from exc

    async def _attempts(self, method: str, request: Callable[[], Awaitable[T]], deadline: float) -> T:
        read = method in READS
        assert read or method in CHANGES, f"{method} is neither a read nor a change"
        for attempt in range(self.retries + 1):
            try:
                return await request()
            except Exception as exc:
                delay = _backoff(attempt)
                # Out of retries, or no time left for one: the failure itself says more than a timeout would.
                # A change is retried only when its connection could not even be opened: nothing was sent then.
                unsent = type(exc) is aiohttp.ClientConnectorError
                if (
                    not (read or unsent)
                    or not _transient(exc)
                    or attempt == self.retries
                    or anyio.current_time() + delay > deadline
                ):
                    raise
                log.info("LiveKit %s failed (%s); retry %d of %d", method, _reason(exc), attempt + 1, self.retries)
                await anyio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _room_exists(self, room: str) -> bool | None:
        """Whether LiveKit lists the room; None when it cannot tell (the original answer is kept then)."""
        try:
            return bool(await self.list_rooms([room]))
        except LiveKitError:
            return None

    def _mapped(
        self, exc: Exception, method: str, *, room: str, identity: str, dispatch_id: str, item: str, timeout: float
    ) -> LiveKitError | None:
        check = CHANGES.get(method)  # None for a read
        if isinstance(exc, TimeoutError):
            return Timeout(self.url, timeout, method, check=check)
        if isinstance(exc, api.ServerError):
            return self._refused(exc, method, room=room, identity=identity, dispatch_id=dispatch_id, item=item)
        if isinstance(exc, _NotLiveKit):
            return BadAnswer(self.url, method, exc.status, exc.reason, check=check)
        if isinstance(exc, DecodeError):
            return BadAnswer(self.url, method, 200, "the answer was not a valid protobuf message", check=check)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return Unreachable(self.url, f"no such host: {exc.host}", hint="check the host name in LIVEKIT_URL")
        if isinstance(exc, aiohttp.ClientSSLError):
            return Unreachable(
                self.url,
                f"TLS failed: {_reason(exc.os_error)}",
                hint="an https:// or wss:// URL needs a server with a valid certificate; a local one is often http://",
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            # Refused, no route: nothing was sent.
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            return Unreachable(self.url, "connection refused" if refused else _reason(exc.os_error))
        if isinstance(exc, aiohttp.InvalidURL):
            return Unreachable(
                self.url, "not a valid URL", hint="set LIVEKIT_URL to e.g. https://host or ws://host:7880"
            )
        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            # The request went out, the answer did not come back: a change may have been made.
            return Unreachable(self.url, f"the connection broke during {method}: {_reason(exc)}", unsure=unsure(check))
        if isinstance(exc, aiohttp.ClientError):
            return ServerFailure(method, "transport", 0, _reason(exc))
        return None

    def _refused(
        self, exc: api.ServerError, method: str, *, room: str, identity: str, dispatch_id: str, item: str
    ) -> LiveKitError:
        """A non-200 answer: a Twirp error, or plain text (`livekit-api` makes that code "unknown", no message)."""
        plain = exc.code == "unknown" and not exc.message
        if exc.status == 401 and exc.code == "unauthenticated":
            return PermissionDenied(self.url, self.api_key, method)
        if exc.status == 401:
            # The plain-text 401 of a bad key, secret or token.
            return AuthenticationFailed(self.url, self.api_key)
        if exc.code == "not_found":
            if exc.message.endswith(_ROOM_MISSING):
                return RoomNotFound(room)
            if exc.message.endswith(_PARTICIPANT_MISSING):
                return ParticipantNotFound(room, identity)
            if exc.message.endswith(_DISPATCH_MISSING):
                return DispatchNotFound(room, dispatch_id)
            for missing, what, lister in _ITEMS_MISSING:
                if exc.message.endswith(missing):
                    return NotFound(f"{what} '{item}' does not exist; {lister} shows the ones that do")
        service = SERVICES.get(method)
        if service is not None and _service_missing(exc):
            return ServiceMissing(self.url, service, method, exc.message)
        if _not_live(exc) and room:
            # Routed to whoever hosts the participant (mute) or the room (data, dispatches): nobody does.
            return ParticipantNotFound(room, identity) if identity else RoomNotFound(room)
        if plain and exc.status == 413:
            return ServerFailure(method, "request_too_large", 413, "the request is larger than LiveKit accepts")
        if plain:
            return BadAnswer(self.url, method, exc.status, "no Twirp error in the body", check=CHANGES.get(method))
        return ServerFailure(method, exc.code, exc.status, exc.message)


def _reason(exc: BaseException) -> str:
    """A one-line reason from a transport error, without the request it was about."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
