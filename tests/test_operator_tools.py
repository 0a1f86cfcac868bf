"""The rest of what an operator does with `lk`, through the MCP SDK client, against the sandbox: the server built in
process, as each test's settings make it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from livekit import api
from mcp import Client

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import InProcess, LiveKitTarget, call, fails, identities, ok, room_names, run_cli_here, text

pytestmark = pytest.mark.anyio

MIC_AND_CAMERA: list[dict[str, Any]] = [
    {"type": "AUDIO", "source": "MICROPHONE"},
    {"type": "VIDEO", "source": "CAMERA", "muted": True},
]


async def participant(lk: api.LiveKitAPI, room: str, identity: str) -> api.ParticipantInfo:
    return await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=identity))


# --- get_room ----------------------------------------------------------------------------------------


async def test_get_room_answers_what_is_going_on_in_one_call(in_process: InProcess, admin: SandboxAdmin) -> None:
    await admin.join("support", "customer", tracks=MIC_AND_CAMERA)
    agent = await admin.join_agent("support", "support-agent", state="speaking")
    await admin.join("support", "caller", kind="SIP")
    async with Client(in_process()) as client:
        data = await ok(client, "get_room", room="support")
    assert data["room"]["name"] == "support"
    assert data["participants_by_kind"] == {"STANDARD": 1, "AGENT": 1, "SIP": 1}
    assert [(a["identity"], a["state"]) for a in data["agents"]] == [(agent["identity"], "speaking")]
    assert "support-agent" in {d["agent_name"] for d in data["dispatches"]}
    assert "customer" in data["publishers"]
    assert data["empty_timeout"] > 0
    assert data["running_for"].endswith("s") or "h" in data["running_for"]


async def test_get_room_of_a_missing_room_says_so(in_process: InProcess, admin: SandboxAdmin) -> None:
    async with Client(in_process()) as client:
        assert "room 'ghost' does not exist" in await fails(client, "get_room", room="ghost")


# --- get_participant ---------------------------------------------------------------------------------


async def test_get_participant_gives_tracks_permission_attributes_and_metadata(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join(
        "r",
        "dana",
        name="Dana",
        tracks=MIC_AND_CAMERA,
        attributes={"team": "blue"},
        metadata='{"tier": "gold"}',
        permission={"can_subscribe": True, "can_publish": True, "can_publish_data": True},
    )
    async with Client(in_process()) as client:
        data = await ok(client, "get_participant", room="r", identity="dana")
    assert [(t["type"], t["source"], t["muted"]) for t in data["tracks"]] == [
        ("AUDIO", "MICROPHONE", False),
        ("VIDEO", "CAMERA", True),
    ]
    assert all(t["sid"].startswith("TR_") for t in data["tracks"])
    assert data["permission"]["can_publish"] is True
    assert data["permission"]["hidden"] is False
    assert data["attributes"] == {"team": "blue"}
    assert data["metadata"] == '{"tier": "gold"}'


async def test_get_participant_names_the_missing_participant(in_process: InProcess, admin: SandboxAdmin) -> None:
    await admin.join("r", "dana")
    async with Client(in_process()) as client:
        assert "participant 'ghost' is not in room 'r'" in await fails(
            client, "get_participant", room="r", identity="ghost"
        )
        assert "room 'nowhere' does not exist" in await fails(
            client, "get_participant", room="nowhere", identity="dana"
        )


# --- create_room / update_room_metadata --------------------------------------------------------------


async def test_create_room_creates_it_and_says_when_it_already_existed(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    async with Client(in_process()) as client:
        first = await ok(client, "create_room", room="webinar", empty_timeout=600, max_participants=50)
        again = await call(client, "create_room", room="webinar", metadata="v2")
    assert first["created"] is True
    assert (first["empty_timeout"], first["max_participants"]) == (600, 50)
    assert not again.is_error
    assert again.structured_content is not None
    assert again.structured_content["created"] is False
    # CreateRoom leaves an existing room as it is (as livekit-server does): the answer says so.
    assert again.structured_content["not_applied"] == {"metadata": "v2"}
    assert (again.structured_content["empty_timeout"], again.structured_content["max_participants"]) == (600, 50)
    assert "already existed" in text(again)
    assert "left unchanged" in text(again)
    rooms = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["webinar"]))).rooms
    assert len(rooms) == 1
    assert rooms[0].sid == first["room"]["sid"]
    assert (rooms[0].max_participants, rooms[0].metadata) == (50, "")


async def test_update_room_metadata_changes_the_room(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "a")
    async with Client(in_process()) as client:
        await ok(client, "update_room_metadata", room="r", metadata='{"topic": "Q3"}')
        missing = await fails(client, "update_room_metadata", room="ghost", metadata="x")
        huge = await fails(client, "update_room_metadata", room="r", metadata="x" * (512 * 1024 + 1))
    assert "does not exist" in missing
    assert "metadata" in huge
    assert "524,288 bytes" in huge
    rooms = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["r"]))).rooms
    assert rooms[0].metadata == '{"topic": "Q3"}'


# --- update_participant ------------------------------------------------------------------------------


async def test_update_participant_merges_attributes_and_deletes_empty_ones(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "dana", attributes={"team": "blue", "seat": "4"})
    async with Client(in_process()) as client:
        data = await ok(
            client,
            "update_participant",
            room="r",
            identity="dana",
            name="Dana S.",
            metadata='{"tier":"gold"}',
            attributes={"seat": "", "vip": "1"},
        )
    assert data["changed"] == ["name", "metadata", "attributes"]
    info = await participant(lkapi, "r", "dana")
    assert dict(info.attributes) == {"team": "blue", "vip": "1"}
    assert info.name == "Dana S."
    assert info.metadata == '{"tier":"gold"}'  # JSON metadata arrives as the exact string sent


async def test_update_participant_permission_replaces_it_whole_and_shows_before_and_after(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "dana", permission={"can_subscribe": True, "can_publish": True, "can_publish_data": True})
    async with Client(in_process()) as client:
        result = await call(client, "update_participant", room="r", identity="dana", permission={"can_subscribe": True})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["permission_before"]["can_publish"] is True
    assert result.structured_content["participant"]["permission"]["can_publish"] is False
    assert "replaced as a whole" in text(result)
    info = await participant(lkapi, "r", "dana")
    assert (info.permission.can_subscribe, info.permission.can_publish, info.permission.can_publish_data) == (
        True,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "at least one"),
        ({"metadata": "", "name": ""}, "at least one"),
        ({"name": "a\x07b"}, "name"),
        ({"name": "n" * 257}, "name"),
        ({"attributes": {"k": "v" * (64 * 1024)}}, "attributes"),
        ({"permission": {"can_publish_sources": ["SMELL"]}}, "can_publish_sources"),
    ],
)
async def test_update_participant_refuses_bad_input_without_touching_livekit(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI, args: dict[str, Any], field: str
) -> None:
    await admin.join("r", "dana", name="Dana")
    async with Client(in_process()) as client:
        message = await fails(client, "update_participant", room="r", identity="dana", **args)
    assert field in message
    assert (await participant(lkapi, "r", "dana")).name == "Dana"


# --- mute_track --------------------------------------------------------------------------------------


async def test_mute_track_mutes_it_and_an_unmute_is_explained(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    joined = await admin.join("r", "dana", tracks=MIC_AND_CAMERA)
    mic = joined["tracks"][0]["sid"]
    async with Client(in_process()) as client:
        data = await ok(client, "mute_track", room="r", identity="dana", track_sid=mic, muted=True)
        unmute = await fails(client, "mute_track", room="r", identity="dana", track_sid=mic, muted=False)
        unknown = await fails(client, "mute_track", room="r", identity="dana", track_sid="TR_nope", muted=True)
        nobody = await fails(client, "mute_track", room="r", identity="ghost", track_sid=mic, muted=True)
    assert data["track"] == {"sid": mic, "type": "AUDIO", "source": "MICROPHONE", "muted": True}
    assert "unmute" in unmute
    assert "themselves" in unmute
    assert "TR_nope" in unknown
    assert mic in unknown  # lists the tracks that do exist
    assert "participant 'ghost' is not in room 'r'" in nobody
    assert (await participant(lkapi, "r", "dana")).tracks[0].muted is True


# --- send_data ---------------------------------------------------------------------------------------


async def test_send_data_checks_sizes_and_the_room_before_sending(in_process: InProcess, admin: SandboxAdmin) -> None:
    await admin.join("r", "dana")
    async with Client(in_process()) as client:
        sent = await ok(client, "send_data", room="r", data="hello", topic="chat", destination_identities=["dana"])
        too_big = await fails(client, "send_data", room="r", data="x" * 1301, reliable=False)
        no_room = await fails(client, "send_data", room="ghost", data="hello")
    assert sent == {
        "room": "r",
        "bytes": 5,
        "topic": "chat",
        "destination_identities": ["dana"],
        "reliable": True,
        "outcome": "done",  # a data message on the shutdown topic is confirmed first; this one was sent at once
    }
    assert "1,300" in too_big
    assert "room 'ghost' does not exist" in no_room
    room = next(r for r in (await admin.state())["rooms"] if r["name"] == "r")
    assert len(room["data"]) == 1  # the refused ones never reached LiveKit
    delivered = room["data"][0]
    assert base64.b64decode(delivered["data"]) == b"hello"
    assert (delivered["topic"], delivered["destination_identities"], delivered["kind"]) == (
        "chat",
        ["dana"],
        "RELIABLE",
    )


# --- dispatches --------------------------------------------------------------------------------------


async def test_dispatch_agent_creates_the_room_and_the_dispatch_then_cancel_removes_it(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    async with Client(in_process()) as client:
        made = await ok(
            client, "dispatch_agent", room="new-room", agent_name="helper", metadata='{"lang": "fr"}', wait_seconds=0
        )
        listed = await ok(client, "list_dispatches", room="new-room")
        dispatch_id = made["dispatch"]["id"]
        assert dispatch_id.startswith("AD_")
        assert any("was created" in note for note in made["notes"])
        assert dispatch_id in {d["id"] for d in listed["dispatches"]}
        await ok(client, "cancel_dispatch", room="new-room", dispatch_id=dispatch_id)
        again = await fails(client, "cancel_dispatch", room="new-room", dispatch_id=dispatch_id)
        missing_room = await fails(client, "list_dispatches", room="ghost")
    assert f"dispatch '{dispatch_id}' does not exist" in again
    assert "room 'ghost' does not exist" in missing_room
    assert made["dispatch"]["metadata"] == '{"lang": "fr"}'
    remaining = await lkapi.agent_dispatch.list_dispatch("new-room")
    assert dispatch_id not in {d.id for d in remaining}


async def test_remove_agent_removes_the_agent_and_its_dispatch_so_it_stays_out(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await admin.join("support", "customer")
    agent = await admin.join_agent("support", "support-agent")
    async with Client(in_process(), mode=mode) as client:
        data = await ok(client, "remove_agent", room="support")
    assert [a["identity"] for a in data["removed"]] == [agent["identity"]]
    assert len(data["cancelled_dispatches"]) == 1
    assert await identities(lkapi, "support") == {"customer"}
    assert "support-agent" not in {d.agent_name for d in await lkapi.agent_dispatch.list_dispatch("support")}


async def test_remove_agent_with_keep_out_false_keeps_the_dispatch(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    await admin.join_agent("support", "support-agent")
    await admin.join_agent("support", "note-taker")
    async with Client(in_process()) as client:
        data = await ok(client, "remove_agent", room="support", agent_name="support-agent", keep_out=False)
    assert data["cancelled_dispatches"] == []
    assert any("keep_out=true" in step for step in data["steps"])
    left = await identities(lkapi, "support")
    assert "customer" in left
    assert len(left) == 2  # the note-taker stays
    assert "support-agent" in {d.agent_name for d in await lkapi.agent_dispatch.list_dispatch("support")}


async def test_remove_agent_when_there_is_none_lists_the_agents_that_are_there(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join_agent("support", "note-taker")
    async with Client(in_process()) as client:
        message = await fails(client, "remove_agent", room="support", agent_name="support-agent")
    assert "no agent matching" in message
    assert "note-taker" in message


# --- toolsets, read-only, resources ------------------------------------------------------------------


async def test_toolsets_list_only_their_tools(in_process: InProcess) -> None:
    async with Client(in_process(toolsets="agents,data")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        hidden = await client.call_tool("delete_room", {"room": "x"})
    agents_and_data = {
        "find_agent",
        "list_dispatches",
        "dispatch_agent",
        "cancel_dispatch",
        "remove_agent",
        "send_data",
    }
    assert names == agents_and_data | {"list_projects"}  # whatever the toolsets: every tool takes a `project`
    assert hidden.is_error


async def test_read_only_lists_and_allows_only_tools_that_change_nothing(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "dana")
    async with Client(in_process(read_only=True)) as client:
        tools = (await client.list_tools()).tools
        refused = await client.call_tool("remove_participant", {"room": "r", "identity": "dana"})
    assert tools
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    assert refused.is_error
    assert await identities(lkapi, "r") == {"dana"}


def test_an_unknown_toolset_is_refused_at_start(livekit: LiveKitTarget) -> None:
    done = run_cli_here("--toolsets", "rooms,bogus", env=livekit.env())
    assert done.returncode == 2
    assert "unknown toolset bogus" in done.stderr


async def test_resources_give_the_rooms_and_a_room_snapshot(in_process: InProcess, admin: SandboxAdmin) -> None:
    await admin.join("support", "customer")
    await admin.join_agent("support", "support-agent")
    async with Client(in_process()) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        rooms = await client.read_resource("livekit://rooms")
        room = await client.read_resource("livekit://rooms/support")
    assert "livekit://rooms" in listed
    assert "livekit://rooms/{room}" in templates
    assert '"support"' in getattr(rooms.contents[0], "text", "")
    assert '"support-agent"' in getattr(room.contents[0], "text", "")


async def test_every_room_is_gone_after_delete_and_others_remain(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("a", "x")
    await admin.join("b", "y")
    async with Client(in_process()) as client:
        await ok(client, "delete_room", room="a")
    assert await room_names(lkapi) == {"b"}
