"""One run of every benchmark of issue 8, printed as a table of figures and ratios (see bench/README.md).

Every figure is measured side by side with its floor in the same run: on shared machines an absolute time
means little, a ratio measured at the same moment means a lot. The sandbox, our server and the bare SDK
server each run in their own process, as a host would start them; this process only drives them.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import functools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from livekit import api
from mcp import Client
from mcp.types import CallToolResult, ListToolsResult, TextContent

import livekit_mcp
from bench import history
from bench._procs import (
    BARE,
    KEY,
    LIVEKIT_MCP,
    SECRET,
    children,
    cpu_seconds,
    free_port,
    http_command,
    listening,
    rss_mib,
    sandbox,
    server_env,
    stdio,
)
from bench._table import Row, percentile, table
from bench.real import crowd, real_server
from livekit_mcp.config import TOOLSETS
from livekit_mcp.sandbox import SandboxAdmin
from realkit.livekit_server import RealLiveKitServer

ROOM = "bench-10"
CROWD = "crowd"
TOOLS_LIST_BUDGET = 16 * 1024
"""tools/list of every toolset together, in bytes (about 4,000 tokens; tests/test_interface.py holds the same)."""


@dataclass(frozen=True)
class Sizes:
    """Every size of a run; the defaults are the issue's, `QUICK` a smoke run."""

    runs: int = 5  # runs of each figure: the table shows their median and spread
    calls: int = 200  # timed calls per run, for the per-call figures
    cold_starts: int = 15  # one start varies by ±30 % on a shared machine: the median needs more
    rooms: int = 500
    latency_ms: int = 20
    concurrency: int = 16  # LIVEKIT_MCP_CONCURRENCY given to the server
    crowd: int = 5000
    small_crowd: int = 500  # figure 4 again on a room of this many
    crowd_calls: int = 10
    # The real server's people join over WebRTC: ~0.1 s each here, and each join tells everyone in the room.
    real_rooms: int = 50  # figure 3 on the real server: rooms with an agent each
    real_crowd: int = 200  # figure 4 on the real server: ~30 s of joins here
    clients: int = 32
    load_seconds: float = 5.0
    history_events: int = 100_000  # figure 9: events in the store room_history answers from
    index_rooms: int = 5000  # figure 9: rooms find_agent answers from the webhook index


QUICK = Sizes(
    runs=1,
    calls=10,
    cold_starts=1,
    rooms=20,
    crowd=200,
    small_crowd=50,
    crowd_calls=3,
    real_rooms=2,
    real_crowd=4,
    clients=4,
    load_seconds=0.3,
    history_events=300,
    index_rooms=100,
)
"""A smoke run (the test suite runs it): every figure once, at sizes that only show the code paths work."""


@dataclass(frozen=True)
class Bench:
    sizes: Sizes
    livekit_url: str
    sandbox_pid: int
    admin: SandboxAdmin
    lk: api.LiveKitAPI

    @property
    def env(self) -> dict[str, str]:
        return server_env(self.livekit_url, self.sizes.concurrency)

    async def direct_list(self, room: str) -> api.ListParticipantsResponse:
        """B: the LiveKit call itself, made with livekit-api."""
        return await self.lk.room.list_participants(api.ListParticipantsRequest(room=room))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return _ms(start)


async def ok(client: Client, tool: str, **args: Any) -> CallToolResult:
    """A tool call that must succeed: timing a failure would measure nothing."""
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {_text(result)}")
    return result


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def _open(
    stack: AsyncExitStack, transport: str, command: Sequence[str], env: dict[str, str], mode: str = "auto"
) -> Client:
    """An SDK client of a server started on `transport`, speaking the protocol era `mode` names (the SDK's
    `Client(mode=)`); both are closed with the stack."""
    if transport == "stdio":
        target: Any = stdio(command, env)
    else:
        port = free_port()
        stack.enter_context(listening(http_command(command, port), port, env))
        target = f"http://127.0.0.1:{port}/mcp"
    # No response cache: every call must reach the server.
    return await stack.enter_async_context(Client(target, cache=None, mode=mode))


async def _ten_people(admin: SandboxAdmin) -> None:
    """ROOM as a model would meet it: people with tracks, a phone caller and a voice agent."""
    await admin.reset(seed=False)
    mic = {"type": "AUDIO", "source": "MICROPHONE"}
    for n in range(7):
        await admin.join(ROOM, f"guest-{n}", name=f"Guest {n}", tracks=[mic])
    await admin.join(ROOM, "host", name="Host", tracks=[mic, {"type": "VIDEO", "source": "CAMERA"}])
    sip = {"sip.phoneNumber": "+15550100001", "sip.trunkPhoneNumber": "+15550100000", "sip.callStatus": "active"}
    await admin.join(ROOM, "sip_+15550100001", kind="SIP", name="Caller", attributes=sip, tracks=[mic])
    await admin.join_agent(ROOM, "support-agent")


# --- 1. tool-call overhead ----------------------------------------------------------------------------

ERAS = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}
"""HTTP is measured on each protocol era, by the SDK client's `mode`: the handshake era (which negotiates
2025-11-25) and the modern one. One HTTP app serves both, through different transports of the SDK."""
ERA_LIMIT = 1.5
"""Our HTTP call on 2026-07-28 against the same call on 2025-11-25, measured interleaved: an era that pays a fixed
extra delay per request (as a Nagle stall did, ~40 ms) shows here as a ratio far above 1."""


async def overhead(b: Bench, transport: str) -> list[Row]:
    """A: list_participants through MCP; B: the same LiveKit call direct; C: a trivial tool on a bare server."""
    await _ten_people(b.admin)
    return await _overhead(b.sizes, b.env, lambda: b.direct_list(ROOM), transport, transport)


async def _overhead(
    s: Sizes, env: dict[str, str], direct: Callable[[], Awaitable[object]], transport: str, label: str
) -> list[Row]:
    """Figure 1 on whichever LiveKit `env` names, ROOM populated; rows labelled `label: ...`, and over HTTP
    `label ERA: ...` for each protocol era, every era's calls interleaved with the others'."""
    eras = {"": "auto"} if transport == "stdio" else {f" {era}": mode for era, mode in ERAS.items()}
    async with AsyncExitStack() as stack:
        calls: dict[tuple[str, str], Callable[[], Awaitable[object]]] = {}
        for era, mode in eras.items():
            ours = await _open(stack, transport, LIVEKIT_MCP, env, mode)
            bare = await _open(stack, transport, BARE, env, mode)
            calls[era, "A"] = functools.partial(ok, ours, "list_participants", room=ROOM)
            calls[era, "C"] = functools.partial(ok, bare, "ping", text="x")
        calls["", "B"] = direct
        for call in calls.values():  # warm-up: connections, caches, first imports
            for _ in range(10):
                await call()
        p50: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
        p99: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
        for _ in range(s.runs):
            samples: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
            for _ in range(s.calls):  # interleaved, so that drift on the machine hits all of them alike
                for key, call in calls.items():
                    samples[key].append(await _timed(call))
            for key, values in samples.items():
                p50[key].append(statistics.median(values))
                p99[key].append(percentile(values, 99))
    what = {"A": "A list_participants via MCP", "B": "B same call, livekit-api", "C": "C trivial tool, bare SDK"}
    rows = [Row("1", f"{label}: {what['B']}, {q}", "ms", runs["", "B"]) for q, runs in (("p50", p50), ("p99", p99))]
    for era in eras:
        for side in ("A", "C"):
            rows += [
                Row("1", f"{label}{era}: {what[side]}, {q}", "ms", runs[era, side])
                for q, runs in (("p50", p50), ("p99", p99))
            ]
        for q, runs in (("p50", p50), ("p99", p99)):
            ratio = [(a - b_) / c for a, b_, c in zip(runs[era, "A"], runs["", "B"], runs[era, "C"], strict=True)]
            rows.append(Row("1", f"{label}{era}: (A − B) / C, {q}", "x", ratio, limit=1.25 if q == "p50" else None))
    if transport != "stdio":
        modern, handshake = (p50[f" {era}", "A"] for era in ("2026-07-28", "2025-11-25"))
        ratio = [m / h for m, h in zip(modern, handshake, strict=True)]
        rows.append(Row("1", f"{label}: A p50, 2026-07-28 / 2025-11-25", "x", ratio, limit=ERA_LIMIT))
    return rows


# --- 2. cold start, and 7. memory ---------------------------------------------------------------------


async def cold_start(b: Bench) -> tuple[list[Row], list[Row]]:
    """Spawn to the first tools/list reply over stdio, ours against the bare SDK server; RSS while idle.

    Ours gets the LiveKit variables, as a host gives them: its start-up (settings, opening LiveKit in the
    lifespan) is part of what the user waits for, so it is counted. Both are spawned the same way, one
    after the other in alternating order, and driven by the same client.
    """
    await _ten_people(b.admin)
    spawn: dict[str, list[float]] = {"ours": [], "bare": []}
    idle: dict[str, list[float]] = {"ours": [], "bare": []}
    busy: dict[str, list[float]] = {"ours": [], "bare": []}
    servers = {"ours": (LIVEKIT_MCP, "list_participants", {"room": ROOM}), "bare": (BARE, "ping", {"text": "x"})}
    for n in range(b.sizes.cold_starts):
        for name in sorted(servers, reverse=n % 2 == 1):
            command, tool, args = servers[name]
            before = children()
            start = time.perf_counter()
            async with Client(stdio(command, b.env), cache=None) as client:
                await client.list_tools()
                spawn[name].append(_ms(start))
                (pid,) = children() - before
                idle[name].append(rss_mib(pid))
                await ok(client, tool, **args)
                busy[name].append(rss_mib(pid))
    ratio = [o / s for o, s in zip(spawn["ours"], spawn["bare"], strict=True)]
    starts = [
        Row("2", "spawn → first tools/list, livekit-mcp", "ms", spawn["ours"]),
        Row("2", "spawn → first tools/list, bare SDK server", "ms", spawn["bare"]),
        Row("2", "cold start ratio, ours / bare", "x", ratio, limit=1.15),
    ]
    memory = [
        Row("7", "RSS idle after tools/list, livekit-mcp (stdio)", "MiB", idle["ours"]),
        Row("7", "RSS after one list_participants, livekit-mcp", "MiB", busy["ours"]),
        Row("7", "RSS idle after tools/list, bare SDK server", "MiB", idle["bare"]),
        Row("7", "RSS idle ratio, ours / bare", "x", [o / s for o, s in zip(idle["ours"], idle["bare"], strict=True)]),
    ]
    return starts, memory


# --- 3. fan-out ---------------------------------------------------------------------------------------


async def fan_out(b: Bench) -> list[Row]:
    """find_agent over every room, each LiveKit call delayed by the sandbox, against the ideal waves."""
    s = b.sizes
    await b.admin.reset(seed=False)
    width = len(str(s.rooms - 1))
    limit = asyncio.Semaphore(32)

    async def room(n: int) -> None:
        async with limit:
            name = f"fan-{n:0{width}d}"
            await b.admin.join(name, "caller", tracks=[{"type": "AUDIO"}])
            await b.admin.join_agent(name, "support-agent")

    await asyncio.gather(*(room(n) for n in range(s.rooms)))
    # ListRooms, then the rooms' ListParticipants `concurrency` at a time, each taking the latency and no CPU.
    ideal = (1 + math.ceil(s.rooms / s.concurrency)) * s.latency_ms
    times: list[float] = []
    direct: list[float] = []
    # CPU per LiveKit call (ListRooms, then ListParticipants per room), on each side: it is what keeps each
    # wave of calls longer than the latency alone.
    cpu: dict[str, list[float]] = {"server": [], "sandbox": []}
    async with AsyncExitStack() as stack:
        before = children()
        client = await _open(stack, "stdio", LIVEKIT_MCP, b.env)
        pids = {"server": next(iter(children() - before)), "sandbox": b.sandbox_pid}
        await ok(client, "find_agent")  # warm-up, without latency
        await b.admin.fault("*", latency_ms=s.latency_ms)
        try:
            for _ in range(s.runs):
                used = {side: cpu_seconds(pid) for side, pid in pids.items()}
                start = time.perf_counter()
                result = await ok(client, "find_agent")
                times.append(_ms(start))
                for side, pid in pids.items():
                    cpu[side].append((cpu_seconds(pid) - used[side]) * 1000 / (s.rooms + 1))
                start = time.perf_counter()
                listed = await _direct_find_agents(b)
                direct.append(_ms(start))
                found = len((result.structured_content or {}).get("agents", []))
                if not found == listed == s.rooms:
                    raise RuntimeError(f"find_agent found {found}, the direct calls {listed}, in {s.rooms} rooms")
        finally:
            await b.admin.clear_faults()
    return [
        Row("3", f"find_agent over {s.rooms} rooms, {s.latency_ms} ms per LiveKit call", "ms", times),
        Row("3", f"ideal (1 + ⌈{s.rooms} / {s.concurrency}⌉) × {s.latency_ms} ms", "ms", [ideal]),
        Row("3", "fan-out ratio, measured / ideal", "x", [t / ideal for t in times], limit=1.25),
        # The floor of any Python client: the same calls with livekit-api alone, as many in flight.
        Row("3", f"ListRooms + {s.rooms} ListParticipants, livekit-api, {s.concurrency} in flight", "ms", direct),
        Row("3", "direct / ideal (the floor)", "x", [d / ideal for d in direct]),
        Row("3", "fan-out ratio, ours / direct", "x", [t / d for t, d in zip(times, direct, strict=True)]),
        Row("3", "CPU per LiveKit call, livekit-mcp process", "ms", cpu["server"]),
        Row("3", "CPU per LiveKit call, sandbox process", "ms", cpu["sandbox"]),
    ]


# --- 4. large rooms -----------------------------------------------------------------------------------


async def large_room(b: Bench) -> list[Row]:
    """list_participants(limit=50) on a crowded room against the direct call (which returns everyone), for a room
    of `small_crowd` and one of `crowd`."""
    rows = []
    for people in (b.sizes.small_crowd, b.sizes.crowd):
        await b.admin.reset(seed=False)
        await b.admin.populate(room=CROWD, participants=people)
        rows += await _large_room(b.sizes, b.env, lambda: b.direct_list(CROWD), people, "")
    return rows


async def _large_room(
    s: Sizes, env: dict[str, str], direct: Callable[[], Awaitable[object]], people: int, label: str
) -> list[Row]:
    """Figure 4 on whichever LiveKit `env` names, CROWD populated with `people`."""
    ours: list[float] = []
    straight: list[float] = []
    summary: list[float] = []  # get_room: everyone counted, only the agents converted
    trivial: list[float] = []  # C: the bare SDK server's trivial tool, for the floor (B + C) / B
    cpu: list[float] = []  # our server's CPU per call (/proc, 10 ms resolution over `crowd_calls` calls)
    async with AsyncExitStack() as stack:
        before = children()
        client = await _open(stack, "stdio", LIVEKIT_MCP, env)
        (pid,) = children() - before
        bare = await _open(stack, "stdio", BARE, env)
        ping: Callable[[], Awaitable[object]] = lambda: ok(bare, "ping", text="x")  # noqa: E731
        tool: Callable[[], Awaitable[object]] = lambda: ok(client, "list_participants", room=CROWD, limit=50)  # noqa: E731
        room: Callable[[], Awaitable[object]] = lambda: ok(client, "get_room", room=CROWD)  # noqa: E731
        await tool()
        await room()
        await ping()
        await direct()
        for _ in range(s.runs):
            used = cpu_seconds(pid)
            a = [await _timed(tool) for _ in range(s.crowd_calls)]
            cpu.append((cpu_seconds(pid) - used) * 1000 / s.crowd_calls)
            d = [await _timed(direct) for _ in range(s.crowd_calls)]
            g = [await _timed(room) for _ in range(s.crowd_calls)]
            c = [await _timed(ping) for _ in range(s.crowd_calls)]
            ours.append(statistics.median(a))
            straight.append(statistics.median(d))
            summary.append(statistics.median(g))
            trivial.append(statistics.median(c))
    ratio = [o / d for o, d in zip(ours, straight, strict=True)]
    # No MCP server can answer in less than the LiveKit call plus one SDK round trip: (B + C) / B.
    floor = [(d + c) / d for d, c in zip(straight, trivial, strict=True)]
    return [
        Row("4", f"{label}list_participants(limit=50), {people:,} people, via MCP", "ms", ours),
        Row("4", f"{label}list_participants(limit=50), {people:,} people, CPU of livekit-mcp", "ms", cpu),
        Row("4", f"{label}ListParticipants, {people:,} people, livekit-api", "ms", straight),
        Row("4", f"{label}large room ratio, {people:,} people, ours / direct", "x", ratio, limit=1.5),
        Row("4", f"{label}C trivial tool, bare SDK", "ms", trivial),
        Row("4", f"{label}the floor (B + C) / B", "x", floor),
        Row("4", f"{label}ours / the floor", "x", [r / f for r, f in zip(ratio, floor, strict=True)]),
        Row("4", f"{label}get_room, {people:,} people, via MCP", "ms", summary),
        Row(
            "4",
            f"{label}get_room / direct ListParticipants",
            "x",
            [g / d for g, d in zip(summary, straight, strict=True)],
        ),
    ]


# --- 5. context cost ----------------------------------------------------------------------------------


def _tools_bytes(listed: ListToolsResult) -> int:
    return _compact(
        {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"meta"}) for t in listed.tools]}
    )


def _compact(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def context_cost(b: Bench) -> list[Row]:
    """Bytes a model reads: tools/list, and list_participants per participant against raw protojson."""
    await _ten_people(b.admin)
    async with AsyncExitStack() as stack:
        client = await _open(stack, "stdio", LIVEKIT_MCP, b.env)
        tools = await client.list_tools()
        result = await ok(client, "list_participants", room=ROOM)
        every = await _open(stack, "stdio", LIVEKIT_MCP, b.env | {"LIVEKIT_MCP_TOOLSETS": ",".join(TOOLSETS)})
        all_tools = await every.list_tools()
    people = (await b.direct_list(ROOM)).participants
    n = len(people)
    # LiveKit's JSON API emits every field with snake_case names (LIVEKIT_BEHAVIOR.md, section 1): that is what
    # a model would read if handed LiveKit's own answer.
    raw = (
        sum(
            _compact(MessageToDict(p, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
            for p in people
        )
        / n
    )
    text = len(_text(result).encode()) / n
    structured = _compact(result.structured_content) / n
    # The tools as a client is given them (the protocol era's envelope, the SDK's server info, is not ours to
    # budget): the bytes tests/test_interface.py holds to the same budget.
    listing = _tools_bytes(tools)
    everything = _tools_bytes(all_tools)
    return [
        Row("5", f"tools/list, default toolsets ({len(tools.tools)} tools)", "B", [listing], limit=12_000, below=True),
        Row(
            "5",
            f"tools/list, every toolset ({len(all_tools.tools)} tools)",
            "B",
            [everything],
            limit=TOOLS_LIST_BUDGET,
            below=True,
        ),
        Row("5", "raw protojson per participant", "B", [raw]),
        Row("5", "list_participants text per participant", "B", [text]),
        Row("5", "list_participants structuredContent per participant", "B", [structured]),
        Row("5", "text / raw", "x", [text / raw], limit=0.25),
        Row("5", "structuredContent / raw", "x", [structured / raw], limit=0.25),
    ]


# --- 6. HTTP under load -------------------------------------------------------------------------------


async def _load_run(
    clients: Sequence[Client], tool: str, args: dict[str, Any], seconds: float
) -> tuple[list[float], int, float]:
    """Every client calls `tool` in a loop for `seconds`: the latencies, the failures, the calls per second."""
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + seconds

    async def loop(client: Client) -> None:
        nonlocal failed
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                failed += (await client.call_tool(tool, args)).is_error
            except Exception:
                failed += 1
            latencies.append(_ms(start))

    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    return latencies, failed, len(latencies) / (time.perf_counter() - start)


async def _load(b: Bench, command: Sequence[str], tool: str, args: dict[str, Any]) -> tuple[list[Row], list[float]]:
    """`clients` SDK clients calling in a loop over HTTP for `load_seconds`, `runs` times."""
    s = b.sizes
    port = free_port()
    rates: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    errors: list[float] = []
    with listening(http_command(command, port), port, b.env) as process:
        async with AsyncExitStack() as stack:
            url = f"http://127.0.0.1:{port}/mcp"
            clients = [await stack.enter_async_context(Client(url, cache=None)) for _ in range(s.clients)]
            await clients[0].call_tool(tool, args)
            before = rss_mib(process.pid)
            for _ in range(s.runs):
                latencies, failed, rate = await _load_run(clients, tool, args, s.load_seconds)
                rates.append(rate)
                p50.append(statistics.median(latencies))
                p99.append(percentile(latencies, 99))
                errors.append(failed)
            after = rss_mib(process.pid)
    rows = [
        Row("6", f"{s.clients} clients: calls/s", "/s", rates),
        Row("6", f"{s.clients} clients: latency p50", "ms", p50),
        Row("6", f"{s.clients} clients: latency p99", "ms", p99),
        Row("6", f"{s.clients} clients: errors", "", errors, limit=0),
        Row("6", "RSS before load", "MiB", [before]),
        Row("6", "RSS after load", "MiB", [after]),
    ]
    return rows, rates


async def http_load(b: Bench) -> list[Row]:
    """list_participants on ours under load; the bare server's trivial tool under the same load for scale."""
    await _ten_people(b.admin)
    rows, ours = await _load(b, LIVEKIT_MCP, "list_participants", {"room": ROOM})
    _, bare = await _load(b, BARE, "ping", {"text": "x"})
    ratio = [o / s for o, s in zip(ours, bare, strict=True)]
    return [*rows, Row("6", "calls/s ratio, ours / bare SDK trivial tool", "x", ratio)]


# --- 1, 3 and 4 on a real livekit-server ------------------------------------------------------------
#
# Nothing is injected: every figure is the real server's own time on loopback (Go, Redis, no media flowing)
# with its floor measured beside it in the same run. The people are WebRTC participants (bench/real.py).


@dataclass(frozen=True)
class Real:
    sizes: Sizes
    server: RealLiveKitServer
    lk: api.LiveKitAPI

    @property
    def env(self) -> dict[str, str]:
        return server_env(self.server.url, self.sizes.concurrency)

    async def direct_list(self, room: str) -> api.ListParticipantsResponse:
        return await self.lk.room.list_participants(api.ListParticipantsRequest(room=room))


async def real_overhead(r: Real) -> list[Row]:
    """Figure 1 on the real server: ROOM as in the sandbox's (the host without a camera), over both transports."""
    async with crowd(r.server, r.lk) as people:
        await asyncio.gather(
            *(people.join(ROOM, f"guest-{n}", mic=True) for n in range(7)),
            people.join(ROOM, "host", mic=True),
            people.join(ROOM, "sip_+15550100001", kind="sip", attributes={"sip.phoneNumber": "+15550100001"}, mic=True),
            people.agent(ROOM, "agent-support", "support-agent"),
        )
        rows = []
        for transport in ("stdio", "http"):
            rows += await _overhead(r.sizes, r.env, lambda: r.direct_list(ROOM), transport, f"real {transport}")
        return rows


async def _direct_find_agents(r: Real | Bench) -> int:
    """The floor of find_agent: ListRooms, then every room's ListParticipants, as many in flight as ours."""
    limit = asyncio.Semaphore(r.sizes.concurrency)

    async def agents(room: str) -> int:
        async with limit:
            people = (await r.direct_list(room)).participants
        return sum(p.kind == api.ParticipantInfo.Kind.AGENT for p in people)

    rooms = (await r.lk.room.list_rooms(api.ListRoomsRequest())).rooms
    return sum(await asyncio.gather(*(agents(room.name) for room in rooms)))


async def _counted(r: Real, rooms: int) -> None:
    """Until ListRooms counts someone in every room: the real server updates its counts every few seconds."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = (await r.lk.room.list_rooms(api.ListRoomsRequest())).rooms
        if sum(room.num_participants > 0 for room in listed) >= rooms:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"ListRooms did not count the participants of {rooms} rooms within 30 s")


async def real_fan_out(r: Real) -> list[Row]:
    """find_agent over `real_rooms` rooms (a caller and an agent each) against the same calls with livekit-api."""
    s = r.sizes
    ours: list[float] = []
    direct: list[float] = []
    async with crowd(r.server, r.lk) as people, AsyncExitStack() as stack:
        rooms = [f"fan-{n:03d}" for n in range(s.real_rooms)]
        # A caller in each room too: LiveKit's room counts leave agents out, and find_agent skips rooms counted empty.
        await asyncio.gather(
            *(people.join(room, "caller") for room in rooms),
            *(people.agent(room, "agent", "support-agent") for room in rooms),
        )
        await _counted(r, s.real_rooms)
        client = await _open(stack, "stdio", LIVEKIT_MCP, r.env)
        await ok(client, "find_agent")  # warm-up
        await _direct_find_agents(r)
        for _ in range(s.runs):  # alternating, one of each per run
            start = time.perf_counter()
            result = await ok(client, "find_agent")
            ours.append(_ms(start))
            start = time.perf_counter()
            found = await _direct_find_agents(r)
            direct.append(_ms(start))
            mine = len((result.structured_content or {}).get("agents", []))
            if not mine == found == s.real_rooms:
                raise RuntimeError(f"find_agent found {mine}, the direct calls {found}, in {s.real_rooms} rooms")
    return [
        Row("3", f"real: find_agent over {s.real_rooms} rooms", "ms", ours),
        Row(
            "3",
            f"real: ListRooms + {s.real_rooms} ListParticipants, livekit-api, {s.concurrency} in flight",
            "ms",
            direct,
        ),
        Row("3", "real: fan-out ratio, ours / direct", "x", [o / d for o, d in zip(ours, direct, strict=True)]),
    ]


async def real_large_room(r: Real) -> list[Row]:
    """Figure 4 on the real server, with `real_crowd` WebRTC participants in CROWD."""
    async with crowd(r.server, r.lk) as people:
        await asyncio.gather(*(people.join(CROWD, f"person-{n:04d}") for n in range(r.sizes.real_crowd)))
        return await _large_room(r.sizes, r.env, lambda: r.direct_list(CROWD), r.sizes.real_crowd, "real: ")


async def run_real(sizes: Sizes) -> list[Row]:
    """Figures 1, 3 and 4 on a real livekit-server, or none if it cannot run here (said on stderr)."""
    with real_server() as server:
        if server is None:
            return []
        async with api.LiveKitAPI(server.url, KEY, SECRET) as lk:
            r = Real(sizes, server, lk)
            _say(f"real livekit-server {server.version}, 1: overhead over stdio and http")
            rows = await real_overhead(r)
            _say(f"real livekit-server, 3: fan-out over {sizes.real_rooms} rooms")
            rows += await real_fan_out(r)
            _say(f"real livekit-server, 4: large room of {sizes.real_crowd}")
            rows += await real_large_room(r)
            server.check_alive()
            return rows


# --- the run ------------------------------------------------------------------------------------------


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    cores = sum(line.startswith("processor") for line in cpuinfo)
    return (
        f"{cpu}, {cores} cores; {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"mcp {version('mcp')}, livekit-api {version('livekit-api')}, livekit-mcp {version('livekit-mcp')}"
    )


async def run(sizes: Sizes, real: bool = True) -> list[Row]:
    """Every figure on the sandbox, then 1, 3 and 4 on a real server; in the table, by figure."""
    rows = await run_sandbox(sizes)
    if real:
        rows += await run_real(sizes)
    return sorted(rows, key=lambda row: row.key)  # stable: each figure's rows keep their order


async def run_sandbox(sizes: Sizes) -> list[Row]:
    with sandbox() as (url, pid):
        async with SandboxAdmin(url, KEY, SECRET) as admin:
            lk = api.LiveKitAPI(url, KEY, SECRET)
            try:
                b = Bench(sizes, url, pid, admin, lk)
                _say("2, 7: cold start and memory")
                starts, memory = await cold_start(b)
                rows = []
                for transport in ("stdio", "http"):
                    _say(f"1: overhead over {transport}")
                    rows += await overhead(b, transport)
                rows += starts
                _say("3: fan-out")
                rows += await fan_out(b)
                _say("4: large room")
                rows += await large_room(b)
                _say("5: context cost")
                rows += await context_cost(b)
                _say("6: HTTP under load")
                rows += await http_load(b)
                _say("9: room history")
                rows += await history.ingest(sizes.runs, sizes.load_seconds)
                rows += await history.room_history_latency(url, sizes.runs, sizes.calls, sizes.history_events)
                rows += await history.agent_health_latency(url, sizes.runs, sizes.calls, sizes.history_events)
                rows += await history.find_agent_index(
                    admin, url, sizes.runs, sizes.index_rooms, sizes.latency_ms, sizes.concurrency
                )
                return rows + memory
            finally:
                await lk.aclose()


def _arguments(argv: Sequence[str] | None) -> tuple[Sizes, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description="livekit-mcp against its floor, as ratios")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of under a minute")
    parser.add_argument("--no-real", action="store_true", help="the sandbox only: no real livekit-server rows")
    for field in fields(Sizes):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), metavar="N")
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name) is not None}
    return replace(QUICK if args.quick else Sizes(), **given), not args.no_real


def main(argv: Sequence[str] | None = None) -> int:
    sizes, real = _arguments(argv)
    # Every server started here runs from this checkout. Its bytecode is compiled first, as pip compiles an
    # installed package's: with PYTHONDONTWRITEBYTECODE set, each start would compile the changed modules again.
    compileall.compile_dir(Path(livekit_mcp.__file__).parent, quiet=1)
    started = time.perf_counter()
    rows = asyncio.run(run(sizes, real))
    print(f"Machine: {machine()}")
    print(f"Sizes: {', '.join(f'{f.name}={getattr(sizes, f.name)}' for f in fields(Sizes))}")
    print()
    print(table(rows))
    print()
    missed = [f"{r.key} {r.label}" for r in rows if r.verdict == "MISS"]
    print(f"{len(rows)} figures in {time.perf_counter() - started:.0f} s; targets missed: {len(missed)}")
    for label in missed:
        print(f"  MISS {label}")
    return 0
