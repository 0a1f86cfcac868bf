"""Real participants: clients of the `livekit` real-time SDK joining a real server over loopback WebRTC,
optionally publishing a microphone that carries a real tone."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
from livekit import rtc

from realkit.livekit_server import RealLiveKitServer


class Tone:
    """A 440 Hz tone pushed into an audio source, 10 ms at a time, so the track carries real audio."""

    RATE = 48000

    def __init__(self) -> None:
        self.source = rtc.AudioSource(self.RATE, 1)
        samples = self.RATE // 100
        wave = bytearray()
        for i in range(samples):
            value = int(8000 * math.sin(2 * math.pi * 440 * i / self.RATE))
            wave += value.to_bytes(2, "little", signed=True)
        self._frame = rtc.AudioFrame(bytes(wave), self.RATE, 1, samples)

    async def play(self) -> None:
        while True:
            await self.source.capture_frame(self._frame)


@dataclass
class RealParticipant:
    """A participant in a room through the real-time SDK, with what it has seen happen to it."""

    identity: str
    room: rtc.Room
    data: list[rtc.DataPacket] = field(default_factory=list)
    disconnect_reasons: list[int] = field(default_factory=list)
    muted: list[str] = field(default_factory=list)  # sids of its own tracks the server muted
    unmuted: list[str] = field(default_factory=list)
    track_sids: list[str] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.room.connection_state == rtc.ConnectionState.CONN_CONNECTED


class RealPeople:
    """Joins real participants to rooms of a real server and leaves them all at the end."""

    def __init__(self, server: RealLiveKitServer, tasks: anyio.abc.TaskGroup) -> None:
        self._server = server
        self._tasks = tasks
        self._joined: list[RealParticipant] = []

    async def join(
        self,
        room: str,
        identity: str,
        *,
        kind: str = "",
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
        agent: bool = False,
        audio: bool = False,
        can_publish: bool = True,
        hidden: bool = False,
    ) -> RealParticipant:
        """Joins `identity` to `room` (created by joining if needed); with `audio`, publishes a microphone tone."""
        token = self._server.token(
            room,
            identity,
            kind=kind,
            name=name,
            metadata=metadata,
            attributes=attributes,
            agent=agent,
            can_publish=can_publish,
            hidden=hidden,
        )
        joined = RealParticipant(identity, rtc.Room())
        joined.room.on("data_received", joined.data.append)
        joined.room.on("disconnected", joined.disconnect_reasons.append)

        def seen(into: list[str]) -> Callable[[rtc.Participant, rtc.TrackPublication], None]:
            def record(participant: rtc.Participant, publication: rtc.TrackPublication) -> None:
                if participant.identity == identity:
                    into.append(publication.sid)

            return record

        joined.room.on("track_muted", seen(joined.muted))
        joined.room.on("track_unmuted", seen(joined.unmuted))
        with anyio.fail_after(20):
            await joined.room.connect(self._server.ws_url, token)
        self._joined.append(joined)
        if audio:
            tone = Tone()
            track = rtc.LocalAudioTrack.create_audio_track("microphone", tone.source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            with anyio.fail_after(20):
                publication = await joined.room.local_participant.publish_track(track, options)
            joined.track_sids.append(publication.sid)
            self._tasks.start_soon(tone.play)
        return joined

    async def leave_all(self) -> None:
        for joined in self._joined:
            with contextlib.suppress(Exception), anyio.move_on_after(5):
                await joined.room.disconnect()


@contextlib.asynccontextmanager
async def real_people_on(server: RealLiveKitServer) -> AsyncIterator[RealPeople]:
    """Real people who may join `server`'s rooms; all of them leave on exit."""
    async with anyio.create_task_group() as tasks:
        crowd = RealPeople(server, tasks)
        try:
            yield crowd
        finally:
            await crowd.leave_all()
            tasks.cancel_scope.cancel()
