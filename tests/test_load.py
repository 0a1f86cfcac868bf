"""Many clients at once over HTTP: every call that should succeed does, and the server process ends as it
started: its memory flat after warm-up, no file or socket left open, nothing still talking to LiveKit.

Bounded for CI (32 clients, 2,048 mixed calls); a longer soak belongs to bench/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client

from livekit_mcp.sandbox import SandboxAdmin
from realkit.processes import connections, open_fds, rss_kib, until
from tests.conftest import LiveKitTarget, Served, text

pytestmark = pytest.mark.anyio

CLIENTS = 32
WARM_UP = 8  # calls per client before memory is measured
CALLS = 64  # calls per client in all
RSS_GROWTH_KIB = 16 * 1024  # after warm-up, over 1,792 calls; about 2 MiB was seen, and 9 KiB a call would fail


def mix(i: int) -> list[tuple[str, dict[str, Any]]]:
    """The calls client `i` cycles through: reads and changes on its own room, and fan-outs over all rooms."""
    room, user = f"load-{i:02d}", f"user-{i:02d}"
    return [
        ("list_rooms", {"limit": 10}),
        ("get_room", {"room": room}),
        ("list_participants", {"room": room}),
        ("get_participant", {"room": room, "identity": user}),
        ("find_agent", {"room": room}),
        ("list_dispatches", {"room": room}),
        ("update_room_metadata", {"room": room, "metadata": f"call by client {i}"}),
        ("send_data", {"room": room, "data": "ping", "topic": "load"}),
        ("update_participant", {"room": room, "identity": user, "attributes": {"seen": str(i)}}),
        ("create_room", {"room": f"{room}-side"}),
        ("list_rooms", {"names": [room, "nowhere"]}),
        ("find_agent", {"agent_name": "helper"} if i % 4 == 0 else {"room": room, "agent_name": "helper"}),
    ]


async def test_many_clients_at_once_lose_no_call_and_leave_the_server_as_it_was(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    for i in range(CLIENTS):
        await admin.join(f"load-{i:02d}", f"user-{i:02d}", tracks=[{"type": "AUDIO"}])
        await admin.join_agent(f"load-{i:02d}", "helper", identity=f"agent-{i:02d}")
    server = serve_http()
    pid, livekit_port = server.process.pid, int(livekit.url.rsplit(":", 1)[1])
    async with Client(server.url) as client:
        await client.call_tool("list_rooms", {})  # imports and first connections, before the baseline
    fds_before = open_fds(pid) - connections(pid, livekit_port)

    failures: list[str] = []
    done = 0
    warm = anyio.Event()
    rss: dict[str, int] = {}

    async def client_run(i: int) -> None:
        nonlocal done
        calls = mix(i)
        async with Client(server.url) as client:
            for n in range(CALLS):
                if n == WARM_UP:
                    done += 1
                    if done == CLIENTS:
                        rss["warm"] = rss_kib(pid)
                        warm.set()
                    await warm.wait()  # everyone warmed up before memory is read
                tool, args = calls[n % len(calls)]
                try:
                    result = await client.call_tool(tool, args)
                    if result.is_error:
                        failures.append(f"{tool} {args}: {text(result)}")
                except Exception as exc:  # a protocol error is a failed call too
                    failures.append(f"{tool} {args}: {exc!r}")

    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            for i in range(CLIENTS):
                tg.start_soon(client_run, i)
    rss["end"] = rss_kib(pid)

    assert failures == []
    assert rss["end"] - rss["warm"] < RSS_GROWTH_KIB, rss
    # Every change arrived, once: the rooms (and their side rooms) exist, and each got every message sent to it.
    rooms = {r["name"]: r for r in (await admin.state())["rooms"]}
    sends = sum(1 for n in range(CALLS) if mix(0)[n % len(mix(0))][0] == "send_data")
    assert len(rooms) == 2 * CLIENTS
    assert {name: len(r["data"]) for name, r in rooms.items() if not name.endswith("-side")} == {
        f"load-{i:02d}": sends for i in range(CLIENTS)
    }
    # The clients are gone: their connections closed, and no request of theirs left running against LiveKit.
    await until(
        "the server holds no more files or sockets than before the clients came",
        lambda: open_fds(pid) - connections(pid, livekit_port) <= fds_before,
    )
