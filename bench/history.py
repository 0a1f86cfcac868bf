"""Figure 9, room history (issue 13): webhook ingest against the receiver's trivial endpoint, store size per event,
room_history over a store of `history_events` events against the bare server's trivial tool, one agent's health
(room_history(agent_name=…)) over the same store and the agent visits its events leave, and find_agent from the
webhook index against the scan of every room.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from livekit import api
from mcp import Client

from bench._procs import BARE, KEY, LIVEKIT_MCP, SECRET, free_port, listening, server_env, stdio
from bench._table import Row
from livekit_mcp.agent_health import SqliteVisits, Visit
from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.store import Event, open_store

SENDERS = 16
"""Requests in flight at once: LiveKit's URL notifier posts from a small pool too."""


def _signed(body: bytes) -> str:
    """The Authorization LiveKit's URL notifier sends: a JWT whose sha256 claim is the body's hash."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(KEY, SECRET).with_sha256(digest).to_jwt()


def _webhook(n: int) -> bytes:
    return json.dumps(
        {
            "event": "participant_joined",
            "id": f"EV_{uuid.uuid4().hex}",
            "createdAt": str(int(time.time())),
            "room": {"sid": f"RM_{n % 500}", "name": f"room-{n % 500}"},
            "participant": {"sid": f"PA_{n}", "identity": f"guest-{n}", "kind": "STANDARD"},
        }
    ).encode()


async def _rate(seconds: float, send: Callable[[int], Awaitable[None]]) -> float:
    """Requests per second, SENDERS at a time, for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def sender() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send(done)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return done / (time.perf_counter() - start)


async def ingest(runs: int, seconds: float) -> list[Row]:
    """Webhooks kept per second (verified, deduplicated, stored in SQLite) against GET /healthz of the same
    receiver, and the store's bytes per event."""
    ingest_rates, floor_rates, sizes = [], [], []
    # Signed ahead of time: the bench process signing while it times would measure itself.
    pool = [(b, _signed(b)) for b in (_webhook(n) for n in range(int(runs * seconds * 2000) + 100))]
    used = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.sqlite3"
        port = free_port()
        env = server_env("http://127.0.0.1:1", 16) | {"LIVEKIT_MCP_STORE": str(store)}
        with listening([*LIVEKIT_MCP, "webhooks", "--port", str(port)], port, env):
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:

                async def post(_: int) -> None:
                    nonlocal used
                    body, token = pool[used % len(pool)]
                    used += 1
                    async with http.post(f"{url}/webhooks/livekit", data=body, headers={"Authorization": token}) as r:
                        await r.read()

                async def health(_: int) -> None:
                    async with http.get(f"{url}/healthz") as r:
                        await r.read()

                await _rate(0.5, health)  # warm-up
                for _ in range(runs):
                    floor_rates.append(await _rate(seconds, health))
                    ingest_rates.append(await _rate(seconds, post))
        db = open_store(str(store))
        kept = len((await db.events(None, 0, 10**9)).events)
        await db.aclose()
        files = [store, store.with_name(store.name + "-wal")]
        sizes.append(sum(f.stat().st_size for f in files if f.exists()) / max(kept, 1))
    ratio = [a / b for a, b in zip(ingest_rates, floor_rates, strict=True)]
    return [
        Row("9", "webhooks kept per second (verified, SQLite)", "/s", ingest_rates),
        Row("9", "receiver's GET /healthz per second (the floor)", "/s", floor_rates),
        Row("9", "ingest ÷ floor", "x", ratio),
        Row("9", "store bytes per event (SQLite, indexes included)", "B", sizes),
    ]


def _fill(path: Path, events: int, hot_room: str) -> None:
    """`events` events in a store file, 100 of them in `hot_room`, written in one transaction (the receiver
    would take minutes to be sent as many)."""
    db = open_store(str(path))  # creates the schema
    del db
    rows = []
    now = time.time()
    for n in range(events):
        room = hot_room if n % max(events // 100, 1) == 0 else f"room-{n % 5000}"
        event = Event(
            f"EV_{n:09d}",
            now - events + n,
            room,
            "participant_joined",
            f"RM_{room}",
            f"p{n}",
            {"kind": "STANDARD"},
            now - events + n,
        )
        rows.append((event.id, event.at, event.received, event.room, event.to_json()))
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO events (id, at, received, room, body) VALUES (?, ?, ?, ?, ?)", rows)


async def _interleaved(
    ours: Client,
    args: dict[str, Any],
    bare: Client,
    runs: int,
    calls: int,
    p50_ours: list[float],
    p50_bare: list[float],
) -> None:
    """`runs` medians of room_history(args) and of the bare server's trivial tool, called in turn `calls` times."""
    for _ in range(runs):
        a, c = [], []
        for _ in range(calls):
            start = time.perf_counter()
            result = await ours.call_tool("room_history", args)
            a.append((time.perf_counter() - start) * 1000)
            if result.is_error:
                raise RuntimeError(f"room_history failed: {result.content}")
            start = time.perf_counter()
            await bare.call_tool("ping", {"text": "x"})
            c.append((time.perf_counter() - start) * 1000)
        p50_ours.append(statistics.median(a))
        p50_bare.append(statistics.median(c))


async def room_history_latency(livekit_url: str, runs: int, calls: int, events: int) -> list[Row]:
    """room_history of a room with 100 events in a store of `events`, over stdio, against the bare server's tool."""
    p50_ours: list[float] = []
    p50_bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.sqlite3"
        _fill(store, events, "hot")
        env = server_env(livekit_url, 16) | {"LIVEKIT_MCP_STORE": str(store)}
        async with AsyncExitStack() as stack:
            ours = await stack.enter_async_context(Client(stdio(LIVEKIT_MCP, env), cache=None))
            bare = await stack.enter_async_context(Client(stdio(BARE, env), cache=None))
            for _ in range(5):
                await ours.call_tool("room_history", {"room": "hot", "since": "30d"})
                await bare.call_tool("ping", {"text": "x"})
            await _interleaved(ours, {"room": "hot", "since": "30d"}, bare, runs, calls, p50_ours, p50_bare)
    return [
        Row("9", f"room_history, 100 events of {events:,} stored, p50", "ms", p50_ours),
        Row("9", "trivial tool, bare SDK, p50", "ms", p50_bare),
        Row("9", "room_history ÷ trivial tool", "x", [a / c for a, c in zip(p50_ours, p50_bare, strict=True)]),
    ]


AGENTS = 10
"""Agent names among the visits of figure 9's agent health store."""


def _fill_visits(path: Path, events: int) -> int:
    """The agent visits `events` webhook events leave (a room of ~20 events each has one agent, one visit in ten
    never joined), spread over AGENTS agent names, written in one transaction like `_fill`; the visits of
    `agent-0`, the one the figure asks about."""
    now, rows = time.time(), []
    for n in range(events // 20):
        at = now - 20 * 86_400 + n * (20 * 86_400 / max(events // 20, 1))
        joined = n % 10 != 0
        visit = Visit(
            f"AD_{n:08d}",
            f"agent-{n % AGENTS}",
            f"room-{n}",
            at,
            dispatch_id=f"AD_{n:08d}",
            room_sid=f"RM_{n}" if joined else "",
            identity=f"agent-AJ_{n}" if joined else "",
            room_started_at=at - 1,
            joined_at=at + 0.4 if joined else None,
            left_at=at + 300 if joined else None,
            reason="CLIENT_INITIATED" if joined else "",
        )
        rows.append((visit.id, visit.agent_name, visit.room, at, visit.room_sid, visit.identity, visit.to_json()))
    with sqlite3.connect(path) as conn:
        conn.executescript(SqliteVisits.SCHEMA)  # the table and indexes the server makes at its first visit
        conn.executemany(
            "INSERT INTO agent_visits (id, agent_name, room, expected_at, room_sid, identity, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows[::AGENTS])


async def agent_health_latency(livekit_url: str, runs: int, calls: int, events: int) -> list[Row]:
    """room_history(agent_name=…) over 30 days for one agent of AGENTS, in a store of `events` events and the
    visits they leave, over stdio, against the bare server's trivial tool."""
    p50_ours: list[float] = []
    p50_bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.sqlite3"
        _fill(store, events, "hot")
        visits = _fill_visits(store, events)
        env = server_env(livekit_url, 16) | {"LIVEKIT_MCP_STORE": str(store)}
        args = {"agent_name": "agent-0", "since": "30d"}
        async with AsyncExitStack() as stack:
            ours = await stack.enter_async_context(Client(stdio(LIVEKIT_MCP, env), cache=None))
            bare = await stack.enter_async_context(Client(stdio(BARE, env), cache=None))
            for _ in range(3):
                result = await ours.call_tool("room_history", args)
                if result.is_error or not isinstance(result.structured_content, dict):
                    raise RuntimeError(f"room_history(agent_name) failed: {result.content}")
                if result.structured_content["agent"]["expected"] != visits:
                    raise RuntimeError(f"agent health read {result.structured_content['agent']}, not {visits} visits")
                await bare.call_tool("ping", {"text": "x"})
            await _interleaved(ours, args, bare, runs, calls, p50_ours, p50_bare)
    return [
        Row(
            "9",
            f"agent health of 1 agent of {AGENTS} ({visits:,} visits), {events:,} events stored, p50",
            "ms",
            p50_ours,
        ),
        Row("9", "agent health ÷ trivial tool", "x", [a / c for a, c in zip(p50_ours, p50_bare, strict=True)]),
    ]


async def find_agent_index(
    admin: SandboxAdmin, livekit_url: str, runs: int, rooms: int, latency_ms: int, concurrency: int
) -> list[Row]:
    """find_agent over `rooms` rooms (an agent in every hundredth) answered from the webhook index, against the
    same question answered by scanning every room; each LiveKit call delayed by `latency_ms`. The sandbox's own
    webhooks feed the receiver, as a real server's would."""
    with_agents = [f"idx-{n:05d}" for n in range(0, rooms, 100)]
    index_ms: list[float] = []
    scan_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.sqlite3"
        port = free_port()
        env = server_env(livekit_url, concurrency) | {"LIVEKIT_MCP_STORE": str(store)}
        with listening([*LIVEKIT_MCP, "webhooks", "--port", str(port)], port, env):
            await admin.reset(seed=False)
            await admin.send_webhooks_to([f"http://127.0.0.1:{port}/webhooks/livekit"])
            try:
                await admin.populate(rooms=rooms, prefix="idx-")
                for room in with_agents:
                    await admin.join_agent(room, "support-agent")
                await _received(store, "participant_joined", len(with_agents))
            finally:
                await admin.send_webhooks_to([])
        scan_env = env | {"LIVEKIT_MCP_HISTORY": "off", "LIVEKIT_MCP_STORE": "memory"}
        async with AsyncExitStack() as stack:
            indexed = await stack.enter_async_context(Client(stdio(LIVEKIT_MCP, env), cache=None))
            scanning = await stack.enter_async_context(Client(stdio(LIVEKIT_MCP, scan_env), cache=None))
            answers = [await _agents(indexed), await _agents(scanning)]  # warm-up, and the answers compared
            if answers[0] != answers[1] or len(answers[0]) != len(with_agents):
                raise RuntimeError(f"find_agent answered differently: index {answers[0]}, scan {answers[1]}")
            await admin.fault("*", latency_ms=latency_ms)
            try:
                for _ in range(runs):
                    for client, times in ((indexed, index_ms), (scanning, scan_ms)):
                        start = time.perf_counter()
                        await _agents(client)
                        times.append((time.perf_counter() - start) * 1000)
            finally:
                await admin.clear_faults()
    return [
        Row("9", f"find_agent over {rooms:,} rooms from the webhook index, {latency_ms} ms per call", "ms", index_ms),
        Row("9", "find_agent scanning every room (history off)", "ms", scan_ms),
        Row(
            "9",
            "scan ÷ index (same answer)",
            "x",
            [s / i for s, i in zip(scan_ms, index_ms, strict=True)],
            20,
            at_least=True,
        ),
    ]


async def _received(store: Path, event: str, count: int) -> None:
    """Wait until the receiver has kept `count` events named `event` (the sandbox sends them in its own time)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        db = open_store(str(store))
        try:
            kept = [e for e in (await db.events(None, 0, 10**9)).events if e.event == event]
        finally:
            await db.aclose()
        if len(kept) >= count:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the receiver did not keep {count} {event} events within 300 s")


async def _agents(client: Client) -> list[tuple[str, str]]:
    result = await client.call_tool("find_agent", {})
    if result.is_error or not isinstance(result.structured_content, dict):
        raise RuntimeError(f"find_agent failed: {result.content}")
    return sorted((a["room"], a["identity"]) for a in result.structured_content["agents"])
