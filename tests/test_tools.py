"""Each tool end to end: the MCP SDK client over streamable HTTP (both protocol eras) -> livekit-mcp -> sandbox.

State after a change is checked with the official `livekit-api` client, not with the tool's own answer.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from livekit import api
from mcp import Client

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import Served, call, fails, identities, ok, room_names, text

pytestmark = pytest.mark.anyio

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MIC = [{"type": "AUDIO", "source": "MICROPHONE"}]


async def support_call(admin: SandboxAdmin, room: str = "support") -> dict[str, Any]:
    """A customer with a microphone and a voice agent: the room operators ask about most."""
    await admin.join(room, "customer-1", name="Dana", tracks=MIC)
    return await admin.join_agent(room, "support-agent", state="listening")


# --- list_rooms --------------------------------------------------------------------------------------


async def test_list_rooms_shows_every_room_sorted_with_counts_and_iso_times(
    http_server: Served, admin: SandboxAdmin, mode: str
) -> None:
    await support_call(admin, "b-support")
    await admin.join("a-standup", "alice")
    async with Client(http_server.url, mode=mode) as client:
        data = await ok(client, "list_rooms")
    assert [r["name"] for r in data["rooms"]] == ["a-standup", "b-support"]
    assert data["total"] == 2
    support = data["rooms"][1]
    assert support["participants"] == 1  # the customer: LiveKit's count leaves the agent out
    assert support["sid"].startswith("RM_")
    assert ISO_UTC.match(support["created_at"])
    assert "next_cursor" not in data


async def test_list_rooms_by_name_reports_the_names_that_are_not_rooms(
    http_server: Served, admin: SandboxAdmin
) -> None:
    await admin.join("lobby", "alice")
    async with Client(http_server.url) as client:
        data = await ok(client, "list_rooms", names=["lobby", "nope"])
    assert [r["name"] for r in data["rooms"]] == ["lobby"]
    assert data["not_found"] == ["nope"]


async def test_list_rooms_pages_through_every_room_exactly_once(http_server: Served, admin: SandboxAdmin) -> None:
    await admin.populate(rooms=7, prefix="page-")
    seen: list[str] = []
    async with Client(http_server.url) as client:
        data = await ok(client, "list_rooms", limit=3)
        seen += [r["name"] for r in data["rooms"]]
        while "next_cursor" in data:
            data = await ok(client, "list_rooms", limit=3, cursor=data["next_cursor"])
            seen += [r["name"] for r in data["rooms"]]
    assert len(seen) == 7
    assert seen == sorted(set(seen))
    assert data["total"] == 7


async def test_list_rooms_shortens_long_metadata_and_says_so(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="big", metadata="x" * 5000))
    async with Client(http_server.url) as client:
        data = await ok(client, "list_rooms")
    room = data["rooms"][0]
    assert room["metadata_truncated"] is True
    assert len(room["metadata"]) < 300


# --- list_participants -------------------------------------------------------------------------------


async def test_list_participants_describes_humans_and_agents(
    http_server: Served, admin: SandboxAdmin, mode: str
) -> None:
    agent = await support_call(admin)
    async with Client(http_server.url, mode=mode) as client:
        result = await call(client, "list_participants", room="support")
    assert not result.is_error
    data = result.structured_content
    assert isinstance(data, dict)
    by_identity = {p["identity"]: p for p in data["participants"]}
    assert set(by_identity) == {"customer-1", agent["identity"]}
    customer = by_identity["customer-1"]
    assert customer["kind"] == "STANDARD"
    assert customer["name"] == "Dana"
    assert customer["state"] == "ACTIVE"
    assert customer["tracks"] == {"audio": 1, "video": 0, "muted": 0}
    assert ISO_UTC.match(customer["joined_at"])
    assert "agent_name" not in customer  # nothing the model did not ask for
    bot = by_identity[agent["identity"]]
    assert (bot["kind"], bot["agent_name"], bot["agent_state"]) == ("AGENT", "support-agent", "listening")
    assert "support-agent" in text(result)
    assert data["total"] == 2


async def test_list_participants_filters_by_kind_and_counts_older_agents_as_agents(
    http_server: Served, admin: SandboxAdmin
) -> None:
    await support_call(admin)
    await admin.join(
        "support", "old-bot", permission={"agent": True}, attributes={"lk.agent_name": "legacy"}
    )  # kind STANDARD, but an agent
    async with Client(http_server.url) as client:
        agents = await ok(client, "list_participants", room="support", kind="AGENT")
        humans = await ok(client, "list_participants", room="support", kind="STANDARD")
    assert {p["identity"] for p in humans["participants"]} == {"customer-1"}
    assert len(agents["participants"]) == 2
    assert {p["agent_name"] for p in agents["participants"]} == {"support-agent", "legacy"}


async def test_list_participants_tells_an_empty_room_from_a_missing_one(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="quiet"))
    async with Client(http_server.url) as client:
        empty = await call(client, "list_participants", room="quiet")
        missing = await fails(client, "list_participants", room="ghost")
    assert not empty.is_error
    assert "exists and is empty" in text(empty)
    assert "room 'ghost' does not exist" in missing


async def test_list_participants_pages_with_a_cursor_and_a_total(http_server: Served, admin: SandboxAdmin) -> None:
    await admin.populate(room="webinar", participants=25)
    seen: list[str] = []
    async with Client(http_server.url) as client:
        data = await ok(client, "list_participants", room="webinar", limit=10)
        pages = 1
        seen += [p["identity"] for p in data["participants"]]
        while "next_cursor" in data:
            data = await ok(client, "list_participants", room="webinar", limit=10, cursor=data["next_cursor"])
            pages += 1
            seen += [p["identity"] for p in data["participants"]]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    assert data["total"] == 25


async def test_a_cursor_that_is_not_ours_is_refused_by_name(http_server: Served, admin: SandboxAdmin) -> None:
    await admin.join("r", "a")
    async with Client(http_server.url) as client:
        message = await fails(client, "list_participants", room="r", cursor="not-a-cursor")
    assert "cursor" in message


# --- find_agent --------------------------------------------------------------------------------------


async def test_find_agent_in_a_room_gives_identity_name_and_state(
    http_server: Served, admin: SandboxAdmin, mode: str
) -> None:
    agent = await support_call(admin)
    async with Client(http_server.url, mode=mode) as client:
        data = await ok(client, "find_agent", room="support")
    assert data["agents"] == [
        {
            "room": "support",
            "identity": agent["identity"],
            "sid": agent["sid"],
            "agent_name": "support-agent",
            "state": "listening",
            "kind": "AGENT",
            "joined_at": data["agents"][0]["joined_at"],
        }
    ]
    assert agent["identity"].startswith("agent-AJ_")


async def test_find_agent_without_a_room_searches_every_room(http_server: Served, admin: SandboxAdmin) -> None:
    await support_call(admin, "support-1")
    await support_call(admin, "support-2")
    await admin.join("phone", "caller", kind="SIP")
    await admin.join_agent("phone", "intake-agent", state="speaking")
    await admin.join("legacy", "old-bot", permission={"agent": True}, attributes={"lk.agent_name": "legacy"})
    await admin.join("humans-only", "bob")
    async with Client(http_server.url) as client:
        data = await ok(client, "find_agent")
        intake = await ok(client, "find_agent", agent_name="intake-agent")
    found = {(a["room"], a["agent_name"]) for a in data["agents"]}
    assert found == {
        ("support-1", "support-agent"),
        ("support-2", "support-agent"),
        ("phone", "intake-agent"),
        ("legacy", "legacy"),
    }
    assert data["rooms_searched"] == 5
    assert [(a["room"], a["state"]) for a in intake["agents"]] == [("phone", "speaking")]


async def test_find_agent_says_when_there_is_no_agent_and_when_there_is_no_room(
    http_server: Served, admin: SandboxAdmin
) -> None:
    await admin.join("humans-only", "bob")
    async with Client(http_server.url) as client:
        none = await ok(client, "find_agent", room="humans-only")
        missing = await fails(client, "find_agent", room="ghost")
    assert none["agents"] == []
    assert "does not exist" in missing


# --- remove_participant ------------------------------------------------------------------------------


async def test_remove_participant_disconnects_them_and_warns_the_token_still_works(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    agent = await support_call(admin)
    async with Client(http_server.url, mode=mode) as client:
        result = await call(client, "remove_participant", room="support", identity="customer-1")
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["kind"] == "STANDARD"
    assert result.structured_content["name"] == "Dana"
    assert "rejoin" in text(result)
    assert await identities(lkapi, "support") == {agent["identity"]}


async def test_removing_an_agent_leaves_its_dispatch_and_says_so(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await support_call(admin)
    async with Client(http_server.url) as client:
        data = await ok(client, "remove_participant", room="support", identity=agent["identity"])
    assert data["kind"] == "AGENT"
    assert data["agent_name"] == "support-agent"
    assert any("dispatch" in note for note in data["notes"])
    assert await identities(lkapi, "support") == {"customer-1"}
    dispatches = await lkapi.agent_dispatch.list_dispatch("support")
    assert "support-agent" in {d.agent_name for d in dispatches}


async def test_remove_participant_names_what_is_missing_and_changes_nothing(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await support_call(admin)
    async with Client(http_server.url) as client:
        no_one = await fails(client, "remove_participant", room="support", identity="nobody")
        no_room = await fails(client, "remove_participant", room="ghost", identity="customer-1")
        await ok(client, "remove_participant", room="support", identity="customer-1")
        twice = await fails(client, "remove_participant", room="support", identity="customer-1")
    assert "participant 'nobody' is not in room 'support'" in no_one
    assert "room 'ghost' does not exist" in no_room
    assert "participant 'customer-1' is not in room 'support'" in twice
    assert await identities(lkapi, "support") == {agent["identity"]}


# --- delete_room -------------------------------------------------------------------------------------


async def test_delete_room_reports_who_was_disconnected_by_kind(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await support_call(admin, "town-hall")
    await admin.join("town-hall", "viewer-1")
    await admin.join("town-hall", "caller", kind="SIP")
    await admin.join("other", "bob")
    async with Client(http_server.url, mode=mode) as client:
        data = await ok(client, "delete_room", room="town-hall")
    assert data["disconnected"] == {"STANDARD": 2, "AGENT": 1, "SIP": 1}
    assert data["total_disconnected"] == 4
    assert await room_names(lkapi) == {"other"}


async def test_delete_room_of_a_missing_room_fails_and_deletes_nothing(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("other", "bob")
    async with Client(http_server.url) as client:
        message = await fails(client, "delete_room", room="ghost")
    assert "room 'ghost' does not exist" in message
    assert await room_names(lkapi) == {"other"}


# --- Bad input: refused by name, before anything reaches LiveKit -------------------------------------

BAD_INPUT = [
    ("list_participants", {"room": ""}, "room"),
    ("list_participants", {"room": "   "}, "room"),
    ("list_participants", {"room": "a\x00b"}, "room"),
    ("list_participants", {"room": "r" * 257}, "room"),
    ("list_participants", {"room": 42}, "room"),
    ("list_participants", {"room": "ok", "kind": "ROBOT"}, "kind"),
    ("list_participants", {"room": "ok", "limit": 0}, "limit"),
    ("list_rooms", {"limit": 501}, "limit"),
    ("list_rooms", {"names": "not-a-list"}, "names"),
    ("list_rooms", {"names": ["ok", "\n"]}, "names"),
    ("find_agent", {"agent_name": "x" * 300}, "agent_name"),
    ("remove_participant", {"room": "ok"}, "identity"),
    ("remove_participant", {"room": "ok", "identity": "\t"}, "identity"),
    ("remove_participant", {"room": "ok", "identity": "i" * 257}, "identity"),
    ("delete_room", {"room": ["a"]}, "room"),
    ("delete_room", {}, "room"),
]


@pytest.mark.parametrize(("tool", "args", "field"), BAD_INPUT)
async def test_bad_input_is_refused_by_name_before_livekit_is_called(
    http_server: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI, tool: str, args: dict[str, Any], field: str
) -> None:
    await admin.join("ok", "someone")
    # Any call that reached LiveKit would come back with this error instead of the validation message.
    await admin.fault("*", error=("internal", "LiveKit was called"))
    async with Client(http_server.url) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    message = text(result)
    assert field in message
    assert "LiveKit was called" not in message
    assert "errors.pydantic.dev" not in message  # one line per field, not pydantic's report
    await admin.clear_faults()
    assert await identities(lkapi, "ok") == {"someone"}
