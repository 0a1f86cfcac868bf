"""Figure 9, room history (issue 13): webhook ingest against the receiver's trivial endpoint, store size per event,
and room_history over a store of `history_events` events against the bare server's trivial tool.
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

import aiohttp
from livekit import api
from mcp import Client

from bench._procs import BARE, KEY, LIVEKIT_MCP, SECRET, free_port, listening, server_env, stdio
from bench._table import Row
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


async def room_history_latency(livekit_url: str, runs: int, calls: int, events: int) -> list[Row]:
    """room_history of a room with 100 events in a store of `events`, over stdio, against the bare server's tool."""
    p50_ours, p50_bare = [], []
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
            for _ in range(runs):
                a, c = [], []
                for _ in range(calls):
                    start = time.perf_counter()
                    result = await ours.call_tool("room_history", {"room": "hot", "since": "30d"})
                    a.append((time.perf_counter() - start) * 1000)
                    if result.is_error:
                        raise RuntimeError(f"room_history failed: {result.content}")
                    start = time.perf_counter()
                    await bare.call_tool("ping", {"text": "x"})
                    c.append((time.perf_counter() - start) * 1000)
                p50_ours.append(statistics.median(a))
                p50_bare.append(statistics.median(c))
    return [
        Row("9", f"room_history, 100 events of {events:,} stored, p50", "ms", p50_ours),
        Row("9", "trivial tool, bare SDK, p50", "ms", p50_bare),
        Row("9", "room_history ÷ trivial tool", "x", [a / c for a, c in zip(p50_ours, p50_bare, strict=True)]),
    ]
