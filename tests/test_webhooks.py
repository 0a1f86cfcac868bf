"""The webhook receiver (issue 13, item 1): LiveKit's signed webhooks verified, kept once, refused when they are
not LiveKit's, and, on the real server, what it really sends when people join and leave.

Requests are signed here as LiveKit signs them (livekit-api's AccessToken with the body's sha256, as the real
server's URL notifier does); the real server's own webhooks reach the session receiver (`real_webhooks`).

The MCP server that receives them is built in process and its HTTP app is posted to in process (what it logs is
read from `caplog`); `livekit-mcp webhooks`, the start it refuses and the real server's receiver are processes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from livekit import api
from mcp import Client
from mcp.client.stdio import get_default_environment

from livekit_mcp.app import webhooks_app
from livekit_mcp.config import Settings
from livekit_mcp.history import MAX_BODY, live_index
from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.store import Event, MemoryStore, open_store
from realkit.agents import RealAgentWorker
from realkit.livekit_server import RealLiveKitServer
from realkit.participants import RealPeople
from tests.asgi import asgi_client
from tests.conftest import (
    SECRET,
    InProcess,
    InProcessHTTP,
    LiveKitTarget,
    Receiver,
    Served,
    WebhookRecorder,
    call,
    environment,
    fails,
    http_in_process,
    ok,
    run_cli_here,
    spawn,
    text,
)
from tests.test_real_tools import one_agent

pytestmark = pytest.mark.anyio


def signed(body: bytes, key: str, secret: str, *, valid_for: float = 300, sha: bytes | None = None) -> str:
    """An Authorization value as LiveKit's URL notifier makes it."""
    digest = base64.b64encode(sha if sha is not None else hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(key, secret).with_sha256(digest)
    return token.with_ttl(datetime.timedelta(seconds=valid_for)).to_jwt()


def webhook(event: str = "participant_left", *, event_id: str | None = None, **extra: Any) -> bytes:
    """A webhook body in LiveKit's own JSON (protojson: camelCase, enums by name)."""
    body = {
        "event": event,
        "id": event_id or f"EV_{uuid.uuid4().hex[:12]}",
        "createdAt": str(int(time.time())),
        "room": {"sid": "RM_test", "name": "support-call-1042"},
        "participant": {
            "sid": "PA_agent",
            "identity": "agent-AJ_1",
            "kind": "AGENT",
            "disconnectReason": "PARTICIPANT_REMOVED",
            "attributes": {"lk.agent.name": "support-agent"},
            "metadata": "secret-metadata-never-kept",
        },
        **extra,
    }
    return json.dumps(body).encode()


@pytest.fixture
async def receiving(livekit: LiveKitTarget, tmp_path: Path) -> AsyncIterator[tuple[InProcessHTTP, Path]]:
    """An MCP HTTP server with history on, in a SQLite file of this test's own."""
    store = tmp_path / "history.sqlite3"
    async with http_in_process(livekit.env(LIVEKIT_MCP_STORE=str(store))) as served:
        yield served, store


def webhook_url(served: InProcessHTTP) -> str:
    return served.url.removesuffix("/mcp") + "/webhooks/livekit"


async def post(to: str | InProcessHTTP, body: bytes, authorization: str | None, **headers: str) -> httpx2.Response:
    """A webhook POSTed to a URL, or to the receiver of a server's HTTP app in process."""
    sent = {"Content-Type": "application/webhook+json", **headers}
    if authorization is not None:
        sent["Authorization"] = authorization
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(to, str):
            http = await stack.enter_async_context(httpx2.AsyncClient())
        else:
            http = await stack.enter_async_context(asgi_client(to.app))
        answer = await http.post(to if isinstance(to, str) else webhook_url(to), content=body, headers=sent)
        await answer.aread()
        return answer


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (what a process prints on stderr), each record's message and exception in full."""
    return caplog.text + "".join(record.getMessage() for record in caplog.records)


async def kept(store: Path, room: str | None = None) -> list[Event]:
    db = open_store(str(store))
    try:
        return (await db.events(room, 0, 10_000)).events
    finally:
        await db.aclose()


async def test_a_signed_webhook_is_kept_once_however_often_livekit_retries_it(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget
) -> None:
    served, store = receiving
    body = webhook(event_id="EV_once")
    for _ in range(3):
        answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
        assert answer.status_code == 200
    assert answer.json() == {"kept": False, "duplicate": True}
    (event,) = await kept(store)
    assert (event.id, event.room, event.event, event.identity) == (
        "EV_once",
        "support-call-1042",
        "participant_left",
        "agent-AJ_1",
    )
    assert event.detail == {"kind": "AGENT", "reason": "PARTICIPANT_REMOVED", "agent_name": "support-agent"}
    assert "secret-metadata" not in store.read_bytes().decode(errors="replace")


def forged(livekit: LiveKitTarget) -> dict[str, tuple[bytes, str | None, int, str]]:
    body = webhook()
    other = webhook()
    return {
        "unsigned": (body, None, 401, "no Authorization header"),
        "wrong-secret": (body, signed(body, livekit.api_key, "another-secret-0123456789abcdef012345"), 401, "secret"),
        "wrong-key": (body, signed(body, "another-key", livekit.api_secret), 401, "another API key"),
        "hash-mismatch": (body, signed(other, livekit.api_key, livekit.api_secret), 401, "does not match the hash"),
        "stale": (body, signed(body, livekit.api_key, livekit.api_secret, valid_for=-120), 401, "expired"),
        # Past the size taken, unsigned: refused before its body is read (a signed one is a gap, below).
        "oversized": (b"x" * (MAX_BODY + 1), "whatever", 401, "not signed"),
    }


@pytest.mark.parametrize("case", ["unsigned", "wrong-secret", "wrong-key", "hash-mismatch", "stale", "oversized"])
async def test_what_is_not_livekits_is_refused_and_nothing_is_kept(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    served, store = receiving
    body, authorization, status, why = forged(livekit)[case]
    answer = await post(served, body, authorization)
    assert answer.status_code == status
    assert why in answer.json()["error"]
    assert await kept(store) == []
    assert SECRET not in logged(caplog)
    assert "Traceback" not in caplog.text


async def test_a_store_that_is_down_answers_503_so_livekit_retries(
    livekit: LiveKitTarget, caplog: pytest.LogCaptureFixture
) -> None:
    body = webhook()
    async with http_in_process(livekit.env(LIVEKIT_MCP_STORE="redis://:pw-never-shown@127.0.0.1:1/0")) as served:
        answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
    assert answer.status_code == 503
    assert "unavailable" in answer.json()["error"]
    assert "pw-never-shown" not in logged(caplog)


async def test_history_off_has_no_receiver(livekit: LiveKitTarget) -> None:
    body = webhook()
    async with http_in_process(livekit.env(LIVEKIT_MCP_HISTORY="off")) as served:
        answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
    assert answer.status_code == 404


def test_a_store_file_that_is_not_ours_stops_the_start_in_one_line(livekit: LiveKitTarget, tmp_path: Path) -> None:
    theirs = tmp_path / "notes.db"
    theirs.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    done = run_cli_here("webhooks", "--port", "0", env=livekit.env(LIVEKIT_MCP_STORE=str(theirs)))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "LIVEKIT_MCP_STORE" in done.stderr
    assert str(theirs) in done.stderr


async def test_the_webhooks_command_receives_into_a_store_a_stdio_server_can_read(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    store = tmp_path / "shared.sqlite3"
    env = livekit.env(LIVEKIT_MCP_STORE=str(store))
    env.pop("LIVEKIT_URL")  # the receiver calls no LiveKit: the key and secret are what it needs
    process, port = spawn(["webhooks", "--port", "0"], env, tmp_path / "log")
    try:
        body = webhook("room_finished", roomEndReason="ROOM_END_API_DELETE")
        url = f"http://127.0.0.1:{port}/webhooks/livekit"
        answer = await post(url, body, signed(body, livekit.api_key, livekit.api_secret))
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(10)
    (event,) = await kept(store)
    assert (event.event, event.detail) == ("room_finished", {"reason": "ROOM_END_API_DELETE"})


# --- The real server's own webhooks ----------------------------------------------------------------------


async def events_of(receiver: Receiver, room: str, wanted: Callable[[list[Event]], bool]) -> list[Event]:
    found: list[Event] = []

    async def arrived() -> bool:
        found[:] = await kept(receiver.store, room)
        return wanted(found)

    with anyio.fail_after(30):
        while not await arrived():  # noqa: ASYNC110 - the real server posts its webhooks in its own time
            await anyio.sleep(0.2)
    return found


async def test_the_real_server_tells_who_joined_and_why_they_left(
    real_livekit: RealLiveKitServer,
    real_people: RealPeople,
    real_webhooks: Receiver,
    real_lkapi: api.LiveKitAPI,
) -> None:
    room = f"history-{uuid.uuid4().hex[:6]}"
    await real_people.join(room, "caller", kind="SIP")
    await real_people.join(room, "guest")
    await real_lkapi.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="guest"))
    await events_of(
        real_webhooks, room, lambda es: any(e.event == "participant_left" and e.identity == "guest" for e in es)
    )
    await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
    events = await events_of(real_webhooks, room, lambda es: any(e.event == "room_finished" for e in es))
    # Stamped in whole seconds, ordered as they arrived: the room started first, and ended after the guest left.
    names = [e.event for e in events]
    assert names[0] == "room_started"
    assert names.index("room_finished") > names.index("participant_left")
    by = {(e.event, e.identity): e for e in events}
    assert by[("participant_joined", "caller")].detail["kind"] == "SIP"
    assert by[("participant_joined", "guest")].detail["kind"] == "STANDARD"
    assert by[("participant_left", "guest")].detail["reason"] == "PARTICIPANT_REMOVED"
    assert ("room_started", "") in by
    assert by[("room_finished", "")].room_sid.startswith("RM_")
    assert len({e.room_sid for e in events}) == 1  # one session of the room, by its sid
    caller_left = by.get(("participant_left", "caller"))
    if caller_left is not None:  # LiveKit may send it after room_finished
        assert caller_left.detail["reason"] == "ROOM_DELETED"


# --- room_history and get_room, through the MCP client ----------------------------------------------------


async def deliver(served: InProcessHTTP, livekit: LiveKitTarget, *bodies: bytes) -> None:
    for body in bodies:
        answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
        assert answer.status_code == 200, answer.text


async def test_room_history_tells_a_session_in_plain_words_with_the_changes_made_through_the_server(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    served, _ = receiving
    room = {"sid": "RM_call", "name": "support-call-1042"}
    caller = {"identity": "sip_+15550100", "kind": "SIP", "sid": "PA_c"}
    await deliver(
        served,
        livekit,
        webhook("room_started", room=room, participant={}),
        webhook("participant_joined", room=room, participant=caller),
        webhook("participant_left", room=room, participant=caller | {"disconnectReason": "CLIENT_INITIATED"}),
        webhook("room_finished", room=room, participant={}),
    )
    await admin.join("support-call-1042", "dana")
    async with served.client({"X-On-Behalf-Of": "U123 Ana"}) as c:
        await ok(c, "remove_participant", room="support-call-1042", identity="dana")
        told = await ok(c, "room_history", room="support-call-1042")
        text_answer = text(await call(c, "room_history", room="support-call-1042"))
        recent = await ok(c, "room_history")
    assert told["history"] == "on"
    (session,) = [s for s in told["sessions"] if s["room_sid"] == "RM_call"]
    said = [e["said"] for e in session["events"]]
    assert said == [
        "the room started",
        "phone caller 'sip_+15550100' joined",
        "phone caller 'sip_+15550100' left by itself (its app disconnected or hung up)",
        "the room ended: it closed",
    ]
    assert session["ended"] is not None
    changes = [e for s in told["sessions"] for e in s["events"] if e["event"] == "changed"]
    assert [c["said"] for c in changes] == [
        "anonymous (HTTP) for U123 Ana ran remove_participant on 'dana' through livekit-mcp"
    ]
    assert "left by itself" in text_answer
    # The room has two sessions here: the one the webhooks told (ended), and the sandbox's live one of the change.
    assert any(r["room"] == "support-call-1042" and r.get("ended") for r in recent["rooms"])


async def test_off_empty_and_unavailable_are_three_different_answers(
    in_process: InProcess, livekit: LiveKitTarget, receiving: tuple[InProcessHTTP, Path]
) -> None:
    off = in_process(env=livekit.env(LIVEKIT_MCP_HISTORY="off"))
    down = in_process(env=livekit.env(LIVEKIT_MCP_STORE="redis://127.0.0.1:1/0"))
    empty, _ = receiving
    answers = {}
    for name, served in (("off", Client(off)), ("unavailable", Client(down)), ("on", empty.client())):
        async with served as c:
            answers[name] = await ok(c, "room_history", room="never-heard-of")
    assert {name: a["history"] for name, a in answers.items()} == {
        "off": "off",
        "unavailable": "unavailable",
        "on": "on",
    }
    assert "LIVEKIT_MCP_HISTORY=off" in answers["off"]["note"]
    assert "unavailable" in answers["unavailable"]["note"]
    assert "No history of room 'never-heard-of'" in answers["on"]["note"]
    assert not answers["on"].get("sessions")


async def test_room_history_obeys_allowed_rooms_and_checks_its_arguments(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    env = livekit.env(LIVEKIT_MCP_STORE=str(tmp_path / "h.sqlite3"), LIVEKIT_MCP_ALLOWED_ROOMS="support*")
    async with http_in_process(env) as served, served.client() as c:
        await deliver(served, livekit, webhook(room={"sid": "RM_s", "name": "secret-board"}))
        hidden = await fails(c, "room_history", room="secret-board")
        recent = await ok(c, "room_history")
        bad_since = await fails(c, "room_history", room="support", since="yesterday")
        bad_cursor = await fails(c, "room_history", room="support", cursor="forged")
    assert "refused by policy (allowed_rooms)" in hidden
    assert "secret-board" not in json.dumps(recent)
    assert "since" in bad_since
    assert "30m, 6h, 7d" in bad_since
    assert "cursor" in bad_cursor


async def test_the_real_servers_history_reaches_a_server_reading_the_receivers_store(
    real_livekit: RealLiveKitServer,
    real_people: RealPeople,
    real_webhooks: Receiver,
    real_lkapi: api.LiveKitAPI,
    serve_http: Callable[..., Served],
    real_target: LiveKitTarget,
) -> None:
    room = f"told-{uuid.uuid4().hex[:6]}"
    await real_people.join(room, "guest")
    await real_people.join(room, "supervisor")
    reader = serve_http(env=real_target.env(LIVEKIT_MCP_STORE=str(real_webhooks.store)))
    async with Client(reader.url) as c:
        await ok(c, "remove_participant", room=room, identity="guest")
        await events_of(real_webhooks, room, lambda es: any(e.event == "participant_left" for e in es))
        detail = await ok(c, "get_room", room=room)
        told = await ok(c, "room_history", room=room)
    said = [e["said"] for s in told["sessions"] for e in s["events"]]
    assert "'guest' joined" in said
    assert (
        "'guest' left because anonymous (HTTP) ran remove_participant through livekit-mcp; LiveKit's reason: "
        "PARTICIPANT_REMOVED" in said
    )
    assert any("ran remove_participant on 'guest'" in s for s in said)
    assert [e["said"] for e in detail["recent_history"]][-1] in said
    assert {
        p.identity
        for p in (await real_lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
    } == {"supervisor"}


# --- find_agent from the live index ----------------------------------------------------------------------


async def test_find_agent_answers_vouched_rooms_from_the_index_and_confirms_each_agent(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    served, _ = receiving
    agent = await admin.join_agent("indexed", "support-agent")
    await admin.join_agent("not-indexed", "notes-agent")
    (room,) = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["indexed"]))).rooms
    where = {"sid": room.sid, "name": "indexed"}
    await deliver(
        served,
        livekit,
        webhook("room_started", room=where, participant={}),
        webhook("participant_joined", room=where, participant={"identity": agent["identity"], "kind": "AGENT"}),
        # An agent the webhooks say joined but LiveKit does not have (its departure was never delivered).
        webhook("participant_joined", room=where, participant={"identity": "ghost-agent", "kind": "AGENT"}),
    )
    async with served.client() as c:
        found = await ok(c, "find_agent")
        answer = text(await call(c, "find_agent"))
    assert {(a["room"], a["agent_name"]) for a in found["agents"]} >= {
        ("indexed", "support-agent"),
        ("not-indexed", "notes-agent"),
    }
    assert "ghost-agent" not in {a["identity"] for a in found["agents"]}
    assert found["rooms_from_history"] == 1
    assert found["rooms_searched"] == len((await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms)
    assert "1 room(s) answered from room history" in answer


async def test_the_retention_settings_hold_in_the_receiver(livekit: LiveKitTarget, tmp_path: Path) -> None:
    store = tmp_path / "kept.sqlite3"
    env = livekit.env(
        LIVEKIT_MCP_STORE=str(store), LIVEKIT_MCP_HISTORY_MAX_EVENTS="3", LIVEKIT_MCP_HISTORY_RETENTION_DAYS="1"
    )
    old = webhook(event_id="EV_two_days_old", createdAt=str(int(time.time()) - 2 * 86_400))
    async with http_in_process(env) as served:
        await deliver(served, livekit, old, *(webhook(event_id=f"EV_{n}") for n in range(5)))
    assert [e.id for e in await kept(store)] == ["EV_2", "EV_3", "EV_4"]


# --- Nothing LiveKit sends is lost silently (issue 22, items 1 and 2) ------------------------------------------


async def index_of(store: Path) -> tuple[dict[str, str], list[str]]:
    db = open_store(str(store))
    try:
        index = await live_index(db)
    finally:
        await db.aclose()
    return index.rooms, [a["identity"] for a in index.agents]


async def test_a_webhook_as_large_as_livekits_limits_allow_is_kept_without_its_metadata(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget
) -> None:
    # 512 KiB of room metadata, 512 KiB of participant metadata and 64 KiB of attributes (livekit-server's limits),
    # every byte of which protojson escapes into six: 6.4 MiB. The receiver answered 413 above 1 MiB, which
    # livekit-server takes as delivered: the agent's join was lost and find_agent() said "0 agents".
    served, store = receiving
    where = {"sid": "RM_big", "name": "big-room"}
    await deliver(served, livekit, webhook("room_started", room=where, participant={}))
    agent = {
        "sid": "PA_big",
        "identity": "agent-big",
        "kind": "AGENT",
        "metadata": "\x01" * 512 * 1024,
        "attributes": {"lk.agent.name": "support-agent", "notes": "\x02" * (64 * 1024 - 20)},
    }
    body = webhook("participant_joined", room=where | {"metadata": "\x03" * 512 * 1024}, participant=agent)
    assert len(body) > 6 * 1024 * 1024
    answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"kept": True, "duplicate": False}
    (joined,) = [e for e in await kept(store, "big-room") if e.event == "participant_joined"]
    assert joined.detail == {"kind": "AGENT", "agent_name": "support-agent"}
    assert await index_of(store) == ({"RM_big": "big-room"}, ["agent-big"])
    assert "\\u0001" not in store.read_bytes().decode(errors="replace")


@pytest.mark.parametrize("case", ["not-json", "not-utf8", "past-the-limit", "declared-past-the-limit"])
async def test_a_signed_webhook_that_cannot_be_taken_is_a_gap_room_history_tells(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget, case: str
) -> None:
    # What LiveKit signed is never answered 4xx (it would count as delivered): the index stops vouching for every
    # room (which one the webhook was about is unknown) and room_history says events may be missing.
    served, store = receiving
    where = {"sid": "RM_vouched", "name": "vouched"}
    await deliver(served, livekit, webhook("room_started", room=where, participant={}))
    assert (await index_of(store))[0] == {"RM_vouched": "vouched"}
    body = {"not-json": b"{nope", "not-utf8": b"\xff\xfe"}.get(case, b" " * (MAX_BODY + 1))
    headers = {"Content-Length": str(MAX_BODY + 1)} if case == "declared-past-the-limit" else {}
    answer = await post(served, body, signed(body, livekit.api_key, livekit.api_secret), **headers)
    assert answer.status_code == 200, answer.text
    assert "gap" in answer.json()
    assert await index_of(store) == ({}, [])
    async with served.client() as c:
        told = await ok(c, "room_history", room="vouched")
        said = text(await call(c, "room_history", room="vouched"))
        recent = await ok(c, "room_history")
        resource = await c.read_resource("livekit://rooms/vouched/history")
    assert "History may be missing events: 1 webhook(s) from LiveKit could not be taken" in told["note"]
    assert "History may be missing events" in json.loads(getattr(resource.contents[0], "text", "{}"))["note"]
    assert "History may be missing events" in said
    assert [r["room"] for r in recent["rooms"]] == ["vouched"]  # the gap is of no room


async def test_webhooks_livekit_dropped_are_a_gap_room_history_tells(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget
) -> None:
    # numDropped, on an event of any room, says events of unknown rooms were lost: every room's history says so.
    served, _ = receiving
    told_of_it = webhook(event_id="EV_after_drops", room={"sid": "RM_other", "name": "other"}, numDropped=3)
    for _ in range(2):  # LiveKit's retry of it counts the gap once
        await deliver(served, livekit, told_of_it)
    async with served.client() as c:
        told = await ok(c, "room_history", room="quiet-room")
    assert "1 webhook(s) from LiveKit could not be taken" in told["note"]
    assert "LiveKit dropped 3 webhook(s) it could not deliver" in told["note"]


async def test_an_older_agent_joining_a_vouched_room_is_found_from_the_index(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    # Older agents join as STANDARD with permission.agent: find_agent(room=…) found them, find_agent() did not.
    served, store = receiving
    legacy = await admin.join(
        "legacy-room", "legacy-agent", permission={"agent": True}, attributes={"lk.agent.name": "legacy"}
    )
    (room,) = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["legacy-room"]))).rooms
    where = {"sid": room.sid, "name": "legacy-room"}
    joined = {"identity": legacy["identity"], "kind": "STANDARD", "permission": {"agent": True}}
    joined["attributes"] = {"lk.agent.name": "legacy"}
    await deliver(
        served,
        livekit,
        webhook("room_started", room=where, participant={}),
        webhook("participant_joined", room=where, participant=joined),
    )
    assert (await index_of(store))[1] == ["legacy-agent"]
    async with served.client() as c:
        found = await ok(c, "find_agent", agent_name="legacy")
    assert [(a["room"], a["identity"]) for a in found["agents"]] == [("legacy-room", "legacy-agent")]
    assert found["rooms_from_history"] >= 1


async def test_a_webhook_whose_index_write_failed_is_completed_by_livekits_retry(
    receiving: tuple[InProcessHTTP, Path], livekit: LiveKitTarget
) -> None:
    # The event was kept before the index was written: when the index write failed, the retry was a `duplicate`.
    served, store = receiving
    where = {"sid": "RM_retry", "name": "retry-room"}
    await deliver(served, livekit, webhook("room_started", room=where, participant={}))
    body = webhook("participant_joined", room=where, participant={"identity": "agent-r", "kind": "AGENT"})
    with sqlite3.connect(store) as other:  # a real failure of SQLite at the index write
        other.execute("CREATE TRIGGER refuse BEFORE INSERT ON idx BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    first = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
    assert first.status_code == 503  # LiveKit retries
    with sqlite3.connect(store) as other:
        other.execute("DROP TRIGGER refuse")
    retry = await post(served, body, signed(body, livekit.api_key, livekit.api_secret))
    assert retry.json() == {"kept": True, "duplicate": False}
    assert await index_of(store) == ({"RM_retry": "retry-room"}, ["agent-r"])


async def test_the_sandbox_never_writes_its_history_into_the_users_store(in_process: InProcess, tmp_path: Path) -> None:
    # Issue 22, item 11: `--sandbox` wrote its made-up sessions into ~/.local/state/livekit-mcp/store.sqlite3, so
    # each new sandbox showed every earlier run's rooms as live, mixed with real history.
    state = tmp_path / "state"
    named = tmp_path / "sandbox-history.sqlite3"
    env = get_default_environment() | {"XDG_STATE_HOME": str(state), "HOME": str(tmp_path / "home")}
    for where in (None, named):
        server = in_process(env=env | ({"LIVEKIT_MCP_STORE": str(where)} if where else {}), credentials="sandbox")
        async with Client(server) as c:
            with anyio.fail_after(10):
                # The sandbox's seeded rooms, told by its webhooks in their own time.
                while not (recent := await ok(c, "room_history")).get("rooms"):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        assert recent["history"] == "on"
    assert not state.exists()  # the default store was never made
    assert not (tmp_path / "home").exists()
    assert {e.room for e in await kept(named)} >= {r["room"] for r in recent["rooms"]}  # a store named for it is used


async def test_stop_egress_and_delete_ingress_reach_room_history(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    # Issue 22, item 10: their arguments name no room (an egress id, an ingress id), so history never heard of them.
    env = livekit.env(
        LIVEKIT_MCP_STORE=str(tmp_path / "h.sqlite3"), LIVEKIT_MCP_EGRESS_OUTPUT="recordings/{room_name}.mp4"
    )
    await admin.join("town-hall", "mayor")
    async with Client(in_process(env=env, toolsets="rooms,egress,ingress")) as c:
        egress_id = (await ok(c, "start_room_egress", room="town-hall"))["egress"]["egress_id"]
        await ok(c, "stop_egress", egress_id=egress_id)
        made = await ok(c, "create_ingress", input_type="RTMP", room="stage", participant_identity="obs")
        await ok(c, "delete_ingress", ingress_id=made["ingress"]["ingress_id"])
        town_hall = text(await call(c, "room_history", room="town-hall"))
        stage = text(await call(c, "room_history", room="stage"))
    assert f"ran stop_egress on '{egress_id}' through livekit-mcp" in town_hall
    assert f"ran delete_ingress on '{made['ingress']['ingress_id']}' through livekit-mcp" in stage


async def test_the_audit_log_is_readable_by_its_owner_only(
    in_process: InProcess, livekit: LiveKitTarget, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 22, item 7: the audit log (who did what for whom) was made 0644.
    log = tmp_path / "audit.jsonl"
    async with Client(in_process(env=livekit.env(LIVEKIT_MCP_AUDIT_LOG=str(log)))) as c:
        await ok(c, "create_room", room=f"audited-{uuid.uuid4().hex[:6]}")
    assert log.stat().st_mode & 0o777 == 0o600
    assert "should have permissions 600" not in caplog.text
    log.chmod(0o644)
    async with Client(in_process(env=livekit.env(LIVEKIT_MCP_AUDIT_LOG=str(log)))):
        pass  # the server's start: its lifespan opens the log
    assert f"audit log {log} should have permissions 600" in caplog.text


async def test_the_real_servers_webhook_past_a_mebibyte_is_kept_and_find_agent_still_finds_the_agent(
    real_livekit: RealLiveKitServer,
    real_people: RealPeople,
    real_webhooks: Receiver,
    real_webhook_recorder: WebhookRecorder,
    real_lkapi: api.LiveKitAPI,
    real_target: LiveKitTarget,
    in_process: InProcess,
) -> None:
    # Issue 22, items 1 and 2 on livekit-server itself: 512 KiB of room metadata that protojson escapes six-fold
    # rides on every participant event. The receiver answered 413, the notifier took it as delivered: the agent's
    # join was lost, and find_agent() said "0 agents" for a room the index vouched for. The agent here is an older
    # one (STANDARD with the agent grant), which the index missed too.
    room = f"big-{uuid.uuid4().hex[:6]}"
    await real_lkapi.room.create_room(api.CreateRoomRequest(name=room))
    try:
        await events_of(real_webhooks, room, lambda es: any(e.event == "room_started" for e in es))
        await real_lkapi.room.update_room_metadata(
            api.UpdateRoomMetadataRequest(room=room, metadata="\x01" * 512 * 1024)
        )
        await real_people.join(room, "older-agent", agent=True, attributes={"lk.agent.name": "legacy-helper"})
        events = await events_of(real_webhooks, room, lambda es: any(e.identity == "older-agent" for e in es))
        (joined,) = [e for e in events if e.event == "participant_joined"]
        assert joined.detail == {"kind": "AGENT", "agent_name": "legacy-helper"}
        sent = [b for h, b in real_webhook_recorder.received if b'"older-agent"' in b and b"participant_joined" in b]
        assert len(sent[0]) > 3 * 1024 * 1024  # what livekit-server posted: past the old 1 MiB limit
        async with Client(in_process(env=real_target.env(LIVEKIT_MCP_STORE=str(real_webhooks.store)))) as c:
            found = await ok(c, "find_agent", agent_name="legacy-helper")
        assert [(a["room"], a["identity"]) for a in found["agents"]] == [(room, "older-agent")]
        assert (await index_of(real_webhooks.store))[0].get(joined.room_sid) == room  # still vouched for
    finally:
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


async def test_the_real_servers_history_tells_the_agent_left_because_of_remove_agent(
    real_livekit: RealLiveKitServer,
    real_people: RealPeople,
    real_webhooks: Receiver,
    real_lkapi: api.LiveKitAPI,
    real_target: LiveKitTarget,
    in_process: InProcess,
    agent_worker: Callable[[str], RealAgentWorker],
) -> None:
    # Issue 22, item 12 with a real agent worker: deleting the dispatch ends the job, the agent leaves "by itself"
    # as LiveKit tells it; history says remove_agent made it leave, and tells the command first.
    agent_worker("polite-helper")
    room = f"caused-{uuid.uuid4().hex[:6]}"
    await real_people.join(room, "customer")
    server = in_process(env=real_target.env(LIVEKIT_MCP_STORE=str(real_webhooks.store)))
    try:
        async with Client(server) as c:
            await ok(c, "dispatch_agent", room=room, agent_name="polite-helper")
            identity = await one_agent(real_lkapi, room, "polite-helper")
            await ok(c, "remove_agent", room=room, agent_name="polite-helper")
            await events_of(real_webhooks, room, lambda es: any(e.event == "participant_left" for e in es))
            told = await ok(c, "room_history", room=room)
        events = [(e["event"], e["said"]) for s in told["sessions"] for e in s["events"]]
        change = next(n for n, (name, said) in enumerate(events) if name == "changed" and "remove_agent" in said)
        (left,) = [n for n, (name, said) in enumerate(events) if name == "participant_left" and identity in said]
        assert change < left, events
        assert f"'{identity}' (polite-helper) left because root (stdio) ran remove_agent" in events[left][1], events
    finally:
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


@pytest.mark.parametrize("case", ["unsigned", "signed-trickling"])
async def test_the_receiver_reads_no_unsigned_body_and_a_signed_one_only_within_the_deadline(
    livekit: LiveKitTarget, case: str
) -> None:
    # The receiver takes up to 8 MiB, so it reads the body itself: an unsigned one not at all (no 8 MiB buffered
    # for anyone who can reach the port), a signed one within LIVEKIT_MCP_BODY_TIMEOUT (then 408).
    with environment(livekit.env(LIVEKIT_MCP_BODY_TIMEOUT="0.3")):
        app = webhooks_app(Settings.load(None), MemoryStore())
    body = webhook()
    headers = [(b"content-type", b"application/webhook+json"), (b"content-length", str(len(body)).encode())]
    if case == "signed-trickling":
        headers.append((b"authorization", signed(body, livekit.api_key, livekit.api_secret).encode()))
    reads = 0
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 1:
            return {"type": "http.request", "body": body[:10], "more_body": True}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhooks/livekit", "headers": headers, "query_string": b""}
    with anyio.fail_after(5):
        await app(scope | {"http_version": "1.1", "scheme": "http", "root_path": ""}, receive, send)
    status = sent[0]["status"]
    assert (status, reads) == ((401, 0) if case == "unsigned" else (408, 2))
