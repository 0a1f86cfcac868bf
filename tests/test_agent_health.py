"""Agent health over time (agent_health.py): from the dispatches made through this server and the webhooks kept, for
an agent name and a period, the rooms it was expected in, how many it joined and how fast, how its sessions ended and
the rooms where it never came.

The same suite on each store's adapter (a SQLite file, a real redis-server, memory); then through the receiver and
room_history(agent_name=…) and its resource on a server built in process; then on the real server, its webhooks
reaching the session's receiver and a real agent worker answering one dispatch while another name has none.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from mcp import Client

from livekit_mcp.agent_health import Visit, expect, health_of, note_webhook, visits_of
from livekit_mcp.store import Event, MemoryStore, Retention, SqliteStore, Store, open_store
from realkit.agents import RealAgentWorker
from realkit.livekit_server import RealLiveKitServer
from realkit.processes import until
from tests.conftest import InProcess, LiveKitTarget, Receiver, call, fails, http_in_process, ok, text
from tests.test_webhooks import deliver, webhook

pytestmark = pytest.mark.anyio

NOW = time.time()


@pytest.fixture(params=["sqlite", "redis", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened: Store = open_store(str(tmp_path / "store.sqlite3"))
    elif request.param == "redis":
        opened = open_store(request.getfixturevalue("redis_url"))
        await opened._redis.flushdb()  # type: ignore[attr-defined]  # each test starts from an empty Redis
    else:
        opened = MemoryStore()
    yield opened
    await opened.aclose()


def told(
    event: str, room: str, at: float, identity: str = "", agent: str | None = None, **detail: Any
) -> tuple[Event, dict[str, Any]]:
    """A kept event and the webhook it came from (as the seam parses it: protobuf field names)."""
    if agent is not None:
        detail |= {"kind": "AGENT", **({"agent_name": agent} if agent else {})}
    kept = Event(f"EV_{uuid.uuid4().hex}", int(at), room, event, f"RM_{room}", identity, detail, at)
    participant = {"identity": identity, "joined_at_ms": str(int(at * 1000))} if identity else {}
    started = {"creation_time_ms": str(int((NOW - 3600) * 1000))}
    return kept, {"room": {"name": room, "sid": f"RM_{room}", **started}, "participant": participant}


async def tell(store: Store, *events: tuple[Event, dict[str, Any]]) -> None:
    for event, body in events:
        assert await store.add(event)
        await note_webhook(store, event, body)


async def test_an_agents_record_counts_its_rooms_joins_times_endings_and_the_rooms_it_never_came_to(
    store: Store,
) -> None:
    t = NOW - 600
    for room in ("a", "b", "c"):
        await expect(store, "helper", room, f"AD_{room}", t)
    await expect(store, "other", "a", "AD_other", t)  # another agent's dispatch into the same room
    await expect(store, "helper", "e", "AD_e", NOW - 5)  # made moments ago: waiting, not missed
    await tell(
        store,
        told("participant_joined", "a", t + 0.5, "agent-1", "helper"),
        told("participant_left", "a", t + 60, "agent-1", "helper", reason="PARTICIPANT_REMOVED"),
        told("participant_joined", "a", t + 61, "agent-1", "helper"),  # told again: still one visit
        told("participant_joined", "b", t + 2.5, "agent-2", "helper"),
        told("participant_left", "b", t + 90, "agent-2", "helper", reason="CLIENT_INITIATED"),
        told("room_finished", "c", t + 300),
        # A room it came to on a dispatch made elsewhere: expected all the same, timed from the room's start.
        told("participant_joined", "d", t + 10, "agent-3", "helper"),
    )
    health = await health_of(store, "helper", NOW - 7200, now=NOW)  # room d started an hour ago
    assert (health.expected, health.joined, health.never_came, health.waiting) == (5, 3, 1, 1)
    assert health.join_rate == 0.75
    assert health.from_dispatch is not None
    assert (health.from_dispatch.count, health.from_dispatch.p50, health.from_dispatch.max) == (2, 0.5, 2.5)
    assert health.from_room_start is not None
    assert health.from_room_start.count == 3
    assert health.endings == {"PARTICIPANT_REMOVED": 1, "CLIENT_INITIATED": 1}
    assert health.still_in == 1
    assert [(m.room, m.dispatch_id, m.room_ended_at is not None) for m in health.missed or []] == [("c", "AD_c", True)]
    # The other agent's record is its own; a period before everything is empty; a policy hides rooms.
    other = await health_of(store, "other", NOW - 7200, now=NOW)
    assert (other.expected, other.joined, other.never_came) == (1, 0, 1)
    assert (await health_of(store, "helper", NOW - 7200, now=NOW - 5000)).expected == 0
    assert (await health_of(store, "helper", NOW - 7200, lambda room: room != "c", now=NOW)).never_came == 0


async def test_a_join_answers_the_latest_open_dispatch_and_old_visits_go_with_the_retention(store: Store) -> None:
    t = NOW - 600
    await expect(store, "helper", "a", "AD_lost", t)
    await expect(store, "helper", "a", "AD_answered", t + 30)
    await tell(store, told("participant_joined", "a", t + 31, "agent-1", "helper"))
    health = await health_of(store, "helper", 0, now=NOW)
    assert [m.dispatch_id for m in health.missed or []] == ["AD_lost"]
    assert health.from_dispatch is not None
    assert health.from_dispatch.max == 1.0
    await expect(store, "helper", "old", "AD_old", NOW - 40 * 86_400)
    await visits_of(store).prune(NOW - Retention().max_age)
    assert (await health_of(store, "helper", 0, now=NOW)).expected == 2


async def test_the_record_of_one_agent_is_read_through_its_index_not_a_scan(tmp_path: Path) -> None:
    db = open_store(str(tmp_path / "store.sqlite3"))
    assert isinstance(db, SqliteStore)
    try:
        await expect(db, "helper", "a", "AD_a", NOW)
        plan = await db._run(
            "EXPLAIN QUERY PLAN SELECT body FROM agent_visits WHERE agent_name = ? AND expected_at BETWEEN ? AND ? "
            "ORDER BY expected_at DESC, id DESC LIMIT ?",
            ("helper", 0, NOW, 10),
        )
        assert "USING INDEX agent_visits_agent" in " ".join(str(row) for row in plan)
    finally:
        await db.aclose()


def test_a_visit_reads_back_as_it_was_kept() -> None:
    visit = Visit("AD_1", "helper", "a", NOW, dispatch_id="AD_1", joined_at=NOW + 1, reason="CLIENT_INITIATED")
    assert Visit.from_json(visit.to_json()) == visit


# --- Through the receiver, room_history(agent_name=…) and the resource ---------------------------------


async def test_room_history_tells_an_agents_record_from_dispatches_made_here_and_the_webhooks(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    env = livekit.env(LIVEKIT_MCP_STORE=str(tmp_path / "h.sqlite3"), LIVEKIT_MCP_ALLOWED_ROOMS="desk-*")
    async with http_in_process(env) as served, served.client() as c:
        came = await ok(c, "dispatch_agent", room="desk-1", agent_name="helper", wait_seconds=0)
        lost = await ok(c, "dispatch_agent", room="desk-2", agent_name="helper", wait_seconds=0)
        agent = {"identity": "agent-AJ_1", "kind": "AGENT", "attributes": {"lk.agent_name": "helper"}}
        joined_ms = str(int(time.time() * 1000) + 800)
        await deliver(
            served,
            livekit,
            webhook(
                "participant_joined",
                room={"sid": "RM_1", "name": "desk-1"},
                participant=agent | {"joinedAtMs": joined_ms},
            ),
            webhook(
                "participant_left",
                room={"sid": "RM_1", "name": "desk-1"},
                participant=agent | {"disconnectReason": "ROOM_DELETED"},
            ),
            webhook("room_finished", room={"sid": "RM_2", "name": "desk-2"}, participant={}),
            # A room the policy hides: its visit is not told.
            webhook(
                "participant_joined", room={"sid": "RM_3", "name": "secret"}, participant=agent | {"identity": "a3"}
            ),
        )
        record = await ok(c, "room_history", agent_name="helper", since="1h")
        said = text(await call(c, "room_history", agent_name="helper"))
        both = await fails(c, "room_history", agent_name="helper", room="desk-1")
        read = await c.read_resource("livekit://agents/helper/health")
    health = record["agent"]
    assert (health["expected"], health["joined"], health["never_came"]) == (2, 1, 1)
    assert health["endings"] == {"ROOM_DELETED": 1}
    assert 0 <= health["from_dispatch"]["max"] < 5
    assert health["missed"] == [
        {
            "room": "desk-2",
            "expected_at": health["missed"][0]["expected_at"],
            "dispatch_id": lost["dispatch"]["id"],
            "room_ended_at": health["missed"][0]["room_ended_at"],
        }
    ]
    assert came["dispatch"]["id"] != lost["dispatch"]["id"]
    assert "expected in 2 room(s), joined 1" in said
    assert "never came to 'desk-2'" in said
    assert "secret" not in said
    assert "agent_name" in both
    (content,) = read.contents
    assert json.loads(getattr(content, "text", "{}"))["agent"]["never_came"] == 1


async def test_an_agent_that_did_not_come_is_told_with_when_history_last_saw_its_name_join(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    async with (
        http_in_process(livekit.env(LIVEKIT_MCP_STORE=str(tmp_path / "h.sqlite3"))) as served,
        served.client() as c,
    ):
        agent = {"identity": "agent-AJ_1", "kind": "AGENT", "attributes": {"lk.agent_name": "helper"}}
        await deliver(
            served, livekit, webhook("participant_joined", room={"sid": "RM_0", "name": "desk-0"}, participant=agent)
        )
        seen = await ok(c, "dispatch_agent", room="desk-9", agent_name="helper", wait_seconds=0.3)
        unseen = await ok(c, "dispatch_agent", room="desk-9", agent_name="nobody", wait_seconds=0.3)
    assert seen["arrival"]["status"] == "not_joined"
    assert seen["arrival"]["last_joined_at"]
    assert "History saw 'helper' join room 'desk-0'" in seen["arrival"]["why"]
    assert "last_joined_at" not in unseen["arrival"]
    assert "History has no join of 'nobody' in the last 7 days" in unseen["arrival"]["why"]


async def test_with_history_off_the_record_says_so(livekit: LiveKitTarget, in_process: InProcess) -> None:
    server = in_process(env=livekit.env(LIVEKIT_MCP_HISTORY="off", LIVEKIT_MCP_STORE="memory"))
    async with Client(server) as c:
        record = await ok(c, "room_history", agent_name="helper")
    assert record["history"] == "off"


# --- On the real server -----------------------------------------------------------------------------------


ENDED_BY_DELETION = {"ROOM_DELETED", "CONNECTION_ABORTED"}
"""How a real agent's session ends when its room is deleted: participant_left with ROOM_DELETED, or
participant_connection_aborted when LiveKit's telemetry no longer counts its connection as up."""


async def test_the_real_servers_webhooks_and_dispatches_made_here_tell_an_agents_record(
    in_process: InProcess,
    real_target: LiveKitTarget,
    real_livekit: RealLiveKitServer,
    real_webhooks: Receiver,
    real_lkapi: api.LiveKitAPI,
    agent_worker: Callable[[str], RealAgentWorker],
) -> None:
    worker = agent_worker("real-helper")
    came, lost, nobody = (f"health-{uuid.uuid4().hex[:6]}" for _ in range(3))
    # A server reading and writing the receiver's store: its dispatches and the real server's webhooks meet there.
    server = in_process(env=real_target.env(LIVEKIT_MCP_STORE=str(real_webhooks.store)))
    try:
        async with Client(server) as c:
            since = "1h"

            async def settled(name: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                found: list[dict[str, Any]] = []

                async def ready() -> bool:
                    found[:] = [(await ok(c, "room_history", agent_name=name, since=since))["agent"]]
                    return check(found[0])

                try:
                    await until(f"the webhooks tell {name}'s record", ready, 30)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; the record: {found}") from None
                return found[0]

            joined = await ok(c, "dispatch_agent", room=came, agent_name=worker.agent_name)
            assert joined["arrival"]["status"] == "joined"
            # LiveKit lists the agent while it is still connecting, and tells participant_joined once it is active: a
            # room deleted before that ends a session no webhook began (participant_connection_aborted, no join).
            await settled(worker.agent_name, lambda h: h.get("joined", 0) >= 1)
            await ok(c, "dispatch_agent", room=lost, agent_name=nobody, wait_seconds=0)
            await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=came))
            await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=lost))
            helper = await settled(worker.agent_name, lambda h: bool(ENDED_BY_DELETION & set(h.get("endings") or {})))
            missing = await settled(nobody, lambda h: bool(h.get("missed")) and "room_ended_at" in h["missed"][0])
    finally:
        for room in (came, lost):
            with contextlib.suppress(api.TwirpError):
                await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
    assert helper["joined"] >= 1
    assert helper["from_dispatch"]["max"] < 10
    assert ENDED_BY_DELETION & set(helper["endings"])
    assert (missing["expected"], missing["joined"], missing["never_came"]) == (1, 0, 1)
    assert missing["missed"][0]["room"] == lost
