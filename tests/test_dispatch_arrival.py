"""Dispatch you can trust: dispatch_agent waits (bounded) for its agent and otherwise says what LiveKit knows, and
get_room says of each dispatch whether its agent is there. On the sandbox (its simulated workers), then on the real
livekit-server with real `livekit-agents` workers that are free, busy (at capacity), stopped or never started.

LiveKit's own state is checked after each call: the dispatch listed or gone, the agent in the room or not.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import api
from mcp import Client

from livekit_mcp.models import Dispatch, DispatchInfo, Job, Participant
from livekit_mcp.sandbox import SandboxAdmin
from realkit.agents import RealAgentWorker, start_real_agent_worker
from realkit.livekit_server import RealLiveKitServer
from realkit.processes import until
from tests.conftest import InProcess, LiveKitTarget, call, fails, ok, text

pytestmark = pytest.mark.anyio


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def agents_in(lk: api.LiveKitAPI, room: str, agent_name: str) -> list[str]:
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return [
        p.identity
        for p in listed.participants
        if p.kind == api.ParticipantInfo.Kind.AGENT and p.attributes.get("lk.agent_name") == agent_name
    ]


async def dispatch_ids(lk: api.LiveKitAPI, room: str) -> set[str]:
    return {d.id for d in await lk.agent_dispatch.list_dispatch(room)}


async def timed(client: Client, tool: str, **args: Any) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    return await ok(client, tool, **args), time.monotonic() - start


# --- the state of a dispatch, from LiveKit's answer ---------------------------------------------------


def test_a_dispatch_without_agent_is_pending_then_no_job_or_agent_gone_by_its_age_and_jobs() -> None:
    made = 1_000_000.0
    dispatch = Dispatch(id="AD_a", agent_name="helper", room="r", created_at=made)
    agent = Participant(
        sid="PA_1", identity="agent-AJ_1", kind="AGENT", state="ACTIVE", attributes={"lk.agent_name": "helper"}
    )
    assert DispatchInfo.of(dispatch, [agent], now=made + 60).agent == "agent_present"
    assert DispatchInfo.of(dispatch, [], now=made + 1).agent == "pending"
    old = DispatchInfo.of(dispatch, [], now=made + 60)
    assert old.agent == "no_job"
    assert "no worker registered or free" in old.line
    ran = dispatch.model_copy(update={"jobs": [Job(id="AJ_1", status="JS_RUNNING", participant_identity="agent-AJ_1")]})
    assert DispatchInfo.of(ran, [], now=made + 60).agent == "agent_gone"


# --- on the sandbox ------------------------------------------------------------------------------------


async def test_dispatch_agent_waits_for_its_agent_and_names_it(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.set_workers(["helper"])
    await admin.join("desk", "customer")
    async with Client(in_process()) as client:
        made = await ok(client, "dispatch_agent", room="desk", agent_name="helper")
        detail = await ok(client, "get_room", room="desk")
    arrival = made["arrival"]
    assert arrival["status"] == "joined"
    assert await agents_in(lkapi, "desk", "helper") == [arrival["identity"]]
    (dispatch,) = [d for d in detail["dispatches"] if d["id"] == made["dispatch"]["id"]]
    assert (dispatch["agent"], dispatch["agents_in_room"]) == ("agent_present", [arrival["identity"]])


async def test_an_agent_already_in_the_room_is_not_taken_for_the_new_one(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    earlier = await admin.join_agent("desk", "helper")  # there before; no worker serves "helper" now
    async with Client(in_process()) as client:
        made = await ok(client, "dispatch_agent", room="desk", agent_name="helper", wait_seconds=0.5)
    assert made["arrival"]["status"] == "not_joined"
    assert await agents_in(lkapi, "desk", "helper") == [earlier["identity"]]


async def test_without_a_worker_it_says_so_within_the_wait_and_the_dispatch_stays(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    async with Client(in_process()) as client:
        result = await call(client, "dispatch_agent", room="desk", agent_name="nobody", wait_seconds=0.6)
        start = time.monotonic()
        detail = await ok(client, "get_room", room="desk")
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    arrival = result.structured_content["arrival"]
    assert arrival["status"] == "not_joined"
    assert 0.6 <= arrival["seconds"] < 3
    assert "no worker registered for 'nobody'" in text(result)
    assert "does not retry" in text(result)
    dispatch_id = result.structured_content["dispatch"]["id"]
    assert dispatch_id in await dispatch_ids(lkapi, "desk")  # LiveKit keeps it: it is there, with no agent
    assert await agents_in(lkapi, "desk", "nobody") == []
    (dispatch,) = [d for d in detail["dispatches"] if d["id"] == dispatch_id]
    assert dispatch["agent"] == "pending"  # a second old: it could still come
    assert time.monotonic() - start < 2


async def test_not_waiting_says_so(in_process: InProcess, admin: SandboxAdmin) -> None:
    async with Client(in_process()) as client:
        made, took = await timed(client, "dispatch_agent", room="desk", agent_name="nobody", wait_seconds=0)
    assert made["arrival"]["status"] == "not_waited"
    assert took < 2


@pytest.mark.parametrize("what", ["dispatch", "room"])
async def test_a_dispatch_deleted_while_waiting_ends_the_wait_and_says_it_is_gone(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI, what: str
) -> None:
    await admin.join("desk", "customer")
    answers: list[tuple[dict[str, Any], float]] = []
    async with Client(in_process()) as client, anyio.create_task_group() as tg:

        async def dispatch() -> None:
            answers.append(await timed(client, "dispatch_agent", room="desk", agent_name="nobody", wait_seconds=20))

        tg.start_soon(dispatch)
        listed: list[str] = []

        async def made() -> bool:
            listed[:] = [d.id for d in await lkapi.agent_dispatch.list_dispatch("desk") if d.agent_name == "nobody"]
            return bool(listed)

        await until("the dispatch is made", made)
        if what == "dispatch":
            await lkapi.agent_dispatch.delete_dispatch(listed[0], "desk")
        else:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room="desk"))
    ((result, took),) = answers
    assert result["arrival"]["status"] == f"{what}_gone"
    assert took < 10  # it stopped waiting once LiveKit said so, long before the 20 s


@pytest.mark.parametrize("wait", [-1, 31, "soon"])
async def test_a_wait_out_of_bounds_is_refused_before_anything_reaches_livekit(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI, wait: object
) -> None:
    async with Client(in_process()) as client:
        message = await fails(client, "dispatch_agent", room="untouched", agent_name="helper", wait_seconds=wait)
    assert "wait_seconds" in message
    assert (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["untouched"]))).rooms == []


# --- on the real server: workers free, busy, stopped, never started -------------------------------------


@pytest.fixture
async def rooms(real_lkapi: api.LiveKitAPI) -> AsyncIterator[Callable[[str], str]]:
    """Unique room names; every room named is deleted afterwards."""
    named: list[str] = []

    def name(prefix: str) -> str:
        named.append(unique(prefix))
        return named[-1]

    yield name
    for room in named:
        with contextlib.suppress(api.TwirpError):
            await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


async def test_real_dispatches_say_whether_their_agent_came_from_a_free_busy_stopped_or_missing_worker(
    in_process: InProcess,
    real_target: LiveKitTarget,
    real_livekit: RealLiveKitServer,
    real_lkapi: api.LiveKitAPI,
    agent_worker: Callable[[str], RealAgentWorker],
    rooms: Callable[[str], str],
    tmp_path: Path,
) -> None:
    free = agent_worker("real-helper")
    busy = start_real_agent_worker(real_livekit, unique("busy"), tmp_path, "--full")
    never = unique("never")
    # Each in a room of its own, none existing before: CreateDispatch creates it.
    where = {name: rooms("arrive") for name in (free.agent_name, busy.agent_name, never)}
    answers: dict[str, dict[str, Any]] = {}

    async def not_joined(name: str, room: str, wait: float, answer: dict[str, Any]) -> None:
        arrival = answer["arrival"]
        assert arrival["status"] == "not_joined", (name, arrival)
        assert wait <= arrival["seconds"] < wait + 4
        assert f"no worker registered for '{name}'" in arrival["why"]
        # What LiveKit has: the dispatch, and no agent.
        assert answer["dispatch"]["id"] in await dispatch_ids(real_lkapi, room)
        assert await agents_in(real_lkapi, room, name) == []

    try:
        async with Client(in_process(env=real_target.env())) as client:
            async with anyio.create_task_group() as tg:
                for name, room in where.items():

                    async def dispatch(name: str = name, room: str = room) -> None:
                        answers[name] = await ok(client, "dispatch_agent", room=room, agent_name=name, wait_seconds=3)

                    tg.start_soon(dispatch)

            joined = answers[free.agent_name]["arrival"]
            assert joined["status"] == "joined", joined
            assert await agents_in(real_lkapi, where[free.agent_name], free.agent_name) == [joined["identity"]]
            await not_joined(busy.agent_name, where[busy.agent_name], 3, answers[busy.agent_name])
            await not_joined(never, where[never], 3, answers[never])
            assert b"received job request" not in busy.log.read_bytes()  # LiveKit never offered the busy one a job

            # The worker dies (killed, as a crash would): its name's next dispatch finds no worker either.
            busy.process.kill()
            busy.process.wait()
            after = rooms("arrive")
            dead = await ok(client, "dispatch_agent", room=after, agent_name=busy.agent_name, wait_seconds=2)
            await not_joined(busy.agent_name, after, 2, dead)

            # get_room: the free worker's agent is there; once removed, its dispatch is told as taken by a worker
            # whose agent is gone, and the dispatch nobody took as such, each once LiveKit lists the job or once it is
            # older than a job listing can lag (a bounded wait: they were made seconds ago).
            detail = await ok(client, "get_room", room=where[free.agent_name])
            assert {d["agent_name"]: d["agent"] for d in detail["dispatches"]}[free.agent_name] == "agent_present"
            await real_lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room=where[free.agent_name], identity=joined["identity"])
            )

            async def told(room: str, name: str, state: str) -> bool:
                found = await ok(client, "get_room", room=room)
                return bool({d["agent_name"]: d["agent"] for d in found["dispatches"]}[name] == state)

            await until("get_room tells the dispatch nobody took", lambda: told(where[never], never, "no_job"), 15)
            await until(
                "get_room tells the dispatch whose agent was removed",
                lambda: told(where[free.agent_name], free.agent_name, "agent_gone"),
                15,
            )
            said = text(await call(client, "get_room", room=where[never]))
            assert "no worker registered or free for this name took it" in said
    finally:
        busy.stop()


async def test_a_real_dispatch_deleted_while_waiting_is_told_gone(
    in_process: InProcess, real_target: LiveKitTarget, real_lkapi: api.LiveKitAPI, rooms: Callable[[str], str]
) -> None:
    room, nobody = rooms("gone"), unique("never")
    await real_lkapi.room.create_room(api.CreateRoomRequest(name=room))
    answers: list[tuple[dict[str, Any], float]] = []
    async with Client(in_process(env=real_target.env())) as client, anyio.create_task_group() as tg:

        async def dispatch() -> None:
            answers.append(await timed(client, "dispatch_agent", room=room, agent_name=nobody, wait_seconds=20))

        tg.start_soon(dispatch)
        listed: list[str] = []

        async def made() -> bool:
            listed[:] = [d.id for d in await real_lkapi.agent_dispatch.list_dispatch(room) if d.agent_name == nobody]
            return bool(listed)

        await until("the dispatch is made", made)
        await real_lkapi.agent_dispatch.delete_dispatch(listed[0], room)
    ((result, took),) = answers
    assert result["arrival"]["status"] == "dispatch_gone"
    assert took < 10
    assert listed[0] not in await dispatch_ids(real_lkapi, room)
