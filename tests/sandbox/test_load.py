"""Concurrent requests keep the state consistent; large states list correctly."""

from __future__ import annotations

import anyio
import pytest
from livekit import api

from livekit_mcp.sandbox import Sandbox, SandboxAdmin

# Sandbox-only: fault injection and bulk data are the sandbox's own admin API.
from .conftest import sandbox_only

pytestmark = [pytest.mark.anyio, sandbox_only]


async def test_200_concurrent_creates_and_removes_leave_consistent_counts(
    lk: api.LiveKitAPI, admin: SandboxAdmin
) -> None:
    await admin.populate(room="busy", participants=100)

    async def create(n: int) -> None:
        await lk.room.create_room(api.CreateRoomRequest(name=f"concurrent-{n % 50}"))

    async def remove(n: int) -> None:
        await lk.room.remove_participant(api.RoomParticipantIdentity(room="busy", identity=f"participant-{n:02d}"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(create, n)
                tg.start_soon(remove, n)

    rooms = {r.name: r for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms}
    assert {f"concurrent-{n}" for n in range(50)} <= set(rooms)
    assert len(rooms) == 51  # get-or-create: 100 creates of 50 names make 50 rooms
    assert rooms["busy"].num_participants == 0
    assert list((await lk.room.list_participants(api.ListParticipantsRequest(room="busy"))).participants) == []


async def test_concurrent_joins_and_leaves_keep_the_room_counts_right(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    async def churn(n: int) -> None:
        await admin.join("churn", f"p{n}", tracks=[{"type": "AUDIO"}])
        if n % 2:
            await admin.leave("churn", f"p{n}")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(churn, n)

    (room,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=["churn"]))).rooms
    listed = (await lk.room.list_participants(api.ListParticipantsRequest(room="churn"))).participants
    assert room.num_participants == room.num_publishers == len(listed) == 50


async def test_10000_rooms_all_list(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    assert await admin.populate(rooms=10_000, prefix="load-") == {"rooms": 10_000, "participants": 0}
    rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
    assert len(rooms) == 10_000
    assert len({r.sid for r in rooms}) == 10_000
    (one,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=["load-4242"]))).rooms
    assert one.name == "load-4242"


async def test_a_5000_participant_room_lists_everyone(lk: api.LiveKitAPI, sandbox: Sandbox) -> None:
    sandbox.state.populate(room="crowd", participants=5000)
    listed = (await lk.room.list_participants(api.ListParticipantsRequest(room="crowd"))).participants
    assert len(listed) == 5000
    assert listed[0].identity == "participant-0000"
    assert listed[-1].identity == "participant-4999"
    (room,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=["crowd"]))).rooms
    assert room.num_participants == 5000
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room="crowd", identity="participant-2500"))
    assert p.identity == "participant-2500"
