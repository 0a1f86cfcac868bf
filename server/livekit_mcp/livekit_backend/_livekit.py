"""`LiveKit`: what the tools call, one method each, over the per-service adapters and their one call path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar

import anyio
from pydantic import SecretStr

from livekit_mcp.errors import RoomNotFound
from livekit_mcp.models import (
    Dispatch,
    Egress,
    Ingress,
    JoinToken,
    Participant,
    Permission,
    Room,
    RpcAnswer,
    SipCall,
    SipDispatchRule,
    SipTrunk,
    Track,
)
from livekit_mcp.policy import Policy

from . import _convert, _tokens
from ._call import CallPath
from ._dispatch import Dispatches
from ._egress import Egresses
from ._ingress import Ingresses, check_pull_url
from ._participants import Census, ParticipantPage, Participants, census, page
from ._rooms import Rooms
from ._rpc import Rpcs
from ._sip import Sip

T = TypeVar("T")
U = TypeVar("U")


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
        ingress_pull_hosts: Sequence[str] = (),
    ) -> None:
        """`timeout` bounds each call, retries included; `concurrency` bounds the calls of fan-outs in flight at
        once, process-wide; `retries` is how many times a read that failed in passing is sent again; `policy`
        says which rooms may be seen and changed (checked here, so nothing can get around it); `egress_output` is
        where start_room_egress records (LIVEKIT_MCP_EGRESS_OUTPUT); `ingress_pull_hosts` the hosts a URL ingress may
        pull from whatever they resolve to (LIVEKIT_MCP_INGRESS_PULL_HOSTS)."""
        path = CallPath(
            url, api_key, api_secret, timeout=timeout, retries=retries, policy=policy or Policy(), listed=self._listed
        )
        self._path, self._secret = path, api_secret
        self._fan_out: anyio.CapacityLimiter | None = None
        # As given (the URL as it may be shown), for the tools and messages that name them.
        self.url, self.api_key, self.policy = path.url, api_key, path.policy
        self.timeout, self.retries, self.concurrency = timeout, retries, concurrency
        self._rooms = Rooms(path)
        self._participants = Participants(path)
        self._dispatches = Dispatches(path)
        self._sip = Sip(path)
        self._egress = Egresses(path, egress_output)
        self._ingress = Ingresses(path, ingress_pull_hosts)
        self._rpc = Rpcs(path)

    async def __aenter__(self) -> Self:
        self._fan_out = anyio.CapacityLimiter(self.concurrency)
        self._path.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._path.aclose()

    # --- Rooms ---------------------------------------------------------------------------------------

    async def list_rooms(self, names: Sequence[str] = ()) -> list[Room]:
        """Rooms by name (unknown names are left out), or every room when no names are given."""
        return await self._rooms.list_rooms(names)

    async def _listed(self, room: str) -> bool:
        return bool(await self.list_rooms([room]))

    async def get_room(self, room: str) -> Room:
        self.policy.check_room(room, changes=False)  # refused by name, rather than "does not exist"
        rooms = await self.list_rooms([room])
        if not rooms:
            raise RoomNotFound(room)
        return rooms[0]

    async def create_room(
        self, room: str, *, empty_timeout: int, departure_timeout: int, max_participants: int, metadata: str
    ) -> Room:
        return await self._rooms.create_room(
            room,
            empty_timeout=empty_timeout,
            departure_timeout=departure_timeout,
            max_participants=max_participants,
            metadata=metadata,
        )

    async def update_room_metadata(self, room: str, metadata: str) -> Room:
        return await self._rooms.update_room_metadata(room, metadata)

    async def send_data(
        self, room: str, data: bytes, *, reliable: bool, topic: str | None, destination_identities: Sequence[str]
    ) -> None:
        await self._rooms.send_data(
            room, data, reliable=reliable, topic=topic, destination_identities=destination_identities
        )

    async def perform_rpc(
        self, room: str, identity: str, method: str, payload: str, *, response_timeout: float
    ) -> RpcAnswer:
        """Calls `method` of a participant: its answer or its RPC error; LiveKit's failures are raised."""
        return await self._rpc.perform_rpc(room, identity, method, payload, response_timeout=response_timeout)

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
        await self._rooms.delete_room(room)

    # --- Participants --------------------------------------------------------------------------------

    async def list_participants(self, room: str) -> list[Participant]:
        """Everyone in the room; LiveKit answers a missing room with an empty list, as it does an empty room."""
        return [_convert.participant(p) for p in await self._participants.list_participants(room)]

    async def census(self, room: str) -> Census:
        """Who is in the room, counted, with only its agents, callers and services converted (a room's summary)."""
        return census(await self._participants.list_participants(room))

    async def participant_page(
        self, room: str, *, kind: str | None, limit: int, after: tuple[float, str] | None
    ) -> ParticipantPage:
        """One page of a room's participants (of `kind`), by join time then identity, after the key `after`."""
        return page(await self._participants.list_participants(room), kind=kind, limit=limit, after=after)

    async def get_participant(self, room: str, identity: str) -> Participant:
        return await self._participants.get_participant(room, identity)

    async def remove_participant(self, room: str, identity: str) -> None:
        await self._participants.remove_participant(room, identity)

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
        return await self._participants.update_participant(
            room, identity, name=name, metadata=metadata, attributes=attributes, permission=permission
        )

    async def mute_track(self, room: str, identity: str, track_sid: str, muted: bool) -> Track | None:
        """The track as LiveKit reports it after the change; None when LiveKit knows no such track."""
        return await self._participants.mute_track(room, identity, track_sid, muted)

    # --- Agent dispatch ------------------------------------------------------------------------------

    async def list_dispatches(self, room: str) -> list[Dispatch]:
        return await self._dispatches.list_dispatches(room)

    async def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return await self._dispatches.create_dispatch(room, agent_name, metadata)

    async def delete_dispatch(self, room: str, dispatch_id: str) -> Dispatch:
        return await self._dispatches.delete_dispatch(room, dispatch_id)

    # --- SIP, egress and ingress ---------------------------------------------------------------------

    async def list_sip_trunks(self) -> list[SipTrunk]:
        """Inbound and outbound trunks, numbers and addresses as configured; passwords are never read out."""
        return await self._sip.list_inbound_trunks() + await self._sip.list_outbound_trunks()

    async def list_sip_dispatch_rules(self) -> list[SipDispatchRule]:
        return await self._sip.list_sip_dispatch_rules()

    async def create_sip_participant(
        self, room: str, sip_trunk_id: str, sip_call_to: str, *, identity: str, name: str
    ) -> SipCall:
        """Dials `sip_call_to` through the outbound trunk; LiveKit answers once the SIP participant is in the room
        (before the phone is picked up)."""
        return await self._sip.create_sip_participant(room, sip_trunk_id, sip_call_to, identity=identity, name=name)

    async def transfer_sip_participant(self, room: str, identity: str, transfer_to: str) -> str | None:
        return await self._sip.transfer_sip_participant(room, identity, transfer_to)

    async def list_egress(self, *, room: str = "", egress_id: str = "", active: bool = False) -> list[Egress]:
        return await self._egress.list_egress(room=room, egress_id=egress_id, active=active)

    @property
    def egress_output(self) -> str | None:
        """Where start_room_egress records, as it may be shown: a file path template, or a stream's host."""
        return self._egress.shown_output

    async def start_room_egress(self, room: str, *, audio_only: bool) -> Egress:
        """Records (or streams) the room to LIVEKIT_MCP_EGRESS_OUTPUT, which the caller never sees whole."""
        return await self._egress.start_room_egress(room, audio_only=audio_only)

    async def stop_egress(self, room: str, egress_id: str) -> Egress:
        return await self._egress.stop_egress(room, egress_id)

    async def list_ingress(self, *, room: str = "", ingress_id: str = "") -> list[Ingress]:
        return await self._ingress.list_ingress(room=room, ingress_id=ingress_id)

    async def check_pull_url(self, url: str) -> None:
        """InvalidInput unless LiveKit may be sent to pull `url`: a public address, or a host allowed by name."""
        await check_pull_url(url, self._ingress.pull_hosts)

    async def create_ingress(
        self, room: str, input_type: str, *, identity: str, name: str, participant_name: str, url: str
    ) -> Ingress:
        """A new ingress; its stream key (anyone holding it can publish into the room) is in this answer only."""
        return await self._ingress.create_ingress(
            room, input_type, identity=identity, name=name, participant_name=participant_name, url=url
        )

    async def delete_ingress(self, room: str, ingress_id: str) -> Ingress:
        return await self._ingress.delete_ingress(room, ingress_id)

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
