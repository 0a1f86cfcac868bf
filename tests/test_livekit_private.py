"""The private attributes of livekit-api and aiohttp that livekit_backend/_private.py uses are still there and still
behave as it expects: an upgrade that changes them fails here, by name, rather than as a puzzling tool error."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from livekit import api
from livekit.api._service import Service
from livekit.api.twirp_client import TwirpClient

from livekit_mcp.livekit_backend._private import read_with, sign_with, twirp_call
from tests.conftest import SECRET, impostor_livekit

pytestmark = pytest.mark.anyio

Seen = list[tuple[str, str]]


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.fixture
async def livekit_api() -> AsyncIterator[tuple[api.LiveKitAPI, Seen]]:
    """livekit-api pointed at a stand-in that keeps each request's path and authorization, and answers PerformRpc
    with a payload and anything else with an empty message."""
    seen: Seen = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers["Authorization"]))
        body = api.PerformRpcResponse(payload="pong").SerializeToString() if "PerformRpc" in request.path else b""
        return web.Response(body=body, content_type="application/protobuf")

    async with impostor_livekit(answer) as url, aiohttp.ClientSession() as session:
        client = api.LiveKitAPI(url, "key", SECRET, session=session, failover=False)
        yield client, seen
        await client.aclose()


async def test_every_service_we_sign_still_has_an_auth_header_method_and_a_twirp_client(
    livekit_api: tuple[api.LiveKitAPI, Seen],
) -> None:
    client, _ = livekit_api
    assert parameters(Service._auth_header) == ["self", "grants", "sip"]
    assert parameters(TwirpClient.request)[:6] == ["self", "service", "method", "data", "headers", "response_class"]
    for service in (client.room, client.agent_dispatch, client.sip, client.egress, client.ingress):
        assert isinstance(service, Service)
        assert isinstance(service._client, TwirpClient)


async def test_a_replaced_auth_header_signs_every_call_of_the_service(livekit_api: tuple[api.LiveKitAPI, Seen]) -> None:
    client, seen = livekit_api
    grants_seen: list[api.VideoGrants | None] = []

    def ours(grants: api.VideoGrants | None, sip: api.SIPGrants | None = None) -> dict[str, str]:
        grants_seen.append(grants)
        return {"authorization": "Bearer ours"}

    sign_with(client.room, ours)
    await client.room.list_rooms(api.ListRoomsRequest())
    await client.room.list_participants(api.ListParticipantsRequest(room="r"))
    assert [auth for _, auth in seen] == ["Bearer ours", "Bearer ours"]
    assert grants_seen[1] is not None
    assert grants_seen[1].room == "r"


async def test_a_method_without_a_wrapper_is_sent_through_the_services_twirp_client(
    livekit_api: tuple[api.LiveKitAPI, Seen],
) -> None:
    client, seen = livekit_api
    sign_with(client.room, lambda grants, sip=None: {"authorization": f"Bearer for {grants.room if grants else ''}"})
    request = api.PerformRpcRequest(room="r", destination_identity="p", method="ping", payload="")
    grants = api.VideoGrants(room_admin=True, room="r")
    answer = await twirp_call(client.room, "RoomService", "PerformRpc", request, grants, api.PerformRpcResponse)
    assert answer.payload == "pong"
    assert seen == [("/twirp/livekit.RoomService/PerformRpc", "Bearer for r")]


async def test_a_response_class_reads_its_body_with_our_reader_once_and_livekit_api_reads_through_it() -> None:
    reads: list[int] = []
    rooms = api.ListRoomsResponse(rooms=[api.Room(name="from-the-reader")]).SerializeToString()

    async def reader(response: aiohttp.ClientResponse) -> bytes:
        reads.append(response.status)
        await response.content.read()  # what the server sent is left unread otherwise
        return rooms

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"what the server sent", content_type="application/protobuf")

    async with impostor_livekit(answer) as url, aiohttp.ClientSession(response_class=read_with(reader)) as session:
        async with session.get(url) as response:
            assert await response.read() == rooms
            assert await response.read() == rooms
        assert reads == [200]
        client = api.LiveKitAPI(url, "key", SECRET, session=session, failover=False)
        listed = await client.room.list_rooms(api.ListRoomsRequest())
        await client.aclose()
    assert [r.name for r in listed.rooms] == ["from-the-reader"]
