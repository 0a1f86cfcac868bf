"""The server as users run it: stdio spawned by a host (with --sandbox or real credentials), HTTP and SSE."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from livekit import api
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.stdio import get_default_environment
from mcp.types import ElicitRequestParams, ElicitResult

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import LiveKitTarget, Served, fails, identities, ok, stdio

pytestmark = pytest.mark.anyio

READ_TOOLS = {
    "list_rooms",
    "get_room",
    "room_history",
    "list_participants",
    "get_participant",
    "find_agent",
    "list_dispatches",
    "list_projects",
}
TOOLS = READ_TOOLS | {
    "create_room",
    "update_room_metadata",
    "update_participant",
    "mute_track",
    "send_data",
    "dispatch_agent",
    "remove_participant",
    "delete_room",
    "remove_agent",
    "cancel_dispatch",
    "perform_rpc",
}


async def test_an_assistant_finds_and_removes_the_demo_agent_over_stdio_with_the_built_in_sandbox(mode: str) -> None:
    asked: list[str] = []

    async def user_agrees(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        answer = {"room": "town-hall"} if "Type the room's name" in params.message else {"confirm": True}
        return ElicitResult(action="accept", content=answer)

    # A host's environment is nearly empty: no LiveKit credentials at all, only --sandbox.
    async with Client(
        stdio(get_default_environment(), "--sandbox"), mode=mode, elicitation_callback=user_agrees
    ) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == TOOLS
        found = await ok(client, "find_agent", room="support-call-1042")
        agent = found["agents"][0]
        assert agent["agent_name"]
        await ok(client, "remove_participant", room="support-call-1042", identity=agent["identity"])
        after = await ok(client, "list_participants", room="support-call-1042")
        assert agent["identity"] not in {p["identity"] for p in after["participants"]}
        assert after["total"] >= 1  # the customer is still there
        deleted = await ok(client, "delete_room", room="town-hall")
        assert deleted["total_disconnected"] > 10
        rooms = await ok(client, "list_rooms")
        assert "town-hall" not in {r["name"] for r in rooms["rooms"]}
    # Both destructive calls were put to the user first, with who would be disconnected.
    assert len(asked) == 2
    assert agent["identity"] in asked[0]
    assert "disconnects 41 participant(s)" in asked[1]


async def test_stdio_server_with_credentials_from_the_environment_changes_the_real_sandbox(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await admin.join("call", "alice")
    await admin.join("call", "bob")
    async with Client(stdio(livekit.env()), mode=mode) as client:
        await ok(client, "remove_participant", room="call", identity="bob")
    assert await identities(lkapi, "call") == {"alice"}


async def test_sse_transport_serves_the_same_tools(
    serve_http: Callable[..., Served], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    server = serve_http(transport="sse")
    await admin.join("call", "alice")
    async with Client(sse_client(server.url)) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        data = await ok(client, "list_participants", room="call")
        await fails(client, "delete_room", room="ghost")
        await ok(client, "delete_room", room="call")
    assert [p["identity"] for p in data["participants"]] == ["alice"]
    assert not (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["call"]))).rooms


async def test_tool_annotations_are_honest(http_server: Served) -> None:
    async with Client(http_server.url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("list_rooms", "list_participants", "find_agent"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True
    for name in ("remove_participant", "delete_room"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint in (None, False)  # left out: the spec's default is false
        assert annotations.destructive_hint is True
    for tool in tools.values():
        assert tool.description


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Host": "evil.example:8000"}, 421), ({"Origin": "http://evil.example"}, 403)],
)
async def test_http_refuses_foreign_host_and_origin_headers(
    http_server: Served, headers: dict[str, str], status: int
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(http_server.url, json=body, headers=accept | headers) as response,
    ):
        assert response.status == status


async def test_http_bound_to_all_interfaces_still_checks_the_host(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    server = serve_http("--host", "0.0.0.0", "--allow-unauthenticated")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url, json=body, headers=accept | {"Host": "evil.example"}) as response,
    ):
        assert response.status == 421
    async with Client(server.url) as client:
        assert len((await client.list_tools()).tools) == len(TOOLS)
