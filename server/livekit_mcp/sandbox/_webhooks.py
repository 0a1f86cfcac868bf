"""The webhooks the sandbox sends, shaped and signed as livekit-server 1.13.5 sends its own.

Each event is a `WebhookEvent` in protojson (camelCase, enums by name, defaults left out) with an `EV_` id and
`createdAt` in whole seconds, POSTed as `application/webhook+json` with `Authorization: <JWT>` (no `Bearer`): the
JWT's `iss` is the sandbox's first API key, it expires 5 minutes on, and its `sha256` claim is the base64 SHA-256
of the body (docs/livekit-behavior.md, section 6). Like livekit-server, every destination has its own queue
delivered in order; a delivery that fails is retried a few times and then dropped, and the next event that
reaches that destination says how many were lost (`numDropped`). What fails is what livekit-server's retryablehttp
client retries: no answer, 429, or a 5xx other than 501; any other answer (a 4xx included) counts as delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import jwt  # PyJWT, which livekit-api signs its own tokens with
from google.protobuf import json_format
from livekit.protocol import models as proto_models
from livekit.protocol import webhook as proto_webhook

from ._ids import guid

log = logging.getLogger(__name__)

Sink = Callable[[bytes, str], Awaitable[int]]
"""Delivers one signed webhook (the body and the Authorization value) and gives the HTTP status it got."""

TOKEN_TTL = 300  # seconds
RETRY_DELAYS = (0.2, 0.5, 1.0)  # livekit-server retries too (retryablehttp), with longer waits
QUEUE_SIZE = 10_000  # events waiting per destination; past it they are dropped, as livekit-server does


@dataclass
class _Destination:
    name: str
    sink: Sink
    queue: asyncio.Queue[proto_webhook.WebhookEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0
    task: asyncio.Task[None] | None = None


class Webhooks:
    """Where the sandbox's events go: URLs (`--webhook-url`, or the admin API) and in-process sinks."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._key = api_key
        self._secret = api_secret
        self._destinations: dict[str, _Destination] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def active(self) -> bool:
        return bool(self._destinations)

    @property
    def urls(self) -> list[str]:
        return [name for name in self._destinations if name.startswith(("http://", "https://"))]

    def set_urls(self, urls: Sequence[str]) -> None:
        """Send to these URLs from now on (and stop sending to any other URL)."""
        for url in self.urls:
            if url not in urls:
                self._remove(url)
        for url in urls:
            if url not in self._destinations:
                self.add(url, self._post(url))

    def add(self, name: str, sink: Sink) -> None:
        self._destinations[name] = _Destination(name, sink)

    def emit(
        self,
        event: str,
        room: proto_models.Room,
        *,
        participant: proto_models.ParticipantInfo | None = None,
        track: proto_models.TrackInfo | None = None,
        end_reason: str = "",
    ) -> None:
        """Queue `event` for every destination; it is sent from the running loop, after the caller's change.
        `end_reason`: room_finished's room_end_reason, which livekit-server sends from 1.13.7 on (_versions.py)."""
        if not self.active:
            return
        message = proto_webhook.WebhookEvent(
            event=event, id=_event_id(), created_at=int(time.time()), room=_room_of(room, event)
        )
        if end_reason:
            message.room_end_reason = proto_models.RoomEndReason.Value(end_reason)  # type: ignore[assignment]
        if participant is not None and track is not None:
            # A track event names its participant by sid and identity only.
            message.participant.sid, message.participant.identity = participant.sid, participant.identity
        elif participant is not None:
            message.participant.CopyFrom(participant)
        if track is not None:
            message.track.CopyFrom(track)
        for destination in self._destinations.values():
            if destination.task is None:
                destination.task = asyncio.get_running_loop().create_task(self._deliver(destination))
            try:
                destination.queue.put_nowait(message)
            except asyncio.QueueFull:
                destination.dropped += 1

    async def drained(self) -> None:
        """Wait until every queued event has been delivered or given up on (for the demo and the tests)."""
        for destination in list(self._destinations.values()):
            await destination.queue.join()

    async def aclose(self) -> None:
        for name in list(self._destinations):
            self._remove(name)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _post(self, url: str) -> Sink:
        async def post(body: bytes, authorization: str) -> int:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            headers = {"Content-Type": "application/webhook+json", "Authorization": authorization}
            async with self._session.post(url, data=body, headers=headers) as answer:
                return answer.status

        return post

    def _remove(self, name: str) -> None:
        destination = self._destinations.pop(name)
        if destination.task is not None:
            destination.task.cancel()

    async def _deliver(self, destination: _Destination) -> None:
        while True:
            message = await destination.queue.get()
            try:
                message.num_dropped, dropped = destination.dropped, destination.dropped
                body = json_format.MessageToJson(message, indent=None).encode()
                if await self._send(destination, body):
                    destination.dropped -= dropped
                else:
                    destination.dropped += 1
            finally:
                destination.queue.task_done()

    async def _send(self, destination: _Destination, body: bytes) -> bool:
        why = ""
        for delay in (0.0, *RETRY_DELAYS):
            await asyncio.sleep(delay)
            try:
                status = await destination.sink(body, self._sign(body))
                if not _retried(status):
                    if status >= 300:
                        log.info(
                            "sandbox webhook to %s answered HTTP %d: delivered, as livekit-server counts it",
                            destination.name,
                            status,
                        )
                    return True
                why = f"HTTP {status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                why = type(exc).__name__
        log.warning("sandbox webhook to %s dropped after %d tries: %s", destination.name, len(RETRY_DELAYS) + 1, why)
        return False

    def _sign(self, body: bytes) -> str:
        # The claims livekit-server's notifier signs, no more (AccessToken would add an empty `sub`).
        now = int(time.time())
        claims = {
            "iss": self._key,
            "nbf": now,
            "iat": now,
            "exp": now + TOKEN_TTL,
            "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")


def _retried(status: int) -> bool:
    """Whether livekit-server retries (and at last drops) a delivery answered `status`: go-retryablehttp's
    baseRetryPolicy, which its URL notifier uses. A 4xx is taken as delivered: no retry, not in `numDropped`."""
    return status == 429 or status == 0 or (status >= 500 and status != 501)


def _room_of(room: proto_models.Room, event: str) -> proto_models.Room:
    """The room as livekit-server puts it in an event: track events carry only the room's sid and name."""
    if event.startswith("track_"):
        return proto_models.Room(sid=room.sid, name=room.name)
    out = proto_models.Room()
    out.CopyFrom(room)
    # livekit-server's events carry the room's settings, not its counts (and, in 1.13.5, its TURN password,
    # which the sandbox has none of).
    out.ClearField("num_participants")
    out.ClearField("num_publishers")
    return out


def _event_id() -> str:
    return guid("EV_")
