"""The real `livekit-server` of a bench run, and its participants.

The server is started exactly as the tests start it (realkit/livekit_server.py: `livekit-server --dev` with its
own Redis on free loopback ports); the binary is the one `scripts/livekit-server` builds (or
LIVEKIT_SERVER_BIN). A real server has no admin API, so the people of figures 1, 3 and 4 join over WebRTC
with the `livekit` real-time SDK, as an application's users would: no subscriptions and no media flowing,
which keeps each connection cheap while the server counts it as a participant like any other.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from livekit import api

from bench._procs import KEY, SECRET
from realkit.livekit_server import RealLiveKitServer

ROOT = Path(__file__).resolve().parent.parent
JOINS_AT_ONCE = 10  # WebRTC joins in flight: more only makes the server (and two cores) thrash


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def binary() -> Path | None:
    """LIVEKIT_SERVER_BIN, or the one scripts/livekit-server builds (cached after the first time); None if neither."""
    named = os.environ.get("LIVEKIT_SERVER_BIN")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    env = os.environ | {"LIVEKIT_MCP_SKIP_LK": "1"}  # the bench needs no `lk`
    built = subprocess.run(
        [str(ROOT / "scripts" / "livekit-server")], env=env, capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        _say(built.stderr.strip().splitlines()[-1] if built.stderr.strip() else "scripts/livekit-server failed")
        return None
    return Path(built.stdout.strip().splitlines()[-1])


@contextmanager
def real_server() -> Iterator[RealLiveKitServer | None]:
    """A running real server with the bench's key and secret, or None (said why on stderr) if none can run."""
    path = binary()
    if path is None or shutil.which("redis-server") is None:
        _say("real livekit-server: not available (no binary or no redis-server); its rows are left out")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-livekit-") as logs:  # its config holds the secret: 0700
        server = RealLiveKitServer(path, Path(logs), api_key=KEY, api_secret=SECRET)
        try:
            server.start()
            yield server
        finally:
            server.stop()


class Crowd:
    """Participants of a real server, joined over WebRTC by a process of their own (`bench/crowd.py`);
    `leave` disconnects them and deletes their rooms."""

    def __init__(self, server: RealLiveKitServer, lk: api.LiveKitAPI, process: asyncio.subprocess.Process) -> None:
        self._server = server
        self._lk = lk
        self._process = process
        self._rooms: set[str] = set()
        self._limit = asyncio.Semaphore(JOINS_AT_ONCE)
        self._orders = itertools.count()
        self._answers: dict[int, asyncio.Future[str | None]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            answer = json.loads(line)
            self._answers.pop(answer["id"]).set_result(answer["error"])
        for waiting in self._answers.values():
            waiting.set_result("the crowd's process ended")

    async def join(
        self, room: str, identity: str, *, kind: str = "", attributes: dict[str, str] | None = None, mic: bool = False
    ) -> None:
        async with self._limit:
            self._rooms.add(room)
            token = self._server.token(room, identity, kind=kind, name=identity.title(), attributes=attributes)
            order = next(self._orders)
            answer = self._answers[order] = asyncio.get_running_loop().create_future()
            assert self._process.stdin is not None
            self._process.stdin.write(
                json.dumps({"id": order, "url": self._server.ws_url, "token": token, "mic": mic}).encode() + b"\n"
            )
            await self._process.stdin.drain()
            error = await answer
            if error is not None:
                raise RuntimeError(f"{identity} could not join {room}: {error}")

    async def agent(self, room: str, identity: str, agent_name: str) -> None:
        """A participant of kind AGENT, as a `livekit-agents` job joins (its token has the agent kind)."""
        attributes = {"lk.agent_name": agent_name, "lk.agent.state": "listening"}
        await self.join(room, identity, kind="agent", attributes=attributes)

    async def leave(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        await self._reader
        for room in self._rooms:
            await self._lk.room.delete_room(api.DeleteRoomRequest(room=room))
        self._rooms.clear()


@asynccontextmanager
async def crowd(server: RealLiveKitServer, lk: api.LiveKitAPI) -> AsyncIterator[Crowd]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.crowd", cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    people = Crowd(server, lk, process)
    try:
        yield people
    finally:
        await people.leave()
