"""Agent health over time: for an agent name and a period, the rooms it was expected in, how many it joined and how
fast, how its sessions ended, and the rooms where it never came.

Kept as visits, one per expected arrival of an agent in a room, beside room history in the same store:
- `expect`: a dispatch made through this server (dispatch_agent) opens a visit;
- `note_webhook`: the receiver tells each agent's participant_joined (the visit opened for it, the latest open one of
  that agent in that room, or a visit of its own when it came on a dispatch made elsewhere), its participant_left or
  participant_connection_aborted (how its session ended), and each room_finished (the visits still open there are
  rooms it never came to);
- `health_of`: the answer for one agent over a period, read through an index by agent name and time: the work is
  bounded by that agent's visits in the period (at most MAX_VISITS), never a scan of every event.

Each store (`store.py`) gets an adapter here, on the store's own connection: a table with its indexes in SQLite,
sorted sets and hashes in Redis, dictionaries in memory. Kept apart from store.py and history.py (what the receiver
and the live index own) on purpose; `tests/test_agent_health.py` runs the same suite on each.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from livekit_mcp.errors import StoreError
from livekit_mcp.models import AgentHealth, MissedRoom, Seconds, iso
from livekit_mcp.store import Event, MemoryStore, RedisStore, SqliteStore, Store
from livekit_mcp.text import shown

log = logging.getLogger(__name__)

MATCH_WINDOW = 3600.0
"""Seconds before a join within which a dispatch of that agent to that room is the one it answered."""
CLOCK_SLACK = 5.0
"""Seconds a join may be stamped before its dispatch: LiveKit's clock and ours are not the same one."""
WAITING = 60.0
"""Seconds after a dispatch during which no agent yet is `waiting`, not `never_came`."""
MAX_VISITS = 20_000
"""Visits one answer reads at most (the latest of the period): the bound of its work."""
MISSED_SHOWN = 20
PRUNE_EVERY = 300.0


@dataclass(frozen=True)
class Visit:
    """One expected arrival of an agent in a room, and what became of it."""

    id: str
    agent_name: str
    room: str
    expected_at: float
    """When it was dispatched through this server, else when the room started (else when it joined)."""
    dispatch_id: str = ""
    room_sid: str = ""
    identity: str = ""
    room_started_at: float | None = None
    joined_at: float | None = None
    left_at: float | None = None
    reason: str = ""
    room_ended_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Visit:
        return cls(**json.loads(text))


class VisitStore(Protocol):
    """Where visits are kept: a small interface each store's adapter implements."""

    async def put(self, visit: Visit) -> None:
        """Keep `visit`, replacing the one with its id."""
        ...

    async def of_room(self, room: str, since: float, until: float) -> list[Visit]:
        """The visits of `room` expected in [since, until], oldest first."""
        ...

    async def of_session(self, room_sid: str, identity: str) -> Visit | None:
        """The visit of the agent `identity` joined to the room session `room_sid`."""
        ...

    async def of_agent(self, agent_name: str, since: float, until: float, limit: int) -> list[Visit]:
        """The latest `limit` visits of `agent_name` expected in [since, until], oldest first."""
        ...

    async def prune(self, before: float) -> None:
        """Drop the visits expected before `before` (the store's retention)."""
        ...


# --- Kept from the dispatches and the webhooks -----------------------------------------------------------


async def expect(store: Store, agent_name: str, room: str, dispatch_id: str, at: float) -> None:
    """A dispatch made through this server: a visit opens. History is a record, not a guardrail: a store that is
    down costs the record, never the dispatch."""
    try:
        await visits_of(store).put(Visit(dispatch_id, agent_name, room, at, dispatch_id=dispatch_id))
    except StoreError as exc:
        log.warning("the dispatch is not in agent health: %s", exc)


def _seconds(value: Any, ms: Any) -> float | None:
    """LiveKit's time in milliseconds if given, else in seconds; None when it gave neither."""
    if ms:
        return int(ms) / 1000
    return float(value) if value else None


async def note_webhook(store: Store, event: Event, webhook: dict[str, Any]) -> None:
    """Keep the visits current with one webhook event the receiver kept (called once per new event). A store that
    fails here costs this record only: the event is kept, and LiveKit is not made to retry it for this."""
    try:
        await _note(store, event, webhook)
    except StoreError as exc:
        log.warning("webhook %s not told to agent health: %s", event.id, exc)


async def _note(store: Store, event: Event, webhook: dict[str, Any]) -> None:
    kind = event.detail.get("kind")
    agent = kind == "AGENT" or "agent_name" in event.detail
    if not agent and event.event != "room_finished":
        return
    visits = visits_of(store)
    room_info = webhook.get("room") or {}
    started = _seconds(room_info.get("creation_time"), room_info.get("creation_time_ms"))
    if event.event == "participant_joined" and agent:
        if await visits.of_session(event.room_sid, event.identity) is not None:
            return  # LiveKit told it twice, or the agent rejoined with its identity: one visit
        p = webhook.get("participant") or {}
        joined = _seconds(p.get("joined_at"), p.get("joined_at_ms")) or event.at
        name = str(event.detail.get("agent_name", ""))
        open_ = [
            v
            for v in await visits.of_room(event.room, joined - MATCH_WINDOW, joined + CLOCK_SLACK)
            if v.agent_name == name and not v.identity and v.room_ended_at is None
        ]
        # The latest open dispatch is the one it answered; none: it came on a dispatch made elsewhere (a token's room
        # configuration, CreateRoom's agents, automatic dispatch), which was expected all the same.
        base = open_[-1] if open_ else Visit(f"J_{uuid.uuid4().hex}", name, event.room, started or joined)
        came = replace(base, room_sid=event.room_sid, identity=event.identity, joined_at=joined)
        await visits.put(replace(came, room_started_at=started))
    elif event.event in ("participant_left", "participant_connection_aborted") and agent:
        session = await visits.of_session(event.room_sid, event.identity)
        if session is not None and session.left_at is None:
            reason = str(event.detail.get("reason", "UNKNOWN_REASON"))
            if event.event == "participant_connection_aborted":
                reason = "CONNECTION_ABORTED"
            await visits.put(replace(session, left_at=event.at, reason=reason))
    elif event.event == "room_finished":
        since = (started or event.at - MATCH_WINDOW) - CLOCK_SLACK
        for visit in await visits.of_room(event.room, since, event.at + CLOCK_SLACK):
            if not visit.identity and visit.room_ended_at is None:
                await visits.put(replace(visit, room_ended_at=event.at))
    await _prune_now_and_then(store, visits)


_pruned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


async def _prune_now_and_then(store: Store, visits: VisitStore) -> None:
    if time.monotonic() - _pruned.get(visits, -math.inf) > PRUNE_EVERY:
        _pruned[visits] = time.monotonic()
        await visits.prune(time.time() - store.retention.max_age)


# --- The answer -------------------------------------------------------------------------------------------


async def health_of(
    store: Store,
    agent_name: str,
    since: float,
    visible: Callable[[str], bool] | None = None,
    now: float | None = None,
) -> AgentHealth:
    """How `agent_name` did since `since`: its visits read through the agent index (at most MAX_VISITS, the latest),
    those in rooms `visible(room)` refuses left out."""
    now = time.time() if now is None else now
    found = await visits_of(store).of_agent(agent_name, since, now + CLOCK_SLACK, MAX_VISITS + 1)
    truncated = len(found) > MAX_VISITS
    found = found[-MAX_VISITS:]
    if visible is not None:
        found = [v for v in found if visible(v.room)]
    joined = [v for v in found if v.joined_at is not None]
    absent = [v for v in found if v.joined_at is None]
    waiting = [v for v in absent if v.room_ended_at is None and now - v.expected_at < WAITING]
    never = [v for v in absent if v.room_ended_at is not None or now - v.expected_at >= WAITING]
    settled = len(found) - len(waiting)
    endings: dict[str, int] = {}
    for v in joined:
        if v.left_at is not None:
            endings[v.reason or "UNKNOWN_REASON"] = endings.get(v.reason or "UNKNOWN_REASON", 0) + 1
    missed = [
        MissedRoom(
            room=v.room,
            expected_at=iso(v.expected_at),
            dispatch_id=v.dispatch_id or None,
            room_ended_at=iso(v.room_ended_at) if v.room_ended_at else None,
        )
        for v in never[-MISSED_SHOWN:]
    ]
    return AgentHealth(
        agent_name=agent_name,
        since=iso(since),
        expected=len(found),
        joined=len(joined),
        never_came=len(never),
        waiting=len(waiting),
        join_rate=round(len(joined) / settled, 3) if settled else None,
        from_dispatch=_stats([v.joined_at - v.expected_at for v in joined if v.dispatch_id and v.joined_at]),
        from_room_start=_stats([v.joined_at - v.room_started_at for v in joined if v.room_started_at and v.joined_at]),
        endings=dict(sorted(endings.items(), key=lambda kv: -kv[1])) or None,
        still_in=sum(1 for v in joined if v.left_at is None),
        missed=missed or None,
        truncated=truncated or None,
    )


async def last_join(store: Store, agent_name: str, within: float = 7 * 86_400) -> Visit | None:
    """The latest visit in which `agent_name` joined, among its last 200 of the last `within` seconds; None when
    there is none, or the store cannot say (a hint, never a reason to fail)."""
    now = time.time()
    try:
        found = await visits_of(store).of_agent(agent_name, now - within, now + CLOCK_SLACK, 200)
    except StoreError:
        return None
    return next((v for v in reversed(found) if v.joined_at is not None), None)


def _stats(seconds: list[float]) -> Seconds | None:
    if not seconds:
        return None
    ordered = sorted(max(0.0, s) for s in seconds)  # LiveKit's clock a little behind ours: not a negative wait

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return Seconds(count=len(ordered), p50=rank(0.5), p90=rank(0.9), max=round(ordered[-1], 2))


def told(health: AgentHealth) -> str:
    """The answer in a few lines."""
    h = health
    if not h.expected:
        return (
            f"No record of agent '{shown(h.agent_name)}' since {h.since}: no dispatch of it through this server and no "
            "join of it in the webhooks received."
        )
    rate = f" ({h.join_rate:.0%} of those settled)" if h.join_rate is not None else ""
    lines = [
        f"Agent '{shown(h.agent_name)}' since {h.since}: expected in {h.expected} room(s), joined {h.joined}{rate}, "
        f"never came to {h.never_came}" + (f", {h.waiting} dispatched moments ago" if h.waiting else "") + "."
    ]
    for label, stats in (("dispatch", h.from_dispatch), ("room start", h.from_room_start)):
        if stats is not None:
            lines.append(
                f"From {label} to join: p50 {stats.p50:g} s, p90 {stats.p90:g} s, max {stats.max:g} s "
                f"({stats.count} joins)."
            )
    if h.endings:
        lines.append("Sessions ended: " + ", ".join(f"{shown(reason)} {n}" for reason, n in h.endings.items()) + ".")
    if h.still_in:
        lines.append(f"{h.still_in} session(s) not ended as far as the webhooks tell.")
    for m in h.missed or []:
        how = f", the room ended at {m.room_ended_at}" if m.room_ended_at else ""
        lines.append(f"- never came to '{shown(m.room)}' (expected {m.expected_at}{how})")
    if h.truncated:
        lines.append(f"(Only the latest {MAX_VISITS:,} visits were read: give a later `since` for the whole period.)")
    return "\n".join(lines)


# --- One adapter per store ---------------------------------------------------------------------------------

_adapters: weakref.WeakKeyDictionary[Any, VisitStore] = weakref.WeakKeyDictionary()


def visits_of(store: Store) -> VisitStore:
    """The visits kept beside `store` (one adapter per store object, so a process's tools and receiver share it)."""
    found = _adapters.get(store)
    if found is None:
        if isinstance(store, SqliteStore):
            found = SqliteVisits(store)
        elif isinstance(store, RedisStore):
            found = RedisVisits(store)
        elif isinstance(store, MemoryStore):
            found = MemoryVisits()
        else:
            raise StoreError(f"agent health is not kept on a {type(store).__name__}")
        _adapters[store] = found
    return found


class MemoryVisits:
    """Visits of a memory store: gone with the process, as its events are."""

    def __init__(self) -> None:
        self._visits: dict[str, Visit] = {}

    async def put(self, visit: Visit) -> None:
        self._visits[visit.id] = visit

    def _where(self, keep: Callable[[Visit], bool]) -> list[Visit]:
        return sorted((v for v in self._visits.values() if keep(v)), key=lambda v: (v.expected_at, v.id))

    async def of_room(self, room: str, since: float, until: float) -> list[Visit]:
        return self._where(lambda v: v.room == room and since <= v.expected_at <= until)

    async def of_session(self, room_sid: str, identity: str) -> Visit | None:
        found = self._where(lambda v: v.identity == identity and v.room_sid == room_sid)
        return found[-1] if found and identity else None

    async def of_agent(self, agent_name: str, since: float, until: float, limit: int) -> list[Visit]:
        return self._where(lambda v: v.agent_name == agent_name and since <= v.expected_at <= until)[-limit:]

    async def prune(self, before: float) -> None:
        self._visits = {k: v for k, v in self._visits.items() if v.expected_at >= before}


class SqliteVisits:
    """A table beside the events, on the store's own connection (and its lock), with an index per question."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS agent_visits (
        id TEXT PRIMARY KEY, agent_name TEXT NOT NULL, room TEXT NOT NULL, expected_at REAL NOT NULL,
        room_sid TEXT NOT NULL, identity TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS agent_visits_agent ON agent_visits (agent_name, expected_at);
    CREATE INDEX IF NOT EXISTS agent_visits_room ON agent_visits (room, expected_at);
    CREATE INDEX IF NOT EXISTS agent_visits_session ON agent_visits (room_sid, identity);
    CREATE INDEX IF NOT EXISTS agent_visits_at ON agent_visits (expected_at);
    """

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._ready = False

    async def _run(self, query: str, args: tuple[Any, ...] = ()) -> list[Any]:
        if not self._ready:
            for statement in filter(str.strip, self.SCHEMA.split(";")):
                await self._store._run(statement)
            self._ready = True
        return await self._store._run(query, args)

    async def put(self, visit: Visit) -> None:
        await self._run(
            "INSERT OR REPLACE INTO agent_visits (id, agent_name, room, expected_at, room_sid, identity, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                visit.id,
                visit.agent_name,
                visit.room,
                visit.expected_at,
                visit.room_sid,
                visit.identity,
                visit.to_json(),
            ),
        )

    async def of_room(self, room: str, since: float, until: float) -> list[Visit]:
        rows = await self._run(
            "SELECT body FROM agent_visits WHERE room = ? AND expected_at BETWEEN ? AND ? ORDER BY expected_at, id",
            (room, since, until),
        )
        return [Visit.from_json(body) for (body,) in rows]

    async def of_session(self, room_sid: str, identity: str) -> Visit | None:
        rows = await self._run(
            "SELECT body FROM agent_visits WHERE room_sid = ? AND identity = ? AND identity != '' "
            "ORDER BY expected_at DESC LIMIT 1",
            (room_sid, identity),
        )
        return Visit.from_json(rows[0][0]) if rows else None

    async def of_agent(self, agent_name: str, since: float, until: float, limit: int) -> list[Visit]:
        rows = await self._run(
            "SELECT body FROM agent_visits WHERE agent_name = ? AND expected_at BETWEEN ? AND ? "
            "ORDER BY expected_at DESC, id DESC LIMIT ?",
            (agent_name, since, until, limit),
        )
        return [Visit.from_json(body) for (body,) in reversed(rows)]

    async def prune(self, before: float) -> None:
        await self._run("DELETE FROM agent_visits WHERE expected_at < ?", (before,))


class RedisVisits:
    """Sorted sets by agent and by room (scored by expected_at) over one hash per visit, and a hash from a room
    session and identity to its visit; on the store's own client, under its prefix."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._redis: Any = store._redis

    def _key(self, *parts: str) -> str:
        return self._store._key("visits", *parts)

    async def _call(self, coro: Any) -> Any:
        return await self._store._call(coro)

    async def put(self, visit: Visit) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key("visit", visit.id), visit.to_json())
        pipe.zadd(self._key("agent", visit.agent_name), {visit.id: visit.expected_at})
        pipe.zadd(self._key("room", visit.room), {visit.id: visit.expected_at})
        pipe.zadd(self._key("all"), {visit.id: visit.expected_at})
        if visit.identity:
            pipe.hset(self._key("session"), f"{visit.room_sid}|{visit.identity}", visit.id)
        await self._call(pipe.execute())

    async def _visits(self, ids: list[bytes]) -> list[Visit]:
        if not ids:
            return []
        bodies = await self._call(self._redis.mget([self._key("visit", i.decode()) for i in ids]))
        return [Visit.from_json(b) for b in bodies if b is not None]

    async def of_room(self, room: str, since: float, until: float) -> list[Visit]:
        return await self._visits(await self._call(self._redis.zrangebyscore(self._key("room", room), since, until)))

    async def of_session(self, room_sid: str, identity: str) -> Visit | None:
        found = await self._call(self._redis.hget(self._key("session"), f"{room_sid}|{identity}"))
        visits = await self._visits([found]) if found is not None else []
        return visits[0] if visits else None

    async def of_agent(self, agent_name: str, since: float, until: float, limit: int) -> list[Visit]:
        ids = await self._call(
            self._redis.zrevrangebyscore(self._key("agent", agent_name), until, since, start=0, num=limit)
        )
        return list(reversed(await self._visits(ids)))

    async def prune(self, before: float) -> None:
        ids = await self._call(self._redis.zrangebyscore(self._key("all"), "-inf", f"({before!r}"))
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=True)
        for v in await self._visits(ids):
            pipe.zrem(self._key("agent", v.agent_name), v.id)
            pipe.zrem(self._key("room", v.room), v.id)
            if v.identity:
                pipe.hdel(self._key("session"), f"{v.room_sid}|{v.identity}")
        pipe.zrem(self._key("all"), *ids)
        pipe.delete(*(self._key("visit", i.decode()) for i in ids))
        await self._call(pipe.execute())
