"""The deployment's shared state, behind one small interface: room history (events from LiveKit's webhooks and the
changes made through this server), the confirm tokens already redeemed and the destructive-action budget.

Three stores, chosen by `LIVEKIT_MCP_STORE`:
- a SQLite file (the default, under the user's state directory): one machine, any number of processes;
- `redis://…`: several replicas (LiveKit's own multi-node deployments already run Redis);
- `memory`: nothing kept beyond the process.

Every store deduplicates events on their id (LiveKit retries a webhook it thinks was not delivered) and keeps them
within the retention, by age and by count. What is stored is chosen field by field (`Event`), never LiveKit's whole
event: an egress event carries its output's storage settings, a participant event its metadata.

Why one module of ~500 lines: the three adapters implement one Protocol and are read against each other (the same
dedup, retention, slot and index rules in SQL, in Redis commands and in memory); tests/test_store.py runs the same
suite on each.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from livekit_mcp.errors import StoreError

log = logging.getLogger(__name__)

APPLICATION_ID = 0x4C4B4D43  # "LKMC": a SQLite file whose application_id differs is not ours
SCHEMA_VERSION = 1


def _new_slot(scope: str) -> str:
    """A slot id of the budget of project `scope` ("" the unnamed one): `scope/hex`, or `hex` alone."""
    return f"{scope}/{uuid.uuid4().hex}" if scope else uuid.uuid4().hex


def _scope_of(slot: str) -> str:
    return slot.rpartition("/")[0]


@dataclass(frozen=True)
class Event:
    """One thing that happened in a room, as history keeps it."""

    id: str
    at: float
    """Seconds since the epoch, as LiveKit stamped it (`created_at`), or when we made the change."""
    room: str
    event: str
    """LiveKit's event name (`participant_left`, …), or `changed` for a change made through this server."""
    room_sid: str = ""
    identity: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    """The few fields the event's plain words need: kind, reason, track source, agent name, who acted, …"""
    received: float = 0.0
    """When it reached us: LiveKit stamps events in whole seconds, so within one second arrival gives the order."""

    @property
    def order(self) -> tuple[float, float, str]:
        return (self.at, self.received, self.id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class IndexOp:
    """One change of an index, written with the event that causes it (`Store.add`): a retried webhook can never find
    its event kept and its index change lost."""

    kind: str
    key: str
    value: str | None = None
    """The value to set; None drops `key`."""
    prefix: bool = False
    """Drop every key of `kind` that starts with `key` ("": the whole index)."""

    def to_list(self) -> list[str]:
        return [
            self.kind,
            self.key,
            self.value or "",
            "prefix" if self.prefix else "drop" if self.value is None else "put",
        ]


@dataclass(frozen=True)
class Retention:
    max_age: float = 30 * 86_400
    """Seconds an event is kept."""
    max_events: int = 1_000_000
    """Events kept in all; the oldest go first."""


@dataclass(frozen=True)
class Page:
    events: list[Event]
    cursor: str | None
    """Where the next page starts, or None when this was the last."""


class Store(Protocol):
    """What history and the replicas share. Every method raises StoreError when the store is unusable."""

    retention: Retention

    async def add(self, event: Event, index: Sequence[IndexOp] = ()) -> bool:
        """Keep `event` unless one with its id is kept already, and apply `index` with it in the same write (both or
        neither); whether it was new."""
        ...

    async def events(self, room: str | None, since: float, limit: int, cursor: str | None = None) -> Page:
        """Events since `since`, oldest first, of one room or of all, `limit` at most, after `cursor`."""
        ...

    async def redeem_once(self, key: str, ttl: float) -> bool:
        """Mark `key` used for `ttl` seconds; False when it was already used (a replayed confirm token)."""
        ...

    async def unredeem(self, key: str) -> None:
        """Make `key` usable again: its action certainly did not happen (LiveKit refused it)."""
        ...

    async def take_slot(self, window: float, limit: int, scope: str = "") -> str | None:
        """One of `limit` slots of the last `window` seconds, shared by every process on the store (the destructive
        actions budget of the project `scope`); its id, or None when all are taken."""
        ...

    async def give_back(self, slot: str) -> None:
        """Return a slot whose action did not happen."""
        ...

    async def index_put(self, kind: str, key: str, value: str) -> None:
        """Set `key` in the index `kind` (what the receiver keeps current: the live rooms, the live agents)."""
        ...

    async def index_drop(self, kind: str, keys: Sequence[str]) -> None: ...

    async def index(self, kind: str) -> dict[str, str]:
        """The whole index `kind`."""
        ...

    async def prune(self) -> int:
        """Drop what is past the retention; how many events went."""
        ...

    async def aclose(self) -> None: ...


def _cursor(event: Event) -> str:
    return f"{event.at!r}|{event.received!r}|{event.id}"


def _after(cursor: str | None) -> tuple[float, float, str]:
    if cursor is None:
        return float("-inf"), float("-inf"), ""
    try:
        at, received, event_id = cursor.split("|", 2)
        return float(at), float(received), event_id
    except ValueError:
        raise ValueError("cursor is not one this server gave; pass the cursor of the previous page, or none") from None


def _page(events: Sequence[Event], limit: int) -> Page:
    kept = list(events[:limit])
    return Page(kept, _cursor(kept[-1]) if len(events) > limit and kept else None)


# --- In memory -----------------------------------------------------------------------------------------


class MemoryStore:
    """Nothing kept beyond the process (`LIVEKIT_MCP_STORE=memory`), and shared with no other."""

    def __init__(self, retention: Retention = Retention()) -> None:
        self.retention = retention
        self._events: dict[str, Event] = {}
        self._used: dict[str, float] = {}
        self._slots: dict[str, float] = {}
        self._index: dict[str, dict[str, str]] = {}

    async def add(self, event: Event, index: Sequence[IndexOp] = ()) -> bool:
        if event.id in self._events:
            return False
        self._events[event.id] = event
        for op in index:
            kept = self._index.setdefault(op.kind, {})
            if op.prefix:
                for key in [k for k in kept if k.startswith(op.key)]:
                    del kept[key]
            elif op.value is None:
                kept.pop(op.key, None)
            else:
                kept[op.key] = op.value
        if len(self._events) > self.retention.max_events:
            await self.prune()
        return True

    async def events(self, room: str | None, since: float, limit: int, cursor: str | None = None) -> Page:
        after = _after(cursor)
        found = sorted(
            (e for e in self._events.values() if (room is None or e.room == room) and e.at >= since),
            key=lambda e: e.order,
        )
        return _page([e for e in found if e.order > after], limit)

    async def redeem_once(self, key: str, ttl: float) -> bool:
        now = time.time()
        self._used = {k: until for k, until in self._used.items() if until > now}
        if key in self._used:
            return False
        self._used[key] = now + ttl
        return True

    async def unredeem(self, key: str) -> None:
        self._used.pop(key, None)

    async def index_put(self, kind: str, key: str, value: str) -> None:
        self._index.setdefault(kind, {})[key] = value

    async def index_drop(self, kind: str, keys: Sequence[str]) -> None:
        for key in keys:
            self._index.get(kind, {}).pop(key, None)

    async def index(self, kind: str) -> dict[str, str]:
        return dict(self._index.get(kind, {}))

    async def take_slot(self, window: float, limit: int, scope: str = "") -> str | None:
        now = time.time()
        self._slots = {k: at for k, at in self._slots.items() if now - at < window}
        if sum(1 for k in self._slots if _scope_of(k) == scope) >= limit:
            return None
        slot = _new_slot(scope)
        self._slots[slot] = now
        return slot

    async def give_back(self, slot: str) -> None:
        self._slots.pop(slot, None)

    async def prune(self) -> int:
        before = len(self._events)
        oldest = time.time() - self.retention.max_age
        kept = sorted((e for e in self._events.values() if e.at >= oldest), key=lambda e: e.order)
        self._events = {e.id: e for e in kept[-self.retention.max_events :]}
        return before - len(self._events)

    async def aclose(self) -> None:
        return None


# --- SQLite --------------------------------------------------------------------------------------------


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, at REAL NOT NULL, received REAL NOT NULL, room TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_room_at ON events (room, at, received, id);
CREATE INDEX IF NOT EXISTS events_at ON events (at, received, id);
CREATE TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS slots (id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idx (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key));
"""
"""What a store of this schema version has, added if an older build left it out."""


class SqliteStore:
    """A SQLite file: several processes on one machine (a stdio server reads what the receiver wrote).

    The file holds phone numbers, names and who did what for whom: it is made 0600 in a 0700 directory (its `-wal`
    and `-shm` take its mode), and an existing one others can read is warned about at start. A new store is made
    whole under a temporary name and linked into place, so a half-made file is never left where a store is looked
    for; an existing empty file is refused rather than silently made a store (it may be another program's). A store
    file deleted or replaced while running is noticed at the next call (one stat per call) and opened anew."""

    def __init__(self, path: Path, retention: Retention = Retention()) -> None:
        self.path = path
        self.retention = retention
        self._db, self._file = self._open(path)
        self._lock = anyio.Lock()  # one connection, used from worker threads one at a time

    @staticmethod
    def _create(path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        made = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
        os.close(os.open(made, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            db = sqlite3.connect(made, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # readers (a stdio server) never wait for the receiver
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.executescript(SCHEMA)
            finally:
                db.close()  # the last connection: its WAL is checkpointed into the file and removed
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs is used
                os.link(made, path)
        finally:
            made.unlink(missing_ok=True)

    @classmethod
    def _open(cls, path: Path) -> tuple[sqlite3.Connection, tuple[int, int]]:
        try:
            if not path.exists():
                cls._create(path)
            found = path.stat()
            if found.st_size == 0:
                raise StoreError(
                    f"{path} is an empty file, not a livekit-mcp store (another program's?); delete it to start a "
                    "new store there, or choose another"
                )
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            owner, version = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
            if owner != APPLICATION_ID:
                db.close()
                raise StoreError(f"{path} is not a livekit-mcp store (another program's SQLite file)")
            if version > SCHEMA_VERSION:
                db.close()
                raise StoreError(f"{path} was written by a newer livekit-mcp (schema {version}); upgrade this one")
            db.execute("SELECT count(*) FROM events WHERE 0").fetchone()  # a store that lost its table is corrupt
            if stat.S_IMODE(found.st_mode) & 0o077:
                log.warning(
                    "history store %s should have permissions 600 (it holds names, numbers, who did what); "
                    "chmod 600 it and its -wal and -shm",
                    path,
                )
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{path} cannot be used as a livekit-mcp store ({exc}); move it away or choose another"
            ) from None
        except OSError as exc:
            raise StoreError(f"{path} cannot be opened ({exc.strerror or exc})") from None
        return db, (found.st_dev, found.st_ino)

    def _same_file(self) -> None:
        """Open the store anew if its file was deleted or replaced since it was opened: writing on would go into a
        file nobody can read again (answering `kept` for events that are lost). Runs with the lock held."""
        try:
            found = self.path.stat()
            if (found.st_dev, found.st_ino) == self._file:
                return
        except FileNotFoundError:
            pass
        log.warning("the history store %s was deleted or replaced while running: opening it anew", self.path)
        self._db.close()
        self._db, self._file = self._open(self.path)

    async def _run(self, query: str, args: Sequence[Any] = ()) -> list[Any]:
        def run() -> list[Any]:
            self._same_file()
            return self._db.execute(query, args).fetchall()

        async with self._lock:
            try:
                return await anyio.to_thread.run_sync(run)
            except sqlite3.Error as exc:
                raise StoreError(f"the history store {self.path} failed ({exc})") from None

    async def add(self, event: Event, index: Sequence[IndexOp] = ()) -> bool:
        def add() -> bool:
            self._same_file()
            with self._db:  # one transaction: the event and its index changes, or neither
                self._db.execute("BEGIN IMMEDIATE")
                new = self._db.execute(
                    "INSERT INTO events (id, at, received, room, body) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    (event.id, event.at, event.received, event.room, event.to_json()),
                ).fetchall()
                for op in index if new else ():
                    if op.prefix:  # keys that start with op.key: compared as text, not with LIKE's wildcards
                        self._db.execute(
                            "DELETE FROM idx WHERE kind = ? AND substr(key, 1, length(?)) = ?",
                            (op.kind, op.key, op.key),
                        )
                    elif op.value is None:
                        self._db.execute("DELETE FROM idx WHERE kind = ? AND key = ?", (op.kind, op.key))
                    else:
                        self._db.execute(
                            "INSERT INTO idx (kind, key, value) VALUES (?, ?, ?) "
                            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                            (op.kind, op.key, op.value),
                        )
            return bool(new)

        async with self._lock:
            try:
                return await anyio.to_thread.run_sync(add)
            except sqlite3.Error as exc:
                raise StoreError(f"the history store {self.path} failed ({exc})") from None

    async def events(self, room: str | None, since: float, limit: int, cursor: str | None = None) -> Page:
        where = "at >= ? AND (at, received, id) > (?, ?, ?)"
        args: list[Any] = [since, *_after(cursor)]
        if room is not None:
            where += " AND room = ?"
            args.append(room)
        query = f"SELECT body FROM events WHERE {where} ORDER BY at, received, id LIMIT ?"  # noqa: S608 - our text
        rows = await self._run(query, [*args, limit + 1])
        return _page([Event.from_json(body) for (body,) in rows], limit)

    async def redeem_once(self, key: str, ttl: float) -> bool:
        now = time.time()
        await self._run("DELETE FROM used WHERE until <= ?", (now,))
        done = await self._run(
            "INSERT INTO used (key, until) VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING key", (key, now + ttl)
        )
        return bool(done)

    async def unredeem(self, key: str) -> None:
        await self._run("DELETE FROM used WHERE key = ?", (key,))

    async def index_put(self, kind: str, key: str, value: str) -> None:
        await self._run(
            "INSERT INTO idx (kind, key, value) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = ?",
            (kind, key, value, value),
        )

    async def index_drop(self, kind: str, keys: Sequence[str]) -> None:
        for key in keys:
            await self._run("DELETE FROM idx WHERE kind = ? AND key = ?", (kind, key))

    async def index(self, kind: str) -> dict[str, str]:
        return dict(await self._run("SELECT key, value FROM idx WHERE kind = ?", (kind,)))

    async def take_slot(self, window: float, limit: int, scope: str = "") -> str | None:
        def take() -> str | None:
            self._same_file()
            now, slot = time.time(), _new_slot(scope)
            with self._db:  # one transaction, taken for writing at once: two processes cannot both take the last
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM slots WHERE at <= ?", (now - window,))
                # The id less its 32 hex digits is "scope/" ("" for the unnamed project): text, not LIKE's wildcards.
                taken = self._db.execute(
                    "SELECT count(*) FROM slots WHERE substr(id, 1, length(id) - 32) = ?",
                    (f"{scope}/" if scope else "",),
                ).fetchone()[0]
                if taken >= limit:
                    return None
                self._db.execute("INSERT INTO slots (id, at) VALUES (?, ?)", (slot, now))
            return slot

        async with self._lock:
            try:
                return await anyio.to_thread.run_sync(take)
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} failed ({exc})") from None

    async def give_back(self, slot: str) -> None:
        await self._run("DELETE FROM slots WHERE id = ?", (slot,))

    async def prune(self) -> int:
        old = await self._run("DELETE FROM events WHERE at < ? RETURNING id", (time.time() - self.retention.max_age,))
        over = await self._run(
            "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY at DESC, received DESC, id DESC "
            "LIMIT -1 OFFSET ?) "
            "RETURNING id",
            (self.retention.max_events,),
        )
        return len(old) + len(over)

    async def aclose(self) -> None:
        async with self._lock:
            self._db.close()


# --- Redis ---------------------------------------------------------------------------------------------


class RedisStore:
    """Redis (`redis://…`), for replicas: what one receives, every other reads; a token one redeems, all refuse."""

    def __init__(self, url: str, retention: Retention = Retention(), prefix: str = "livekit-mcp:") -> None:
        import redis.asyncio  # only a Redis store pays for importing it

        self.retention = retention
        self._prefix = prefix
        self._where = _without_password(url)
        self._redis: Any = redis.asyncio.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def _call(self, coro: Any) -> Any:
        import redis.exceptions

        try:
            return await coro
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"the history store at {self._where} failed ({type(exc).__name__})") from None

    # The event, its places in time and its index changes in one step on the server: all of them, or none.
    _ADD = """
    if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
    for _, op in ipairs(cjson.decode(ARGV[6])) do
        local index = ARGV[5] .. op[1]
        if op[4] == 'prefix' then
            for _, key in ipairs(redis.call('HKEYS', index)) do
                if string.sub(key, 1, #op[2]) == op[2] then redis.call('HDEL', index, key) end
            end
        elseif op[4] == 'drop' then redis.call('HDEL', index, op[2])
        else redis.call('HSET', index, op[2], op[3]) end
    end
    return 1
    """

    async def add(self, event: Event, index: Sequence[IndexOp] = ()) -> bool:
        keys = (self._key("event", event.id), self._key("all"), self._key("room", event.room))
        ops = json.dumps([op.to_list() for op in index])
        args = (
            event.to_json(),
            int(self.retention.max_age) + 1,
            repr(event.at),
            _member(event),
            self._key("index", ""),
        )
        return bool(await self._call(self._redis.eval(self._ADD, 3, *keys, *args, ops)))

    async def events(self, room: str | None, since: float, limit: int, cursor: str | None = None) -> Page:
        after = _after(cursor)
        index = self._key("all") if room is None else self._key("room", room)
        start = max(since, after[0])
        found: list[Event] = []
        offset = 0
        while len(found) <= limit:
            members = await self._call(self._redis.zrangebyscore(index, start, "+inf", start=offset, num=limit + 1))
            if not members:
                break
            offset += len(members)
            ids = [m.decode().split("|", 1)[1] for m in members]
            bodies = await self._call(self._redis.mget([self._key("event", i) for i in ids]))
            for body in bodies:
                if body is not None:  # expired since it was indexed
                    event = Event.from_json(body)
                    if event.order > after:
                        found.append(event)
        return _page(found, limit)

    async def redeem_once(self, key: str, ttl: float) -> bool:
        return bool(
            await self._call(self._redis.set(self._key("used", key), b"1", nx=True, px=max(1, int(ttl * 1000))))
        )

    async def unredeem(self, key: str) -> None:
        await self._call(self._redis.delete(self._key("used", key)))

    async def index_put(self, kind: str, key: str, value: str) -> None:
        await self._call(self._redis.hset(self._key("index", kind), key, value))

    async def index_drop(self, kind: str, keys: Sequence[str]) -> None:
        if keys:
            await self._call(self._redis.hdel(self._key("index", kind), *keys))

    async def index(self, kind: str) -> dict[str, str]:
        found = await self._call(self._redis.hgetall(self._key("index", kind)))
        return {k.decode(): v.decode() for k, v in found.items()}

    # Checked and taken in one step on the server: two replicas cannot both take the last slot.
    _TAKE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
    redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
    return 1
    """

    @staticmethod
    def _slots(scope: str) -> str:
        return f"slots/{scope}" if scope else "slots"

    async def take_slot(self, window: float, limit: int, scope: str = "") -> str | None:
        slot, key = _new_slot(scope), self._key(self._slots(scope))
        taken = await self._call(self._redis.eval(self._TAKE, 1, key, time.time(), window, limit, slot))
        return slot if taken else None

    async def give_back(self, slot: str) -> None:
        await self._call(self._redis.zrem(self._key(self._slots(_scope_of(slot))), slot))

    async def prune(self) -> int:
        oldest = time.time() - self.retention.max_age
        gone: list[bytes] = await self._call(self._redis.zrangebyscore(self._key("all"), "-inf", f"({oldest!r}"))
        total = await self._call(self._redis.zcard(self._key("all")))
        over = max(0, total - len(gone) - self.retention.max_events)
        if over:
            gone += await self._call(self._redis.zrange(self._key("all"), len(gone), len(gone) + over - 1))
        if not gone:
            return 0
        events = await self._call(self._redis.mget([self._key("event", m.decode().split("|", 1)[1]) for m in gone]))
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._key("all"), *gone)
        for member, body in zip(gone, events, strict=True):
            event_id = member.decode().split("|", 1)[1]
            pipe.delete(self._key("event", event_id))
            if body is not None:
                pipe.zrem(self._key("room", Event.from_json(body).room), member)
        await self._call(pipe.execute())
        return len(gone)

    async def aclose(self) -> None:
        await self._redis.aclose()


def _member(event: Event) -> str:
    # Scored by `at`; among equal scores Redis orders members as bytes, so `received` goes first, at a fixed width.
    return f"{event.received:020.6f}|{event.id}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def default_path() -> Path:
    """Where the SQLite store lives by default: the XDG state directory, as other command-line tools keep theirs."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "livekit-mcp" / "store.sqlite3"


def open_store(where: str | None, retention: Retention = Retention()) -> Store:
    """The store `LIVEKIT_MCP_STORE` names: None (the default SQLite file), `memory`, `redis://…`, or a path."""
    if where == "memory":
        return MemoryStore(retention)
    if where is not None and where.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(where, retention)
    return SqliteStore(Path(where).expanduser() if where else default_path(), retention)
