"""Every tool end to end against the REAL LiveKit server (realkit/livekit_server.py): the MCP SDK client over
streamable HTTP -> livekit-mcp -> livekit-server, with real participants (WebRTC) and real agent workers.

The state after each change is checked with `livekit-api` and, where a participant can see the effect, with
the participant itself (the message it received, the mute it was told of, why it was disconnected).
Waits are bounded (`until`); room names are unique, so tests share the session's server.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import api, rtc
from mcp import Client
from pydantic import SecretStr

from livekit_mcp.errors import DispatchNotFound, ParticipantNotFound, RoomNotFound
from livekit_mcp.livekit_backend import LiveKit
from realkit.agents import RealAgentWorker, start_real_agent_worker
from realkit.livekit_server import RealLiveKitServer
from realkit.participants import RealPeople
from realkit.processes import until
from tests.conftest import LiveKitTarget, Served, call, fails, ok, text

pytestmark = pytest.mark.anyio

AGENT = "real-helper"
JOIN = 20.0
"""Seconds an agent may take to join after its dispatch (a worker job starts in well under a second)."""
QUICK_TIMEOUT = "2"
"""LIVEKIT_MCP_TIMEOUT of `quick_http`: below the 3 s LiveKit takes to answer a call routed to nowhere, so a
tool that sent such a call instead of checking first ends in our timeout, not in its not-found answer."""


@pytest.fixture(scope="module")
def quick_http(real_target: LiveKitTarget, serve_http: Callable[..., Served]) -> Served:
    """A `livekit-mcp --transport http` against the real server whose LiveKit calls may take 2 s at most."""
    return serve_http(env=real_target.env(LIVEKIT_MCP_TIMEOUT=QUICK_TIMEOUT))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def room(real_lkapi: api.LiveKitAPI) -> AsyncIterator[str]:
    """A unique room name; the room (if any) is deleted afterwards, so nothing lingers for the next test."""
    name = unique("real")
    yield name
    with contextlib.suppress(api.TwirpError):
        await real_lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


async def participants(lk: api.LiveKitAPI, room: str) -> dict[str, api.ParticipantInfo]:
    response = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity: p for p in response.participants}


async def agent_participants(lk: api.LiveKitAPI, room: str, agent_name: str) -> list[api.ParticipantInfo]:
    """The agent participants in the room under `agent_name`, as livekit-api sees them (one listing)."""
    return [
        p
        for p in (await participants(lk, room)).values()
        if p.kind == api.ParticipantInfo.Kind.AGENT and p.attributes.get("lk.agent_name") == agent_name
    ]


async def agents(lk: api.LiveKitAPI, room: str, agent_name: str) -> list[str]:
    """Identities of the agent participants in the room under `agent_name`."""
    return [p.identity for p in await agent_participants(lk, room, agent_name)]


async def one_agent(lk: api.LiveKitAPI, room: str, agent_name: str) -> str:
    """Waits for the agent to join (and set its state, as a voice agent does); its identity."""
    listening: list[str] = []

    async def listens() -> bool:
        found = await agent_participants(lk, room, agent_name)
        listening[:] = [p.identity for p in found if p.attributes.get("lk.agent.state") == "listening"]
        return bool(listening)

    await until(f"agent '{agent_name}' joins '{room}' and listens", listens, JOIN)
    (identity,) = listening
    return identity


async def stays_out(lk: api.LiveKitAPI, room: str, agent_name: str, seconds: float = 3.0) -> None:
    """Watches the room for a while: no agent of that name may come back (bounded, polled like `until`)."""
    with anyio.move_on_after(seconds):
        while True:
            assert await agents(lk, room, agent_name) == [], f"agent '{agent_name}' came back to '{room}'"
            await anyio.sleep(0.2)


async def dispatch_ids(lk: api.LiveKitAPI, room: str) -> dict[str, str]:
    return {d.id: d.agent_name for d in await lk.agent_dispatch.list_dispatch(room)}


async def room_info(lk: api.LiveKitAPI, room: str) -> api.Room:
    (info,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
    return info


# --- rooms -------------------------------------------------------------------------------------------


async def test_a_room_from_creation_to_deletion(
    real_http: Served, real_lkapi: api.LiveKitAPI, real_people: RealPeople, room: str
) -> None:
    missing = unique("missing")
    async with Client(real_http.url) as client:
        made = await ok(client, "create_room", room=room, empty_timeout=600, max_participants=5, metadata="v1")
        assert made["created"] is True
        assert "not_applied" not in made
        info = await room_info(real_lkapi, room)
        assert (info.empty_timeout, info.max_participants, info.metadata) == (600, 5, "v1")

        # CreateRoom on an existing room returns it unchanged: the tool must not claim otherwise.
        again = await call(client, "create_room", room=room, empty_timeout=900, max_participants=7, metadata="v2")
        assert not again.is_error, text(again)
        assert again.structured_content is not None
        assert again.structured_content["created"] is False
        assert again.structured_content["not_applied"] == {
            "empty_timeout": 900,
            "max_participants": 7,
            "metadata": "v2",
        }
        assert (again.structured_content["empty_timeout"], again.structured_content["max_participants"]) == (600, 5)
        assert "left unchanged" in text(again)
        assert "empty timeout 600 s" in text(again)
        info = await room_info(real_lkapi, room)
        assert (info.sid, info.empty_timeout, info.max_participants, info.metadata) == (
            made["room"]["sid"],
            600,
            5,
            "v1",
        )

        alice = await real_people.join(room, "alice")
        await until("the server counts alice", lambda: _counted(real_lkapi, room, 1))
        listed = await ok(client, "list_rooms", names=[room, missing])
        assert [(r["name"], r["participants"]) for r in listed["rooms"]] == [(room, 1)]
        assert listed["not_found"] == [missing]

        updated = await ok(client, "update_room_metadata", room=room, metadata='{"topic": "launch"}')
        assert updated["metadata"] == '{"topic": "launch"}'
        assert (await room_info(real_lkapi, room)).metadata == '{"topic": "launch"}'
        await until("alice sees the new room metadata", lambda: alice.room.metadata == '{"topic": "launch"}')

        detail = await ok(client, "get_room", room=room)
        assert detail["room"]["sid"] == info.sid
        assert detail["participants_by_kind"] == {"STANDARD": 1}
        assert (detail["empty_timeout"], detail["max_participants"]) == (600, 5)
        assert [d["agent_name"] for d in detail["dispatches"]] == [""]  # every new room has a default dispatch

        everything = json.loads(getattr((await client.read_resource("livekit://rooms")).contents[0], "text", ""))
        assert room in {r["name"] for r in everything["rooms"]}
        snapshot = await client.read_resource(f"livekit://rooms/{room}")
        assert json.loads(getattr(snapshot.contents[0], "text", ""))["participants_by_kind"] == {"STANDARD": 1}

        deleted = await ok(client, "delete_room", room=room)
        assert deleted["disconnected"] == {"STANDARD": 1}
        assert (await real_lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms == []
        await until(
            "alice is told the room was deleted",
            lambda: rtc.DisconnectReason.ROOM_DELETED in alice.disconnect_reasons,
        )
        twice = await fails(client, "delete_room", room=room)
    assert f"room '{room}' does not exist" in twice


async def _counted(lk: api.LiveKitAPI, room: str, n: int) -> bool:
    return (await room_info(lk, room)).num_participants == n


# --- participants ------------------------------------------------------------------------------------


async def test_participants_listed_changed_muted_messaged_and_removed(
    real_http: Served, quick_http: Served, real_lkapi: api.LiveKitAPI, real_people: RealPeople, room: str
) -> None:
    alice = await real_people.join(room, "alice", name="Alice", audio=True)
    caller = await real_people.join(room, "caller", kind="sip")
    (mic,) = alice.track_sids
    # ListParticipants shows a new track a moment after it is published.
    await until("the server lists alice's microphone", lambda: _has_track(real_lkapi, room, "alice", mic))
    async with Client(real_http.url) as client:
        listed = await ok(client, "list_participants", room=room)
        assert {p["identity"]: p["kind"] for p in listed["participants"]} == {"alice": "STANDARD", "caller": "SIP"}
        assert caller.room.local_participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
        sip = await ok(client, "list_participants", room=room, kind="SIP")
        assert [p["identity"] for p in sip["participants"]] == ["caller"]

        got = await ok(client, "get_participant", room=room, identity="alice")
        assert (got["name"], got["kind"]) == ("Alice", "STANDARD")
        assert [(t["sid"], t["type"], t["source"]) for t in got["tracks"]] == [(mic, "AUDIO", "MICROPHONE")]

        await ok(
            client,
            "update_participant",
            room=room,
            identity="alice",
            metadata='{"role": "host"}',
            attributes={"team": "blue", "desk": "7"},
        )
        info = (await participants(real_lkapi, room))["alice"]
        assert (info.metadata, dict(info.attributes)) == ('{"role": "host"}', {"team": "blue", "desk": "7"})
        await until(
            "alice sees her new metadata and attributes",
            lambda: (
                alice.room.local_participant.metadata == '{"role": "host"}'
                and alice.room.local_participant.attributes == {"team": "blue", "desk": "7"}
            ),
        )
        await ok(client, "update_participant", room=room, identity="alice", attributes={"desk": ""})
        assert dict((await participants(real_lkapi, room))["alice"].attributes) == {"team": "blue"}

        muted = await ok(client, "mute_track", room=room, identity="alice", track_sid=mic, muted=True)
        assert (muted["track"]["sid"], muted["track"]["muted"]) == (mic, True)
        await until("alice is told her microphone was muted", lambda: mic in alice.muted)
        assert (await participants(real_lkapi, room))["alice"].tracks[0].muted is True
        unmute = await fails(client, "mute_track", room=room, identity="alice", track_sid=mic, muted=False)
        assert "themselves" in unmute
        assert alice.unmuted == []
        unknown = await fails(client, "mute_track", room=room, identity="alice", track_sid="TR_nope", muted=True)
        assert "TR_nope" in unknown
        assert mic in unknown

        sent = await ok(client, "send_data", room=room, data="hello", topic="chat", destination_identities=["alice"])
        assert sent["bytes"] == 5
        await until("alice receives the message", lambda: bool(alice.data))
        assert [(p.data, p.topic) for p in alice.data] == [(b"hello", "chat")]
        await ok(client, "send_data", room=room, data="to all")
        await until("the caller receives the broadcast", lambda: bool(caller.data))
        assert [(p.data, p.topic) for p in caller.data] == [(b"to all", "")]  # not the message for alice only

        # A permission replaces the whole permission; without can_publish the server unpublishes the track.
        revoked = await call(
            client,
            "update_participant",
            room=room,
            identity="alice",
            permission={"can_subscribe": True, "can_publish_data": True},
        )
        assert not revoked.is_error, text(revoked)
        assert revoked.structured_content is not None
        assert revoked.structured_content["permission_before"]["can_publish"] is True
        assert revoked.structured_content["participant"]["permission"]["can_publish"] is False
        assert "unpublished their 1 track(s)" in text(revoked)
        info = (await participants(real_lkapi, room))["alice"]
        assert (info.permission.can_subscribe, info.permission.can_publish, info.permission.can_publish_data) == (
            True,
            False,
            True,
        )
        await until("the server unpublishes alice's microphone", lambda: _no_tracks(real_lkapi, room, "alice"))
        await until(
            "alice sees her new permission", lambda: alice.room.local_participant.permissions.can_publish is False
        )

        removed = await ok(client, "remove_participant", room=room, identity="caller")
        assert (removed["kind"], removed["identity"]) == ("SIP", "caller")
        assert set(await participants(real_lkapi, room)) == {"alice"}
        await until(
            "the caller is told it was removed",
            lambda: rtc.DisconnectReason.PARTICIPANT_REMOVED in caller.disconnect_reasons,
        )

    # Not-found in a live room: each names the participant, without waiting on LiveKit's 3 s (see quick_http).
    missing: list[tuple[str, dict[str, Any]]] = [
        ("get_participant", {}),
        ("update_participant", {"metadata": "m"}),
        ("mute_track", {"track_sid": mic, "muted": True}),
        ("remove_participant", {}),
    ]
    async with Client(quick_http.url) as quick:
        for tool, args in missing:
            message = await fails(quick, tool, room=room, identity="caller", **args)
            assert f"participant 'caller' is not in room '{room}'" in message, (tool, message)
    assert alice.connected


async def _no_tracks(lk: api.LiveKitAPI, room: str, identity: str) -> bool:
    return not (await participants(lk, room))[identity].tracks


async def _has_track(lk: api.LiveKitAPI, room: str, identity: str, sid: str) -> bool:
    found = (await participants(lk, room)).get(identity)
    return found is not None and sid in {t.sid for t in found.tracks}


# --- what is not there -------------------------------------------------------------------------------


async def test_every_tool_says_clearly_and_at_once_that_a_room_does_not_exist(quick_http: Served) -> None:
    ghost = unique("ghost")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_room", {}),
        ("update_room_metadata", {"metadata": "m"}),
        ("delete_room", {}),
        ("list_participants", {}),
        ("get_participant", {"identity": "x"}),
        ("update_participant", {"identity": "x", "metadata": "m"}),
        ("mute_track", {"identity": "x", "track_sid": "TR_x", "muted": True}),
        ("remove_participant", {"identity": "x"}),
        ("send_data", {"data": "x"}),
        ("find_agent", {}),
        ("list_dispatches", {}),
        ("cancel_dispatch", {"dispatch_id": "AD_nope"}),
        ("remove_agent", {}),
    ]
    async with Client(quick_http.url) as client:
        for tool, args in calls:
            message = await fails(client, tool, room=ghost, **args)
            assert f"room '{ghost}' does not exist" in message, (tool, message)
        listed = await ok(client, "list_rooms", names=[ghost])
    assert listed["not_found"] == [ghost]


async def test_the_seam_reads_the_answers_of_calls_routed_to_nothing_as_not_found(
    real_target: LiveKitTarget, real_people: RealPeople, room: str
) -> None:
    """The tools check first; the seam itself must still read LiveKit's 503 "no response from servers"
    (after ~3 s) as "not there" and not retry it into its own timeout."""
    await real_people.join(room, "alice")
    ghost = unique("ghost")
    # LiveKit answers after ~3 s: within a 5 s limit one attempt fits and a second does not, so a 503 retried
    # as transient would end as our Timeout instead of the not-found errors asserted below.
    lk = LiveKit(real_target.url, real_target.api_key, SecretStr(real_target.api_secret), timeout=5, concurrency=6)
    errors: dict[str, Exception] = {}
    answered: set[str] = set()

    async def expect(name: str, call: Callable[[], object]) -> None:
        try:
            await call()  # type: ignore[misc]
        except Exception as exc:  # the kind is asserted below
            errors[name] = exc
        answered.add(name)

    async with lk, anyio.create_task_group() as tg:
        tg.start_soon(expect, "mute, missing room", lambda: lk.mute_track(ghost, "x", "TR_x", True))
        tg.start_soon(expect, "mute, missing participant", lambda: lk.mute_track(room, "nobody", "TR_x", True))
        tg.start_soon(
            expect, "send_data", lambda: lk.send_data(ghost, b"x", reliable=True, topic=None, destination_identities=())
        )
        tg.start_soon(expect, "list_dispatches", lambda: lk.list_dispatches(ghost))
        tg.start_soon(expect, "delete_dispatch, missing room", lambda: lk.delete_dispatch(ghost, "AD_nope"))
        tg.start_soon(expect, "delete_dispatch, unknown id", lambda: lk.delete_dispatch(room, "AD_nope"))
    assert set(errors) == answered, errors
    assert isinstance(errors["mute, missing room"], RoomNotFound)
    assert isinstance(errors["mute, missing participant"], ParticipantNotFound)
    assert isinstance(errors["send_data"], RoomNotFound)
    assert isinstance(errors["list_dispatches"], RoomNotFound)
    assert isinstance(errors["delete_dispatch, missing room"], RoomNotFound)
    assert isinstance(errors["delete_dispatch, unknown id"], DispatchNotFound)


# --- agents ------------------------------------------------------------------------------------------


async def test_a_dispatched_agent_is_found_then_removed_and_kept_out(
    real_http: Served,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    agent_worker: Callable[[str], RealAgentWorker],
    room: str,
) -> None:
    agent_worker(AGENT)
    await real_people.join(room, "customer")
    async with Client(real_http.url) as client:
        made = await ok(client, "dispatch_agent", room=room, agent_name=AGENT, metadata='{"lang": "fr"}')
        dispatch_id = made["dispatch"]["id"]
        assert dispatch_id.startswith("AD_")
        assert made["dispatch"]["metadata"] == '{"lang": "fr"}'
        assert not any("was created" in note for note in made.get("notes") or [])  # the customer's room existed
        assert (await dispatch_ids(real_lkapi, room))[dispatch_id] == AGENT
        identity = await one_agent(real_lkapi, room, AGENT)

        found = await ok(client, "find_agent", room=room)
        assert [(a["identity"], a["agent_name"], a["kind"], a["state"]) for a in found["agents"]] == [
            (identity, AGENT, "AGENT", "listening")
        ]
        everywhere = await ok(client, "find_agent", agent_name=AGENT)
        assert (room, identity) in {(a["room"], a["identity"]) for a in everywhere["agents"]}

        # LiveKit's job list of this dispatch may be empty: the agent in the room is what says it runs.
        listed = await ok(client, "list_dispatches", room=room)
        by_id = {d["id"]: d for d in listed["dispatches"]}
        assert by_id[dispatch_id]["agents_in_room"] == [identity]
        (default,) = [d for d in listed["dispatches"] if d["agent_name"] == ""]
        assert default["agents_in_room"] == []
        detail = await ok(client, "get_room", room=room)
        assert detail["participants_by_kind"] == {"AGENT": 1, "STANDARD": 1}
        assert [a["identity"] for a in detail["agents"]] == [identity]
        assert {d["id"]: d.get("agents_in_room") for d in detail["dispatches"]}[dispatch_id] == [identity]

        removed = await ok(client, "remove_agent", room=room, agent_name=AGENT)
        assert removed["cancelled_dispatches"] == [dispatch_id]
        assert [a["identity"] for a in removed["removed"]] == [identity]
        assert any(identity in step for step in removed["steps"])
    assert dispatch_id not in await dispatch_ids(real_lkapi, room)
    await until("the agent is gone", lambda: _gone(real_lkapi, room, identity))
    await stays_out(real_lkapi, room, AGENT)
    assert set(await participants(real_lkapi, room)) == {"customer"}


async def _gone(lk: api.LiveKitAPI, room: str, identity: str) -> bool:
    return identity not in await participants(lk, room)


async def test_a_removed_agent_stays_out_and_a_cancelled_dispatch_ends_its_agent(
    real_http: Served,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    agent_worker: Callable[[str], RealAgentWorker],
    room: str,
) -> None:
    agent_worker(AGENT)
    await real_people.join(room, "customer")
    async with Client(real_http.url) as client:
        first = (await ok(client, "dispatch_agent", room=room, agent_name=AGENT))["dispatch"]["id"]
        agent = await one_agent(real_lkapi, room, AGENT)

        # remove_participant on an agent: it leaves, its dispatch stays (and the open-source server does not
        # relaunch it).
        removed = await ok(client, "remove_participant", room=room, identity=agent)
        assert (removed["kind"], removed["agent_name"]) == ("AGENT", AGENT)
        assert any("dispatch" in note for note in removed["notes"])
        assert first in await dispatch_ids(real_lkapi, room)
        await stays_out(real_lkapi, room, AGENT, seconds=2.0)

        second = (await ok(client, "dispatch_agent", room=room, agent_name=AGENT))["dispatch"]["id"]
        again = await one_agent(real_lkapi, room, AGENT)
        assert again != agent
        cancelled = await ok(client, "cancel_dispatch", room=room, dispatch_id=second)
        assert cancelled["dispatch"]["agents_in_room"] == [again]
        await until("the cancelled dispatch's agent leaves", lambda: _gone(real_lkapi, room, again), JOIN)
        assert second not in await dispatch_ids(real_lkapi, room)

        quiet = await ok(client, "cancel_dispatch", room=room, dispatch_id=first)
        assert quiet["dispatch"]["agents_in_room"] == []  # its agent was removed before
        assert first not in await dispatch_ids(real_lkapi, room)
        gone = await fails(client, "cancel_dispatch", room=room, dispatch_id=first)
        unknown = await fails(client, "cancel_dispatch", room=room, dispatch_id="AD_nope")
        none_left = await fails(client, "remove_agent", room=room)
    assert f"dispatch '{first}' does not exist in room '{room}'" in gone
    assert f"dispatch 'AD_nope' does not exist in room '{room}'" in unknown
    assert "no agent matching" in none_left
    assert set(await participants(real_lkapi, room)) == {"customer"}


async def test_an_automatically_dispatched_agent_is_found_and_removed(
    real_http: Served,
    real_lkapi: api.LiveKitAPI,
    real_people: RealPeople,
    real_livekit: RealLiveKitServer,
    tmp_path: Path,
    room: str,
) -> None:
    # Its own worker, stopped at the end: a worker for "" joins every new room while it runs.
    worker = start_real_agent_worker(real_livekit, "", tmp_path)
    try:
        await real_people.join(room, "visitor")
        identity = await one_agent(real_lkapi, room, "")
        async with Client(real_http.url) as client:
            found = await ok(client, "find_agent", room=room)
            assert [(a["identity"], a["agent_name"]) for a in found["agents"]] == [(identity, "")]
            listed = await ok(client, "list_dispatches", room=room)
            (default,) = listed["dispatches"]
            assert (default["agent_name"], default["agents_in_room"]) == ("", [identity])
            removed = await ok(client, "remove_agent", room=room)
            assert removed["cancelled_dispatches"] == [default["id"]]
        await until("the automatic agent is gone", lambda: _gone(real_lkapi, room, identity))
        await stays_out(real_lkapi, room, "")
        assert default["id"] not in await dispatch_ids(real_lkapi, room)
    finally:
        worker.stop()
