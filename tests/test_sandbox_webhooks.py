"""The sandbox sends webhooks as the real server does (issue 13, item 5): the same events, shapes and signing,
held to what livekit-server 1.13.5 really posts; and the history they make, through the MCP client, with no
real server (`--sandbox`, `livekit-mcp sandbox --webhook-url`, the admin API)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from livekit import api
from livekit.api import TokenVerifier
from mcp import Client
from mcp.client.stdio import get_default_environment
from mcp.types import CallToolResult

from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from livekit_mcp.store import open_store
from realkit.livekit_server import KEY as REAL_KEY
from realkit.livekit_server import SECRET as REAL_SECRET
from realkit.participants import RealPeople
from tests.conftest import (
    SECRET,
    InProcess,
    LiveKitTarget,
    Receiver,
    Served,
    WebhookRecorder,
    call,
    ok,
    spawn,
    text,
)
from tests.test_service import client

pytestmark = pytest.mark.anyio

Seen = list[tuple[dict[str, str], dict[str, Any]]]


async def until(found: Callable[[], bool], what: str) -> None:
    with anyio.move_on_after(30):
        while not found():  # noqa: ASYNC110 - webhooks arrive in the sender's own time
            await anyio.sleep(0.1)
        return
    raise AssertionError(f"{what} did not arrive within 30 s")


def left(seen: Seen, identity: str) -> bool:
    return any(e["event"] == "participant_left" and e["participant"]["identity"] == identity for _, e in seen)


async def play_the_scene(
    lkapi: api.LiveKitAPI,
    join: Callable[[str, str, str, bool], Awaitable[object]],
    seen: Callable[[], Seen],
    room: str,
) -> Seen:
    """The same calls on either server: a room made, a guest with a microphone and a phone caller joining, the
    guest removed, the room deleted. What its webhook destination received about the room."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room))
    await join(room, "guest", "", True)
    await join(room, "caller", "SIP", False)
    await until(lambda: sum(e["event"] == "participant_joined" for _, e in seen()) == 2, "both joined")
    await lkapi.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="guest"))
    await until(lambda: left(seen(), "guest"), "the guest's participant_left")
    await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
    await until(lambda: left(seen(), "caller") and any(e["event"] == "room_finished" for _, e in seen()), "the end")
    return seen()


def by_event(seen: Seen) -> dict[tuple[str, str], tuple[dict[str, str], dict[str, Any]]]:
    return {(e["event"], e.get("participant", {}).get("identity", "")): (h, e) for h, e in seen}


def claims_of(headers: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(headers["authorization"], options={"verify_signature": False})
    return decoded


async def test_the_sandbox_sends_the_events_the_real_server_sends_shaped_and_signed_the_same(
    real_livekit: object,
    real_people: RealPeople,
    real_lkapi: api.LiveKitAPI,
    real_webhook_recorder: WebhookRecorder,
    real_webhooks: Receiver,
) -> None:
    room = f"shapes-{uuid.uuid4().hex[:6]}"

    async def join_real(room: str, identity: str, kind: str, audio: bool) -> object:
        return await real_people.join(room, identity, kind=kind, audio=audio)

    real = await play_the_scene(real_lkapi, join_real, lambda: real_webhook_recorder.events(room), room)
    # livekit-server 1.13.5 puts the room's TURN password in its events; the receiver keeps none of it.
    passwords = {e["room"]["turnPassword"] for _, e in real if e["room"].get("turnPassword")}
    assert passwords
    kept = b"".join(f.read_bytes() for f in real_webhooks.store.parent.glob(real_webhooks.store.name + "*"))
    assert not any(p.encode() in kept for p in passwords)

    recorder = WebhookRecorder()
    try:
        async with Sandbox(keys={"devkey": SECRET}, seed=False, webhook_urls=[recorder.url]) as sandbox:
            admin = SandboxAdmin(sandbox.url, "devkey", SECRET)

            async def join_sandbox(room: str, identity: str, kind: str, audio: bool) -> object:
                tracks = [{"type": "AUDIO"}] if audio else []
                return await admin.join(room, identity, kind=kind or "STANDARD", tracks=tracks)

            async with api.LiveKitAPI(sandbox.url, "devkey", SECRET) as lkapi:
                ours = await play_the_scene(lkapi, join_sandbox, lambda: recorder.events(room), room)
            await admin.aclose()
    finally:
        recorder.close()
    ours_raw = list(recorder.received)

    theirs, mine = by_event(real), by_event(ours)
    expected = {
        ("room_started", ""),
        ("participant_joined", "guest"),
        ("participant_joined", "caller"),
        ("track_published", "guest"),
        ("track_unpublished", "guest"),
        ("participant_left", "guest"),
        ("participant_left", "caller"),
        ("room_finished", ""),
    }
    assert expected <= theirs.keys(), sorted(theirs)
    assert expected <= mine.keys(), sorted(mine)
    for name in sorted(expected):
        (their_headers, their_event), (my_headers, my_event) = theirs[name], mine[name]
        # The same fields at the top and in the room and participant (the sandbox never sends one LiveKit does not).
        assert my_event.keys() == their_event.keys(), name
        assert my_event["room"].keys() <= their_event["room"].keys(), name
        assert my_event.get("participant", {}).keys() <= their_event.get("participant", {}).keys(), name
        assert my_event.get("track", {}).keys() <= their_event.get("track", {}).keys(), name
        for event in (my_event, their_event):
            assert event["id"].startswith("EV_")
            assert event["createdAt"].isdigit()
        # The same why, kind and state.
        for key in ("disconnectReason", "kind", "state"):
            assert my_event.get("participant", {}).get(key) == their_event.get("participant", {}).get(key), (name, key)
        # Signed the same way: a JWT without "Bearer", from the API key, with the body's hash, for 5 minutes.
        assert my_headers["content-type"] == their_headers["content-type"] == "application/webhook+json"
        assert not my_headers["authorization"].startswith("Bearer")
        assert not their_headers["authorization"].startswith("Bearer")
        mine_claims, their_claims = claims_of(my_headers), claims_of(their_headers)
        assert mine_claims.keys() == their_claims.keys(), name
        assert (mine_claims["iss"], their_claims["iss"]) == ("devkey", REAL_KEY)
        assert mine_claims["exp"] - mine_claims["nbf"] == their_claims["exp"] - their_claims["nbf"] == 300
    # Every body of the scene verifies with livekit-api's WebhookReceiver and its own server's key (the session's
    # earlier webhooks are left out: their 5-minute tokens may have expired).
    for raw, key, secret in ((real_webhook_recorder.received, REAL_KEY, REAL_SECRET), (ours_raw, "devkey", SECRET)):
        receiver = api.WebhookReceiver(TokenVerifier(key, secret))
        scene = [(headers, body) for headers, body in raw if json.loads(body).get("room", {}).get("name") == room]
        assert len(scene) >= len(expected)
        assert all(receiver.receive(body.decode(), headers["authorization"]).id for headers, body in scene)


async def test_the_sandbox_signs_what_livekit_apis_receiver_accepts() -> None:
    """livekit-api's WebhookReceiver (what LiveKit's own docs tell users to verify with) accepts every webhook."""
    delivered: list[tuple[bytes, str]] = []

    async def sink(body: bytes, authorization: str) -> int:
        delivered.append((body, authorization))
        return 200

    async with Sandbox(keys={"devkey": SECRET}, seed=True, webhook_sinks=[sink]) as sandbox:
        await sandbox.webhooks.drained()
    receiver = api.WebhookReceiver(TokenVerifier("devkey", SECRET))
    events = [receiver.receive(body.decode(), authorization) for body, authorization in delivered]
    assert {e.room.name for e in events if e.event == "room_started"} == {
        "support-call-1042",
        "town-hall",
        "phone-intake-7",
        "legacy-bot-room",
        "standup",
    }
    assert sum(e.event == "participant_joined" and e.room.name == "town-hall" for e in events) == 41
    for body, authorization in delivered:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert claims_of({"authorization": authorization})["sha256"] == digest
    wrong = api.WebhookReceiver(TokenVerifier("devkey", "not-the-secret-at-all-0123456789"))
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        wrong.receive(delivered[0][0].decode(), delivered[0][1])


async def test_a_failed_delivery_is_retried_and_a_lost_one_is_counted_on_the_next() -> None:
    answers = iter([503, 503, 200] + [500] * 4 + [200] * 1000)
    delivered: list[bytes] = []

    async def flaky(body: bytes, authorization: str) -> int:
        status = next(answers)
        if status == 200:
            delivered.append(body)
        return status

    async with Sandbox(keys={"devkey": SECRET}, seed=False, webhook_sinks=[flaky]) as sandbox:
        async with api.LiveKitAPI(sandbox.url, "devkey", SECRET) as lkapi:
            for name in ("first", "second", "third"):
                await lkapi.room.create_room(api.CreateRoomRequest(name=name))
        await sandbox.webhooks.drained()
    events = [json.loads(b) for b in delivered]
    # The first arrived after two 503s, the second was given up on after four tries, the third says so.
    assert [(e["room"]["name"], e.get("numDropped", 0)) for e in events] == [("first", 0), ("third", 1)]


async def test_room_history_on_the_sandbox_tells_the_support_call_after_the_agent_was_removed(
    serve_http: Callable[..., Served],
) -> None:
    """`livekit-mcp --sandbox` over HTTP: its sandbox's webhooks go straight to its own receiver."""
    served = serve_http(
        "--sandbox", env=get_default_environment() | {"LIVEKIT_MCP_CONFIRM": "off", "LIVEKIT_MCP_STORE": "memory"}
    )
    async with client(served.url, "http") as mcp:
        await ok(mcp, "remove_agent", room="support-call-1042")
        result = await until_history(mcp, "support-call-1042", "ran remove_agent")
    said = text(result)
    assert "the room started" in said
    assert "'customer-maria' (Maria Lopez) joined" in said
    assert "agent 'agent-AJ_" in said
    assert "(support-agent) left" in said  # its job ended with its dispatch, so it went by itself
    assert isinstance(result.structured_content, dict)
    (session,) = result.structured_content["sessions"]
    assert session["room_sid"].startswith("RM_")


async def until_history(mcp: Client, room: str, word: str) -> CallToolResult:
    with anyio.fail_after(30):
        while True:
            result = await call(mcp, "room_history", room=room)
            assert not result.is_error, text(result)
            if word in text(result):
                return result
            await anyio.sleep(0.1)


async def test_the_sandbox_command_posts_to_the_webhooks_command(tmp_path: Path) -> None:
    """Two processes as a user runs them: `livekit-mcp webhooks` with the dev key, and `livekit-mcp sandbox
    --webhook-url` pointing at it; the store then holds the demo rooms' events."""
    store = tmp_path / "history.sqlite3"
    env = LiveKitTarget("", "devkey", "secret").env(LIVEKIT_MCP_STORE=str(store))
    receiver, port = spawn(["webhooks", "--port", "0"], env, tmp_path / "webhooks.log")
    url = f"http://127.0.0.1:{port}/webhooks/livekit"
    sandbox, _ = spawn(["sandbox", "--port", "0", "--webhook-url", url], env, tmp_path / "sandbox.log")
    try:
        db = open_store(str(store))
        try:
            with anyio.fail_after(30):
                while not (await db.events("standup", 0, 100)).events:  # noqa: ASYNC110 - the last demo room, from another process
                    await anyio.sleep(0.2)
            events = (await db.events("town-hall", 0, 100)).events
        finally:
            await db.aclose()
        assert events[0].event == "room_started"
        assert {e.identity for e in events if e.event == "participant_joined"} >= {"presenter-dana"}
        assert f"webhooks to {url}" in (tmp_path / "sandbox.log").read_text()
    finally:
        for process in (sandbox, receiver):
            process.terminate()
            process.wait(10)


async def test_the_admin_api_sets_where_webhooks_go_and_refuses_what_is_not_a_url(livekit: LiveKitTarget) -> None:
    recorder = WebhookRecorder()
    admin = SandboxAdmin(livekit.url, livekit.api_key, livekit.api_secret)
    room = f"admin-hooks-{uuid.uuid4().hex[:6]}"
    try:
        assert await admin.send_webhooks_to([recorder.url]) == [recorder.url]
        await admin.join(room, "someone")
        await until(lambda: len(recorder.events(room)) >= 2, "the events")  # both: under load they come apart
        assert [e["event"] for _, e in recorder.events(room)] == ["room_started", "participant_joined"]
        with pytest.raises(Exception, match="http:// or https://"):
            await admin.send_webhooks_to(["file:///etc/passwd"])
        assert await admin.send_webhooks_to([]) == []
        await admin.leave(room, "someone")
        await anyio.sleep(0.3)
        assert not left(recorder.events(room), "someone")  # nothing sent once stopped
    finally:
        await admin.send_webhooks_to([])
        await admin.aclose()
        recorder.close()


async def test_a_4xx_counts_as_delivered_as_livekit_servers_notifier_counts_it() -> None:
    # livekit-server's notifier (go-retryablehttp's policy) retries only no answer, 429 and 5xx but 501: a 4xx is
    # delivered, never retried nor counted in numDropped. The sandbox counted it dropped, so tests could not see
    # a receiver losing events by answering 4xx (issue 22, item 1).
    answers = iter([413, 400, 501] + [200] * 1000)
    got: list[tuple[int, bytes]] = []

    async def refusing(body: bytes, authorization: str) -> int:
        status = next(answers)
        got.append((status, body))
        return status

    async with Sandbox(keys={"devkey": SECRET}, seed=False, webhook_sinks=[refusing]) as sandbox:
        async with api.LiveKitAPI(sandbox.url, "devkey", SECRET) as lkapi:
            for name in ("first", "second", "third", "fourth"):
                await lkapi.room.create_room(api.CreateRoomRequest(name=name))
        await sandbox.webhooks.drained()
    sent = [(status, json.loads(body)) for status, body in got]
    # One try each, no retry; and the one after them says nothing was dropped.
    assert [(status, e["room"]["name"], e.get("numDropped", 0)) for status, e in sent] == [
        (413, "first", 0),
        (400, "second", 0),
        (501, "third", 0),
        (200, "fourth", 0),
    ]


async def test_history_tells_a_departure_as_the_effect_of_the_change_that_caused_it(in_process: InProcess) -> None:
    # Issue 22, item 12: remove_agent deleted the dispatch, the agent left because of it, and history said it
    # "left by itself", listed before the command that caused it.
    server = in_process(env=get_default_environment() | {"LIVEKIT_MCP_CONFIRM": "off"}, credentials="sandbox")
    async with Client(server) as mcp:
        removed = await ok(mcp, "remove_agent", room="support-call-1042")
        (agent,) = [a["identity"] for a in removed["removed"]]
        result = await until_history(mcp, "support-call-1042", f"'{agent}' (support-agent) left")
    assert isinstance(result.structured_content, dict)
    (session,) = result.structured_content["sessions"]
    events = [(e["event"], e["said"]) for e in session["events"]]
    change = next(n for n, (name, said) in enumerate(events) if name == "changed" and "remove_agent" in said)
    left = next(n for n, (name, _) in enumerate(events) if name == "participant_left")
    assert change < left, events  # cause before effect
    assert events[left][1] == (
        f"agent '{agent}' (support-agent) left because root (stdio) ran remove_agent through livekit-mcp; "
        "LiveKit's reason: CLIENT_INITIATED"
    )
