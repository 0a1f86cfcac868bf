"""`livekit-mcp demo`: a short guided tour.

It launches `livekit-mcp` over stdio the way Claude Desktop would and drives it with the MCP SDK's own client:
list the rooms, find the agent in the support call, remove it (and its dispatch, so it stays out), delete a
room, then the same without a user to ask (the confirm_token flow).

Where the rooms come from:
- `demo`: the LiveKit sandbox, started in this process with its demo rooms;
- `demo --dev` (a local `livekit-server --dev`) or `demo --env` (the LiveKit of LIVEKIT_URL, LIVEKIT_API_KEY,
  LIVEKIT_API_SECRET): a real server has no admin API to seed rooms, so the demo sets the scene the way an
  application would: it creates its own rooms (names with a random suffix, so it never touches anyone
  else's), joins people and a phone caller over WebRTC (the `livekit` real-time SDK) and runs its own
  `livekit-agents` worker, dispatched through the server. It deletes its rooms at the end, whatever happened.
  Those two libraries are the optional extra `livekit-mcp[demo]`, imported only here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import secrets
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import Process
from livekit import api
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import get_default_environment
from mcp.types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult, TextContent
from pydantic import SecretStr

from livekit_mcp.config import Credentials, Settings
from livekit_mcp.errors import LiveKitError, MissingCredentialsError, Timeout, Unreachable
from livekit_mcp.history import WebhookEndpoint
from livekit_mcp.livekit_backend import LiveKit, webhook_verifier
from livekit_mcp.store import open_store

if TYPE_CHECKING:
    from livekit import rtc

INSTALL_HINT = "demo --dev needs the LiveKit real-time SDK and livekit-agents: pip install 'livekit-mcp[demo]'"
AGENT_SECONDS = 60  # for the worker to register and for the dispatched agent to join (imports are slow)


def _say(text: str = "") -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Scene:
    """The rooms of a tour: where the agent is, which room is deleted with a question, which with a token."""

    support: str
    town_hall: str
    standup: str
    list_args: dict[str, Any]  # what list_rooms is called with


SANDBOX_SCENE = Scene("support-call-1042", "town-hall", "standup", {})


async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    _say(f"\n>>> {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    result = await client.call_tool(tool, args)
    for block in result.content:
        if isinstance(block, TextContent):
            _say(block.text)
    if result.is_error:
        raise SystemExit(f"demo: {tool} failed")
    return result.structured_content or {}


async def _user_says_yes(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    """The demo's stand-in for the person at the keyboard: shown the question, says yes (or types the name)."""
    _say(f"    [the server asks the user] {params.message}")
    fields = params.requested_schema.get("properties", {}) if isinstance(params, ElicitRequestFormParams) else {}
    if "room" in fields:
        typed = params.message.split("'")[1]  # the room named in the question
        _say(f"    [the user types] {typed}")
        return ElicitResult(action="accept", content={"room": typed})
    _say("    [the user answers] yes")
    return ElicitResult(action="accept", content={"confirm": True})


def _server(url: str, api_key: str, api_secret: str, store: Path | None = None) -> StdioServerParameters:
    """The server as a host starts it; `store`: the sandbox tour's own history store (gone with the tour)."""
    env = get_default_environment() | {"LIVEKIT_URL": url, "LIVEKIT_API_KEY": api_key, "LIVEKIT_API_SECRET": api_secret}
    if store is not None:
        env["LIVEKIT_MCP_STORE"] = str(store)
    _say(f"Starting `{sys.executable} -m livekit_mcp` over stdio, as an MCP host would.")
    return StdioServerParameters(command=sys.executable, args=["-m", "livekit_mcp"], env=env)


async def _tour(
    server: StdioServerParameters, scene: Scene, settled: Callable[[], Awaitable[None]] | None = None
) -> None:
    """The calls of the tour; with `settled` (which waits for the webhooks sent so far to be received), it ends
    with the support call's history."""
    async with Client(server, elicitation_callback=_user_says_yes) as client:
        tools = await client.list_tools()
        _say(f"The server offers {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}.")
        await _call(client, "list_rooms", scene.list_args)
        await _call(client, "list_participants", {"room": scene.support})
        found = await _call(client, "find_agent", {"room": scene.support})
        agent = found["agents"][0]["identity"]
        await _call(client, "get_participant", {"room": scene.support, "identity": agent})
        await _call(client, "remove_agent", {"room": scene.support})
        await _call(client, "list_participants", {"room": scene.support})
        await _call(client, "delete_room", {"room": scene.town_hall})
        await _call(client, "list_rooms", scene.list_args)
        _say("\nThe structured result of find_agent, as a client application sees it:")
        _say(json.dumps(found, indent=2))
    _say("\nA bot that cannot ask its user (no elicitation) confirms with a token instead:")
    async with Client(server) as bot:
        preview = await _call(bot, "delete_room", {"room": scene.standup})
        await _call(bot, "delete_room", {"room": scene.standup, "confirm_token": preview["confirm_token"]})
        if settled is not None:
            await settled()
            _say(
                f"\nWhat happened in {scene.support}, from LiveKit's webhooks and the changes made through the server:"
            )
            await _call(bot, "room_history", {"room": scene.support})


async def _sandbox_tour() -> None:
    from livekit_mcp.sandbox import Sandbox

    key, secret = "demo", secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="livekit-mcp-demo-") as where:
        # The sandbox's webhooks go to a receiver in this process, into the store the server reads: the setup of
        # `livekit-mcp webhooks` beside a stdio server, in one process.
        store = open_store(str(Path(where) / "history.sqlite3"))
        receiver = WebhookEndpoint(store, webhook_verifier(key, secret))
        try:
            async with Sandbox(keys={key: secret}, seed=True, webhook_sinks=[receiver.status_of]) as sandbox:
                _say(f"LiveKit sandbox with demo rooms at {sandbox.url} (key {sandbox.api_key}), sending its webhooks.")
                server = _server(sandbox.url, key, secret, Path(where) / "history.sqlite3")
                await _tour(server, SANDBOX_SCENE, sandbox.webhooks.drained)
        finally:
            await store.aclose()
    _say("\nDone. Connect your own assistant with `livekit-mcp --sandbox` (see README: Connecting a client).")


# --- a real LiveKit server ----------------------------------------------------------------------------


def _ws(url: str) -> str:
    """The WebSocket URL participants and workers connect to (LiveKit serves both on one port)."""
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


async def _probe(url: str, key: str, secret: SecretStr, source: Credentials) -> None:
    """One clear line, and exit status 1, when nothing answers at `url` or the key is refused."""
    async with LiveKit(url, key, secret, timeout=5, concurrency=1, retries=0) as lk:
        try:
            await lk.list_rooms(["-"])  # one name: a small answer however many rooms the server has
        except (Unreachable, Timeout):
            hint = "start one with `livekit-server --dev`" if source == "dev" else "check LIVEKIT_URL"
            raise SystemExit(f"livekit-mcp demo: no LiveKit server answers at {lk.url}; {hint}") from None
        except LiveKitError as exc:
            raise SystemExit(f"livekit-mcp demo: {exc}") from None


@dataclass
class _Worker:
    """The demo's agent worker process (livekit_mcp.demo_agent) and its log."""

    process: Process
    log: Path

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def registered(self) -> bool:
        """Whether the worker printed its `registered worker` line within AGENT_SECONDS."""
        assert self.process.stdout is not None
        said = b""
        with anyio.move_on_after(AGENT_SECONDS):
            while b"\n" not in said:
                try:
                    said += await self.process.stdout.receive()
                except anyio.EndOfStream:
                    break
        return said.startswith(b"registered worker")

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.process.returncode is None:
                self.process.terminate()
                with anyio.move_on_after(5):  # no jobs are left by now: a worker drains at once
                    await self.process.wait()
                    return
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def _agent_worker(url: str, key: str, secret: str, agent_name: str) -> AsyncIterator[_Worker]:
    """A `livekit-agents` worker for `agent_name`, once LiveKit has registered it; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="livekit-mcp-demo-") as logs:
        log = Path(logs) / "agent.log"
        env = get_default_environment() | {
            "LIVEKIT_URL": _ws(url),
            "LIVEKIT_API_KEY": key,
            "LIVEKIT_API_SECRET": secret,
        }
        with log.open("wb") as err:
            process = await anyio.open_process(
                [sys.executable, "-m", "livekit_mcp.demo_agent", agent_name], env=env, stderr=err
            )
        worker = _Worker(process, log)
        try:
            if not await worker.registered():
                raise SystemExit(
                    f"livekit-mcp demo: the demo agent's worker did not register; its log:\n{worker.tail()}"
                )
            yield worker
        finally:
            await worker.stop()


class _People:
    """The demo's participants, joined over WebRTC with tokens the demo signs; all leave on `leave`."""

    def __init__(self, url: str, key: str, secret: str) -> None:
        self._url, self._key, self._secret = _ws(url), key, secret
        self._rooms: list[rtc.Room] = []

    async def join(
        self, room: str, identity: str, name: str, *, kind: str = "", attributes: dict[str, str] | None = None
    ) -> rtc.Room:
        from livekit import rtc

        grants = api.VideoGrants(room_join=True, room=room)
        token = api.AccessToken(self._key, self._secret).with_identity(identity).with_name(name).with_grants(grants)
        if kind == "sip":
            token = token.with_kind("sip")
        if attributes:
            token = token.with_attributes(attributes)
        joined = rtc.Room()
        with anyio.fail_after(20):
            # No subscriptions: the demo's people listen to nobody, which keeps their CPU cost near zero.
            await joined.connect(self._url, token.to_jwt(), rtc.RoomOptions(auto_subscribe=False))
        self._rooms.append(joined)
        return joined

    async def publish_microphone(self, joined: rtc.Room) -> None:
        """A microphone track, so that the caller shows up as a publisher (no audio needs to flow)."""
        from livekit import rtc

        track = rtc.LocalAudioTrack.create_audio_track("microphone", rtc.AudioSource(48000, 1))
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        with anyio.fail_after(20):
            await joined.local_participant.publish_track(track, options)

    async def leave(self) -> None:
        for joined in self._rooms:
            with contextlib.suppress(Exception), anyio.move_on_after(5):
                await joined.disconnect()


async def _agent_joined(lk: api.LiveKitAPI, room: str, worker: _Worker) -> None:
    """Until the dispatched agent is in `room` with its state set (LiveKit answers a dispatch before the job)."""
    with anyio.move_on_after(AGENT_SECONDS):
        while True:
            people = (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
            if any(p.kind == api.ParticipantInfo.Kind.AGENT and "lk.agent.state" in p.attributes for p in people):
                return
            await anyio.sleep(0.2)
    raise SystemExit(
        f"livekit-mcp demo: the dispatched agent did not join within {AGENT_SECONDS} s; its log:\n{worker.tail()}"
    )


async def _set_the_scene(lk: api.LiveKitAPI, people: _People, scene: Scene, agent_name: str, worker: _Worker) -> None:
    # Short timeouts: should the demo be killed before it cleans up, LiveKit closes its rooms soon after.
    for room in (scene.support, scene.town_hall, scene.standup):
        await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60, departure_timeout=10))
    caller = await people.join(
        scene.support,
        "sip_+15550100001",
        "Caller",
        kind="sip",
        attributes={
            "sip.phoneNumber": "+15550100001",
            "sip.trunkPhoneNumber": "+15550100000",
            "sip.callStatus": "active",
        },
    )
    await people.publish_microphone(caller)
    await people.join(scene.support, "supervisor", "Supervisor")
    for identity, name in (("host", "Host"), ("guest-1", "Guest 1"), ("guest-2", "Guest 2")):
        await people.join(scene.town_hall, identity, name)
    await people.join(scene.standup, "early-bird", "Early Bird")
    await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=scene.support))
    await _agent_joined(lk, scene.support, worker)


async def _delete_rooms(lk: api.LiveKitAPI, rooms: Sequence[str]) -> None:
    """The demo's rooms, whichever are left: deleting a room disconnects everyone in it and ends its dispatches."""
    with anyio.move_on_after(10):
        left = (await lk.room.list_rooms(api.ListRoomsRequest(names=list(rooms)))).rooms
        for room in left:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room.name))


def _installed(*modules: str) -> bool:
    """Whether the optional extra is there, found without importing it (livekit-agents takes seconds)."""
    try:
        return all(importlib.util.find_spec(module) is not None for module in modules)
    except ImportError:
        return False


async def _real_tour(source: Credentials) -> None:
    if not _installed("livekit.rtc", "livekit.agents"):
        raise SystemExit(f"livekit-mcp: {INSTALL_HINT}")
    try:
        url, key, secret = Settings.load(credentials=source).livekit_credentials()
    except MissingCredentialsError as exc:
        raise SystemExit(f"livekit-mcp demo: {exc}") from None
    if source == "dev":  # the public dev secret is short, and PyJWT would warn about it on every token
        import jwt  # livekit-api's

        warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)
    await _probe(url, key, secret, source)
    # The real-time SDK logs every data channel the server closes as an ERROR; closing them (deleting rooms
    # with the demo's people in them) is the point of the tour, and its real failures are raised, not logged.
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    suffix = secrets.token_hex(3)  # the demo's rooms and agent name: never anyone else's
    rooms = [f"support-call-{suffix}", f"town-hall-{suffix}", f"standup-{suffix}"]
    scene = Scene(rooms[0], rooms[1], rooms[2], list_args={"names": rooms})
    agent_name = f"demo-agent-{suffix}"
    plain = secret.get_secret_value()
    _say(f"LiveKit at {url} (key {key}). Setting the scene in rooms of the demo's own, *-{suffix}:")
    async with api.LiveKitAPI(url, key, plain) as lk, AsyncExitStack() as stack:
        # Undone in reverse: the rooms are deleted first (which ends the agent's job), the worker stops last.
        _say(f"- a livekit-agents worker serving the agent '{agent_name}' (python -m livekit_mcp.demo_agent)")
        worker = await stack.enter_async_context(_agent_worker(url, key, plain, agent_name))
        people = _People(url, key, plain)
        stack.push_async_callback(people.leave)
        stack.push_async_callback(_delete_rooms, lk, rooms)
        _say(f"- {scene.support}: a phone caller (kind SIP) and a supervisor over WebRTC, and the agent dispatched")
        _say(f"- {scene.town_hall}: a host and two guests; {scene.standup}: one early bird")
        await _set_the_scene(lk, people, scene, agent_name, worker)
        _say(f"The agent has joined {scene.support}.")
        await _tour(_server(url, key, plain), scene)
        _say("\nCleaning up: the demo's rooms, its people and its agent worker.")
    how = "`livekit-mcp --dev`" if source == "dev" else "`livekit-mcp` and the same LIVEKIT_* variables"
    _say(f"\nDone. Connect your own assistant to this server with {how} (see README: Connecting a client).")


def run_demo(source: Credentials = "sandbox") -> None:
    """`source`: "sandbox", "dev" (`livekit-server --dev` on :7880) or "env" (the LIVEKIT_* variables)."""
    if source == "sandbox":
        anyio.run(_sandbox_tour)
        return
    anyio.run(_real_tour, source)
    # The real tour joins people through the `livekit` real-time SDK, whose native runtime can abort the process
    # while the interpreter finalizes it ("panic in a function that cannot unwind", SIGABRT) after the tour is
    # done (seen in CI). Everything is printed and cleaned up by now, so leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
