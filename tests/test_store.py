"""The shared store (issue 13, item 2), each kind against its real counterpart: a SQLite file, a real redis-server,
and memory. The same behaviour is asked of all three: events kept once whatever the retries, in order, paged,
kept within the retention; a confirm token redeemed once across every process that shares the store.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from livekit_mcp.errors import StoreError
from livekit_mcp.history import index_changes, live_index
from livekit_mcp.store import Event, MemoryStore, Retention, Store, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_kind(request.param, request, tmp_path, Retention())
    yield opened
    await opened.aclose()


async def open_kind(kind: str, request: pytest.FixtureRequest, tmp_path: Path, retention: Retention) -> Store:
    if kind == "sqlite":
        return open_store(str(tmp_path / "store.sqlite3"), retention)
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        db = open_store(url, retention)
        await db._redis.flushdb()  # type: ignore[attr-defined]  # each test starts from an empty Redis
        return db
    return MemoryStore(retention)


def event(n: int, room: str = "support", at: float | None = None, **detail: str) -> Event:
    return Event(
        id=f"EV_{n:04d}",
        at=at if at is not None else time.time() - 1000 + n,
        room=room,
        event="participant_joined",
        room_sid="RM_1",
        identity=f"p{n}",
        detail=detail,
    )


async def test_an_event_is_kept_once_however_often_it_is_delivered(store: Store) -> None:
    first = event(1, reason="CLIENT_INITIATED")
    assert await store.add(first) is True
    assert await store.add(first) is False  # LiveKit's retry of the same event
    page = await store.events("support", 0, 10)
    assert page.events == [first]
    assert page.cursor is None


async def test_events_come_oldest_first_by_room_and_page_by_cursor(store: Store) -> None:
    for n in (5, 1, 3, 2, 4):
        await store.add(event(n))
    await store.add(event(9, room="sales"))
    same_time = time.time() - 500
    await store.add(event(7, at=same_time))
    await store.add(event(6, at=same_time))  # the same instant: ordered by id, never lost across a page boundary
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.events("support", 0, 2, cursor)
        seen += [e.id for e in page.events]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == ["EV_0001", "EV_0002", "EV_0003", "EV_0004", "EV_0005", "EV_0006", "EV_0007"]
    everything = await store.events(None, 0, 100)
    assert {e.room for e in everything.events} == {"support", "sales"}
    recent = await store.events("support", time.time() - 996.5, 100)
    assert [e.id for e in recent.events] == ["EV_0004", "EV_0005", "EV_0006", "EV_0007"]


async def test_a_crafted_cursor_is_an_error_naming_it(store: Store) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await store.events("support", 0, 10, "not-a-cursor")


async def test_a_confirm_token_is_redeemed_once_until_it_expires(store: Store) -> None:
    assert await store.redeem_once("token-digest", ttl=0.3) is True
    assert await store.redeem_once("token-digest", ttl=0.3) is False
    assert await store.redeem_once("another", ttl=0.3) is True
    await anyio.sleep(0.4)
    assert await store.redeem_once("token-digest", ttl=0.3) is True  # past its ttl the token itself has expired


@pytest.mark.parametrize("kind", ["sqlite", "redis", "memory"])
async def test_retention_by_age_and_by_count(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = await open_kind(kind, request, tmp_path, Retention(max_age=3600, max_events=3))
    try:
        await db.add(event(1, at=time.time() - 7200))  # older than the retention
        for n in range(2, 7):
            await db.add(event(n))
        await db.prune()
        kept = await db.events(None, 0, 100)
        assert [e.id for e in kept.events] == ["EV_0004", "EV_0005", "EV_0006"]
    finally:
        await db.aclose()


async def test_two_processes_on_one_sqlite_file_share_history_and_redemptions(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    receiver, reader = open_store(path), open_store(path)
    try:
        await receiver.add(event(1))
        assert [e.id for e in (await reader.events("support", 0, 10)).events] == ["EV_0001"]
        assert await receiver.redeem_once("t", 60) is True
        assert await reader.redeem_once("t", 60) is False
    finally:
        await receiver.aclose()
        await reader.aclose()


async def test_two_replicas_on_one_redis_share_history_and_redemptions(redis_url: str) -> None:
    a, b = open_store(redis_url), open_store(redis_url)
    try:
        await a._redis.flushdb()  # type: ignore[attr-defined]
        await a.add(event(1))
        assert await b.add(event(1)) is False  # the same webhook delivered to the other replica
        assert [e.id for e in (await b.events("support", 0, 10)).events] == ["EV_0001"]
        assert await a.redeem_once("t", 60) is True
        assert await b.redeem_once("t", 60) is False
    finally:
        await a.aclose()
        await b.aclose()


def test_a_sqlite_file_of_another_program_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "theirs.sqlite3"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError, match="is not a livekit-mcp store"):
        open_store(str(path))
    assert sqlite3.connect(path).execute("SELECT count(*) FROM notes").fetchone() == (0,)  # left as it was


def test_a_corrupt_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot be used as a livekit-mcp store"):
        open_store(str(path))


async def test_redis_down_is_a_store_error_without_the_password(redis_url: str) -> None:
    db = open_store("redis://:hunter2-password@127.0.0.1:1/0")
    try:
        with pytest.raises(StoreError) as failure:
            await db.add(event(1))
    finally:
        await db.aclose()
    assert "hunter2" not in str(failure.value)
    assert "redis://127.0.0.1:1/0" in str(failure.value)


async def test_within_one_second_the_order_of_arrival_wins(store: Store) -> None:
    # LiveKit stamps webhooks in whole seconds: a room's whole short life can share one `created_at`.
    second = float(int(time.time()) - 10)
    arrivals = ["room_started", "participant_joined", "participant_left", "room_finished"]
    for n, name in enumerate(arrivals):
        await store.add(Event(id=f"EV_{'zyxw'[n]}", at=second, room="short", event=name, received=second + n / 10))
    assert [e.event for e in (await store.events("short", 0, 10)).events] == arrivals
    first = await store.events("short", 0, 2)
    rest = await store.events("short", 0, 10, first.cursor)
    assert [e.event for e in first.events + rest.events] == arrivals


async def test_slots_of_the_budget_are_taken_up_to_the_limit_and_given_back(store: Store) -> None:
    first, second = await store.take_slot(60, 2), await store.take_slot(60, 2)
    assert first is not None
    assert second is not None
    assert await store.take_slot(60, 2) is None
    await store.give_back(first)
    assert await store.take_slot(60, 2) is not None
    assert await store.take_slot(0.2, 1) is None  # the window holds three taken ones
    await anyio.sleep(0.3)
    assert await store.take_slot(0.2, 1) is not None  # out of a short window, they no longer count


async def test_each_project_has_its_own_slots_of_the_budget(store: Store) -> None:
    production = await store.take_slot(60, 1, "production")
    assert production is not None
    assert await store.take_slot(60, 1, "production") is None
    assert await store.take_slot(60, 1, "prod_x") is not None  # another project: "_" is no wildcard here
    assert await store.take_slot(60, 1) is not None  # the unnamed project
    assert await store.take_slot(60, 1) is None
    await store.give_back(production)
    assert await store.take_slot(60, 1, "production") is not None


async def test_an_unredeemed_token_can_be_redeemed_again(store: Store) -> None:
    assert await store.redeem_once("k", 60) is True
    await store.unredeem("k")
    assert await store.redeem_once("k", 60) is True
    assert await store.redeem_once("k", 60) is False


async def test_the_index_follows_rooms_and_agents_and_forgets_what_it_cannot_vouch_for(store: Store) -> None:
    def happened(n: int, name: str, sid: str, identity: str = "", **detail: Any) -> Event:
        return Event(f"EV_i{n}", time.time(), f"room-{sid}", name, sid, identity, detail, received=time.time())

    for event in (
        happened(1, "room_started", "RM_a"),
        happened(2, "participant_joined", "RM_a", "agent-1", kind="AGENT", agent_name="support"),
        happened(3, "participant_joined", "RM_a", "guest", kind="STANDARD"),
        happened(4, "participant_joined", "RM_a", "agent-2", kind="AGENT", agent_name="notes"),
        happened(5, "participant_left", "RM_a", "agent-2", kind="AGENT", reason="PARTICIPANT_REMOVED"),
        happened(6, "room_started", "RM_b"),
        happened(7, "participant_joined", "RM_b", "agent-3", kind="AGENT", agent_name="support"),
        happened(8, "room_finished", "RM_b"),
        happened(9, "participant_joined", "RM_c", "agent-4", kind="AGENT"),  # a room whose start was never heard
    ):
        await store.add(event, index_changes(event))
    index = await live_index(store)
    assert index.rooms == {"RM_a": "room-RM_a"}
    assert index.agents == [{"room_sid": "RM_a", "room": "room-RM_a", "identity": "agent-1", "agent_name": "support"}]
    late = happened(10, "participant_joined", "RM_a", "late", kind="STANDARD", dropped_before=3)
    await store.add(late, index_changes(late))
    assert (await live_index(store)).rooms == {}  # events were lost: no room is vouched for any more


async def test_an_event_and_its_index_changes_are_one_write(tmp_path: Path) -> None:
    # Issue 22, item 2: the index write failing after the event was kept made LiveKit's retry a `duplicate`, never
    # indexed. A real SQLite failure (a trigger refusing the index write) now leaves neither, and the retry does both.
    path = tmp_path / "store.sqlite3"
    db = open_store(str(path))
    joined = Event("EV_j", time.time(), "r", "participant_joined", "RM_1", "agent-1", {"kind": "AGENT"}, time.time())
    with sqlite3.connect(path) as other:
        other.execute("CREATE TRIGGER refuse BEFORE INSERT ON idx BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    try:
        started = Event("EV_s", time.time(), "r", "room_started", "RM_1", received=time.time())
        with pytest.raises(StoreError, match="disk says no"):
            await db.add(started, index_changes(started))
        assert (await db.events("r", 0, 10)).events == []  # not kept without its index change
        with sqlite3.connect(path) as other:
            other.execute("DROP TRIGGER refuse")
        assert await db.add(started, index_changes(started)) is True  # LiveKit's retry completes it
        assert await db.add(joined, index_changes(joined)) is True
        index = await live_index(db)
        assert index.rooms == {"RM_1": "r"}
        assert [a["identity"] for a in index.agents] == ["agent-1"]
    finally:
        await db.aclose()


async def test_index_prefixes_are_text_not_wildcards(store: Store) -> None:
    def finished(sid: str) -> Event:
        return Event(f"EV_f{sid}", time.time(), "r", "room_finished", sid, received=time.time())

    for sid, identity in (("RM_%", "a"), ("RM_x", "b")):
        joined = Event(f"EV_{identity}", time.time(), "r", "participant_joined", sid, identity, {"kind": "AGENT"})
        await store.add(joined, index_changes(joined))
    await store.add(finished("RM_%"), index_changes(finished("RM_%")))
    assert list(await store.index("agents")) == ["RM_x|b"]  # "RM_%|" matched only itself


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Issue 22, item 7: the store holds names, phone numbers and who did what; it was made 0644 in a 0755 directory.
    path = tmp_path / "state" / "livekit-mcp" / "store.sqlite3"
    db = open_store(str(path))
    try:
        await db.add(event(1))  # the WAL and its index exist while the store is open
        assert (mode(path), mode(path.parent)) == (0o600, 0o700)
        assert {mode(Path(f"{path}{end}")) for end in ("-wal", "-shm")} == {0o600}
    finally:
        await db.aclose()
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".new")]  # nothing half-made left behind
    assert "permissions" not in caplog.text
    path.chmod(0o644)
    await open_store(str(path)).aclose()
    assert f"history store {path} should have permissions 600" in caplog.text


def test_an_existing_empty_file_is_not_made_a_store(tmp_path: Path) -> None:
    # Issue 22, item 10: an empty file (another program's, or a typo'd path that exists) was silently made a store.
    path = tmp_path / "notes.txt"
    path.touch()
    with pytest.raises(StoreError, match="is an empty file, not a livekit-mcp store"):
        open_store(str(path))
    assert path.read_bytes() == b""  # left as it was


async def test_a_store_deleted_or_replaced_while_running_is_opened_anew(tmp_path: Path) -> None:
    # Issue 22, item 10: a store deleted while running went on answering `kept` into the unlinked file.
    path = tmp_path / "store.sqlite3"
    db = open_store(str(path))
    try:
        await db.add(event(1))
        for end in ("", "-wal", "-shm"):
            Path(f"{path}{end}").unlink(missing_ok=True)  # noqa: ASYNC240 - the test deletes it between calls
        assert await db.add(event(2)) is True
        reader = open_store(str(path))  # what a reader of the path (a stdio server) sees
        try:
            assert [e.id for e in (await reader.events(None, 0, 10)).events] == ["EV_0002"]
        finally:
            await reader.aclose()
        path.unlink()
        with sqlite3.connect(path) as other:  # replaced by another program's file: refused, not written into
            other.execute("CREATE TABLE notes (text TEXT)")
        with pytest.raises(StoreError, match="is not a livekit-mcp store"):
            await db.add(event(3))
    finally:
        await db.aclose()
