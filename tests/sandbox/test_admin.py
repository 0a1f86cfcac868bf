"""The sandbox itself (sandbox-only): its Python API, its admin API (not part of LiveKit) and its demo data."""

from __future__ import annotations

import json
import signal
import sys

import aiohttp
import anyio
import pytest
from livekit import api
from livekit.protocol import models as proto_models

from livekit_mcp.sandbox import Sandbox, SandboxAdmin, SandboxError

from .conftest import sandbox_only
from .support import KEY, SECRET, Target, token

pytestmark = [pytest.mark.anyio, sandbox_only]

AGENT = proto_models.ParticipantInfo.Kind.AGENT


async def test_start_returns_the_url_of_a_free_loopback_port() -> None:
    sandbox = Sandbox(keys={KEY: SECRET}, seed=False)
    url = await sandbox.start(port=0)
    try:
        assert url == sandbox.url
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0
    finally:
        await sandbox.stop()
    with pytest.raises(RuntimeError):
        _ = sandbox.url


async def test_a_stopped_sandbox_refuses_connections() -> None:
    async with Sandbox(keys={KEY: SECRET}, seed=False) as sandbox:
        url = sandbox.url
    async with api.LiveKitAPI(url, KEY, SECRET) as lk:
        with pytest.raises(aiohttp.ClientConnectionError):
            await lk.room.list_rooms(api.ListRoomsRequest())


async def test_the_demo_data_tells_the_operator_story() -> None:
    async with Sandbox(keys={KEY: SECRET}) as sandbox, api.LiveKitAPI(sandbox.url, KEY, SECRET) as lk:
        rooms = {r.name: r for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms}
        assert set(rooms) == {"support-call-1042", "town-hall", "phone-intake-7", "legacy-bot-room", "standup"}
        assert rooms["standup"].num_participants == 0
        assert rooms["town-hall"].num_participants > 40

        support = (await lk.room.list_participants(api.ListParticipantsRequest(room="support-call-1042"))).participants
        (agent,) = [p for p in support if p.kind == AGENT]
        assert agent.identity.startswith("agent-AJ_")
        assert dict(agent.attributes) == {
            "lk.agent_name": "support-agent",
            "lk.agent.name": "support-agent",
            "lk.agent.state": "listening",
        }
        assert any(p.kind == proto_models.ParticipantInfo.Kind.STANDARD and p.tracks for p in support)

        phone = (await lk.room.list_participants(api.ListParticipantsRequest(room="phone-intake-7"))).participants
        kinds = {proto_models.ParticipantInfo.Kind.Name(p.kind) for p in phone}
        assert kinds == {"SIP", "AGENT"}
        (caller,) = [p for p in phone if p.kind == proto_models.ParticipantInfo.Kind.SIP]
        assert "sip.phoneNumber" in caller.attributes

        legacy = await lk.room.get_participant(
            api.RoomParticipantIdentity(room="legacy-bot-room", identity="legacy-bot")
        )
        assert (legacy.kind, legacy.permission.agent) == (proto_models.ParticipantInfo.Kind.STANDARD, True)

        presenter = await lk.room.get_participant(
            api.RoomParticipantIdentity(room="town-hall", identity="presenter-dana")
        )
        assert {proto_models.TrackSource.Name(t.source) for t in presenter.tracks} == {
            "CAMERA",
            "MICROPHONE",
            "SCREEN_SHARE",
        }


async def test_a_rejoin_with_the_same_identity_replaces_the_participant_with_a_new_sid(admin: SandboxAdmin) -> None:
    first = await admin.join("r", "alice", tracks=[{"type": "AUDIO"}])
    second = await admin.join("r", "alice")
    assert second["sid"] != first["sid"]
    (room,) = (await admin.state())["rooms"]
    assert [p["identity"] for p in room["participants"]] == ["alice"]
    assert (room["num_participants"], room["num_publishers"]) == (1, 0)


async def test_joining_creates_the_room(admin: SandboxAdmin) -> None:
    await admin.join("fresh-room", "alice")
    (room,) = (await admin.state())["rooms"]
    assert room["name"] == "fresh-room"
    assert room["sid"].startswith("RM_")


async def test_a_participant_can_leave(admin: SandboxAdmin, lk: api.LiveKitAPI) -> None:
    await admin.join("r", "alice")
    await admin.leave("r", "alice")
    assert list((await lk.room.list_participants(api.ListParticipantsRequest(room="r"))).participants) == []
    with pytest.raises(SandboxError) as caught:
        await admin.leave("r", "alice")
    assert caught.value.status == 404


async def test_a_full_room_refuses_a_join(admin: SandboxAdmin, lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="small", max_participants=1))
    await admin.join("small", "alice")
    with pytest.raises(SandboxError) as caught:
        await admin.join("small", "bob")
    assert caught.value.status == 409


@pytest.mark.parametrize(
    "body",
    [
        {"identity": "a"},
        {"room": "r", "identity": ""},
        {"room": "r", "identity": "a", "kind": "ROBOT"},
        {"room": "r", "identity": "a", "tracks": [{"type": "DATA"}]},
        {"room": "r", "identity": "a", "permission": {"can_publish": "maybe"}},
        {"room": "r", "identity": "a", "attributes": "not-a-map"},
        {"room": "r", "identity": "a", "attributes": {"k": 1}},
        {"room": "r", "identity": "a", "tracks": [5]},
        {"room": "r", "identity": "a", "kind_details": [3]},
    ],
)
async def test_a_bad_join_is_refused_with_400(
    target: Target, http: aiohttp.ClientSession, body: dict[str, object]
) -> None:
    headers = {"Authorization": f"Bearer {token(target)}"}
    async with http.post(f"{target.url}/_sandbox/participants", json=body, headers=headers) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic x"])
async def test_the_admin_api_needs_a_valid_token(
    target: Target, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with http.get(f"{target.url}/_sandbox/state", headers=headers) as resp:
        assert resp.status == 401


async def test_an_admin_client_with_a_wrong_secret_is_refused(target: Target) -> None:
    async with SandboxAdmin(target.url, KEY, "a-wrong-secret-0123456789abcdef0123456") as admin:
        with pytest.raises(SandboxError) as caught:
            await admin.state()
    assert caught.value.status == 401


async def test_reset_forgets_everything_and_can_reseed(admin: SandboxAdmin) -> None:
    await admin.join("r", "alice")
    await admin.fault("*", error="internal")
    await admin.reset(seed=False)
    state = await admin.state()
    assert (state["rooms"], state["faults"]) == ([], {})
    await admin.reset()
    assert len((await admin.state())["rooms"]) == 5


async def test_the_state_dump_shows_rooms_participants_and_dispatches(admin: SandboxAdmin) -> None:
    agent = await admin.join_agent("r", "helper")
    (room,) = (await admin.state())["rooms"]
    assert [p["identity"] for p in room["participants"]] == [agent["identity"]]
    assert room["participants"][0]["kind"] == "AGENT"
    (dispatch,) = [d for d in room["dispatches"] if d["agent_name"] == "helper"]
    assert dispatch["state"]["jobs"] == []  # as ListDispatch shows it; the jobs are listed beside
    (job,) = room["jobs"]
    assert (job["dispatch_id"], job["state"]["participant_identity"]) == (dispatch["id"], agent["identity"])
    assert agent["identity"] == f"agent-{job['id']}"


async def test_the_state_object_offers_the_admin_operations_in_process(sandbox: Sandbox) -> None:
    p = sandbox.state.join("r", "alice", kind="sip", tracks=[{"type": "VIDEO", "source": "SCREEN_SHARE"}])
    assert p.kind == proto_models.ParticipantInfo.Kind.SIP
    assert p.tracks[0].source == proto_models.TrackSource.SCREEN_SHARE
    assert sandbox.state.populate(room="big", participants=3) == {"rooms": 0, "participants": 3}
    assert len(sandbox.state.rooms["big"].participants) == 3
    sandbox.state.leave("r", "alice")
    assert "alice" not in sandbox.state.rooms["r"].participants


async def test_serve_forever_prints_one_line_on_stderr_and_stops_on_sigterm() -> None:
    code = "from livekit_mcp.sandbox import serve_forever; serve_forever('127.0.0.1', 0, seed=False)"
    async with await anyio.open_process([sys.executable, "-c", code]) as proc:
        assert proc.stderr is not None
        assert proc.stdout is not None
        banner = b""
        with anyio.fail_after(20):
            while not banner.endswith(b"\n"):
                banner += await proc.stderr.receive()
        line = banner.decode()
        assert "devkey" in line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(url + "/") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await proc.wait() == 0
        with pytest.raises(anyio.EndOfStream):
            await proc.stdout.receive()  # nothing was written to stdout


def test_the_admin_fault_body_round_trips_as_json() -> None:
    # The admin API answers with the stored fault; a JSON round trip must not lose a field.
    from livekit_mcp.sandbox import State

    state = State()
    fault = state.fault("RoomService/ListRooms", latency_ms=5, error=("internal", "boom"), times=2)
    assert json.loads(json.dumps(state.snapshot()["faults"]))["RoomService/ListRooms"] == {
        "latency_ms": 5,
        "error_code": "internal",
        "error_msg": "boom",
        "drop": False,
        "malformed": False,
        "times": 2,
    }
    assert fault.times == 2
