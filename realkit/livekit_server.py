"""The real counterparts the tests run against: a real `livekit-server` with its Redis, real participants
joining over loopback WebRTC (the `livekit` real-time SDK) and real agent workers (`livekit-agents`:
the demo's agent, `livekit_mcp.demo_agent`).

`scripts/livekit-server` builds the server; `LIVEKIT_SERVER_BIN` names it (scripts/check sets it). With
`LIVEKIT_MCP_TEST_REAL=required` (scripts/check, CI) a missing binary or Redis fails the run; otherwise
the real-server tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import anyio
import pytest
from livekit import api, rtc

from tests._proc import stop

ROOT = Path(__file__).resolve().parent.parent
KEY = "real-key"
SECRET = "real-secret-0123456789abcdef0123456789abcdef"  # long enough that PyJWT does not warn
START_SECONDS = 30


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def unavailable(reason: str) -> NoReturn:
    """A real counterpart cannot run here: fail when the run requires it, skip otherwise."""
    if os.environ.get("LIVEKIT_MCP_TEST_REAL") == "required":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def server_binary() -> Path:
    named = os.environ.get("LIVEKIT_SERVER_BIN")
    if named:
        if not os.access(named, os.X_OK):
            unavailable(f"LIVEKIT_SERVER_BIN={named} is not an executable livekit-server")
        return Path(named)
    built = sorted((ROOT / ".cache" / "livekit").glob("livekit-server-*/livekit-server"))
    if not built:
        unavailable("no livekit-server: run scripts/livekit-server (or scripts/check) to build it")
    return built[-1]


def _wait(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting; its log:\n{tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} was not ready within {START_SECONDS} s; its log:\n{tail(log)}")


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310 (a loopback URL of ours)
            return bool(response.status == 200)
    except OSError:
        return False


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(log: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    """Debian's redis-server on a free loopback port, nothing saved to disk; its port. The process joins `processes`."""
    redis = shutil.which("redis-server")
    if redis is None:
        unavailable("no redis-server (Debian's redis-server package): scripts/check installs it")
    port = free_port()
    with log.open("wb") as out:
        args = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        processes.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
    _wait(f"redis-server on 127.0.0.1:{port}", lambda: _pings(port), processes[-1], log)
    return port


@dataclass
class LiveKitServer:
    """A real `livekit-server --dev` on loopback (HTTP, RTC TCP and UDP on free ports) with its own Redis."""

    binary: Path
    logs: Path
    api_key: str = KEY
    api_secret: str = SECRET
    port: int = field(default_factory=free_port)
    version: str = ""
    webhook_urls: list[str] = field(default_factory=list)
    """Where it posts its webhooks (signed with its key), as `webhook.urls` of its config."""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.logs / "livekit-server.log"

    def start(self) -> None:
        redis_port = start_redis(self.logs / "redis.log", self._processes)
        # No external IP discovery (there is no internet) and nothing bound beyond loopback.
        config = self.logs / "livekit.yaml"
        config.write_text(
            f"port: {self.port}\n"
            "bind_addresses: [127.0.0.1]\n"
            f"rtc: {{tcp_port: {free_port()}, udp_port: {free_port(socket.SOCK_DGRAM)}, use_external_ip: false,"
            " node_ip: 127.0.0.1}\n"
            f"redis: {{address: '127.0.0.1:{redis_port}'}}\n"
            f"keys: {{{self.api_key}: {self.api_secret}}}\n"
            "logging: {level: info}\n"
            + (
                f"webhook: {{api_key: {self.api_key}, urls: {json.dumps(self.webhook_urls)}}}\n"
                if self.webhook_urls
                else ""
            )
        )
        self.version = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[-1]
        self._spawn([str(self.binary), "--dev", "--config", str(config)], self.log)
        _wait(f"{self.binary} on port {self.port}", lambda: _answers(self.url), self._processes[-1], self.log)

    def _spawn(self, args: list[str], log: Path) -> None:
        with log.open("wb") as out:
            self._processes.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))

    def died(self) -> str | None:
        """Which process of the server died during the run, if one did."""
        for process in self._processes:
            if process.poll() is not None:
                name = Path(str(process.args[0] if isinstance(process.args, list) else process.args)).name
                return f"{name} (livekit-server port {self.port}) died with status {process.returncode}"
        return None

    def check_alive(self) -> None:
        """Fails with the server's last log lines if it died during the run."""
        if death := self.died():
            raise AssertionError(f"{death}; its log:\n{tail(self.log)}")

    def stop(self) -> None:
        for process in reversed(self._processes):
            stop(process)

    def token(
        self,
        room: str,
        identity: str,
        *,
        kind: str = "",
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
        agent: bool = False,
        can_publish: bool = True,
        hidden: bool = False,
    ) -> str:
        grants = api.VideoGrants(room_join=True, room=room, can_publish=can_publish, agent=agent, hidden=hidden)
        token = api.AccessToken(self.api_key, self.api_secret).with_identity(identity).with_grants(grants)
        if kind:
            token = token.with_kind(kind)  # type: ignore[arg-type]
        if name:
            token = token.with_name(name)
        if metadata:
            token = token.with_metadata(metadata)
        if attributes:
            token = token.with_attributes(attributes)
        return token.to_jwt()


@contextlib.contextmanager
def running_server(logs: Path, webhook_urls: Sequence[str] = ()) -> Iterator[LiveKitServer]:
    binary = server_binary()
    for attempt in range(3):
        server = LiveKitServer(binary, logs, webhook_urls=list(webhook_urls))
        try:
            server.start()
            break
        except RuntimeError as exc:
            server.stop()
            # A free port found by binding and releasing it can be taken by another process before the server
            # binds it: new ports, up to three times. Anything else fails the run at once.
            if "address already in use" not in str(exc) or attempt == 2:
                pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# -- real participants -------------------------------------------------------------------------------


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
class Joined:
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


class People:
    """Joins real participants to rooms of a real server and leaves them all at the end."""

    def __init__(self, server: LiveKitServer, tasks: anyio.abc.TaskGroup) -> None:
        self._server = server
        self._tasks = tasks
        self._joined: list[Joined] = []

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
    ) -> Joined:
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
        joined = Joined(identity, rtc.Room())
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
async def people(server: LiveKitServer) -> AsyncIterator[People]:
    async with anyio.create_task_group() as tasks:
        crowd = People(server, tasks)
        try:
            yield crowd
        finally:
            await crowd.leave_all()
            tasks.cancel_scope.cancel()


# -- real agent workers ------------------------------------------------------------------------------


@dataclass
class AgentWorker:
    """A `livekit-agents` worker process (livekit_mcp.demo_agent) registered with the server."""

    agent_name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.process)


def start_agent_worker(server: LiveKitServer, agent_name: str, logs: Path, *flags: str) -> AgentWorker:
    """Starts a worker serving `agent_name` ("" = automatic dispatch to every new room), the demo agent run with
    `flags`; waits until registered."""
    log = logs / f"agent-worker-{agent_name or 'auto'}.log"
    env = os.environ | {
        "LIVEKIT_URL": server.ws_url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    # The demo's agent is the agent users see in the tour; the tests run the same one.
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "livekit_mcp.demo_agent", agent_name, *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    worker = AgentWorker(agent_name, process, log)
    deadline = time.monotonic() + START_SECONDS
    while b"registered worker" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"the agent worker for {agent_name!r} did not register; its log:\n{tail(log)}")
        time.sleep(0.05)
    return worker
