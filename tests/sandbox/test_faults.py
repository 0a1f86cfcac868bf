"""Fault injection through the admin API: latency, errors, dropped connections, malformed bodies."""

from __future__ import annotations

import time

import aiohttp
import anyio
import pytest
from google.protobuf.message import DecodeError
from livekit import api

from livekit_mcp.sandbox import Sandbox, SandboxAdmin, SandboxError

from .conftest import sandbox_only
from .support import KEY, SECRET, code_of

# Sandbox-only: fault injection and bulk data are the sandbox's own admin API.
pytestmark = [pytest.mark.anyio, sandbox_only]


async def list_rooms(lk: api.LiveKitAPI) -> int:
    return len((await lk.room.list_rooms(api.ListRoomsRequest())).rooms)


async def test_injected_latency_delays_the_answer(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("RoomService/ListRooms", latency_ms=300)
    started = time.monotonic()
    with anyio.fail_after(5):
        await list_rooms(lk)
    assert time.monotonic() - started >= 0.3


async def test_latency_applies_only_to_the_named_method(lk: api.LiveKitAPI, admin: SandboxAdmin, room: str) -> None:
    await admin.fault("RoomService/ListRooms", latency_ms=5000)
    with anyio.fail_after(2):
        await lk.room.list_participants(api.ListParticipantsRequest(room=room))


async def test_an_injected_error_is_answered_as_that_twirp_error(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("RoomService/ListRooms", error=("unavailable", "node draining"))
    assert await code_of(lk.room.list_rooms(api.ListRoomsRequest())) == ("unavailable", "node draining", 503)


async def test_an_injected_error_on_star_applies_to_every_method(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("*", error="internal")
    assert (await code_of(lk.agent_dispatch.list_dispatch("any")))[::2] == ("internal", 500)
    assert (await code_of(lk.room.list_rooms(api.ListRoomsRequest())))[::2] == ("internal", 500)


async def test_a_dropped_connection_reaches_the_client_as_a_connection_error(
    lk: api.LiveKitAPI, admin: SandboxAdmin
) -> None:
    await admin.fault("RoomService/ListRooms", drop=True)
    with anyio.fail_after(5), pytest.raises(aiohttp.ClientError):
        await list_rooms(lk)


async def test_a_malformed_answer_fails_protobuf_decoding(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("RoomService/ListRooms", malformed=True)
    with pytest.raises(DecodeError):
        await list_rooms(lk)


async def test_a_fault_with_times_applies_to_that_many_calls_only(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("RoomService/ListRooms", error="unavailable", times=2)
    for _ in range(2):
        assert (await code_of(lk.room.list_rooms(api.ListRoomsRequest())))[0] == "unavailable"
    assert await list_rooms(lk) == 0


async def test_clearing_faults_restores_normal_answers(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("*", error="unavailable")
    await admin.clear_faults()
    assert await list_rooms(lk) == 0


async def test_an_exact_method_fault_wins_over_star(lk: api.LiveKitAPI, admin: SandboxAdmin) -> None:
    await admin.fault("*", error="internal")
    await admin.fault("RoomService/ListRooms", error="unavailable")
    assert (await code_of(lk.room.list_rooms(api.ListRoomsRequest())))[0] == "unavailable"


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("RoomService/NoSuchMethod", {}),
        ("*", {"error": "no_such_code"}),
        ("*", {"latency_ms": -1}),
        ("*", {"times": 0}),
    ],
)
async def test_a_bad_fault_is_refused_with_400(admin: SandboxAdmin, method: str, options: dict[str, object]) -> None:
    with pytest.raises(SandboxError) as caught:
        await admin.fault(method, **options)  # type: ignore[arg-type]
    assert caught.value.status == 400


async def test_stop_does_not_wait_for_a_request_held_by_an_injected_latency() -> None:
    sandbox = Sandbox(keys={KEY: SECRET}, seed=False)
    url = await sandbox.start()
    sandbox.state.fault("RoomService/ListRooms", latency_ms=60_000, times=1)

    async def list_until_dropped(lk: api.LiveKitAPI) -> None:
        with pytest.raises(aiohttp.ClientError):
            await list_rooms(lk)

    async with api.LiveKitAPI(url, KEY, SECRET) as lk, anyio.create_task_group() as tg:
        tg.start_soon(list_until_dropped, lk)
        with anyio.fail_after(5):
            # Bounded poll: the request holds the fault once the server has taken it; no event to await.
            while sandbox.state.snapshot()["faults"]:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            await sandbox.stop()
