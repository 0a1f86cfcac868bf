"""Twirp as livekit-server 1.13.5 serves it (on both backends): routes, content types, codecs, errors, bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from livekit import api
from livekit.protocol import room as proto_room

from .conftest import Twirp, big_body, sandbox_only
from .support import Target, token, unique

pytestmark = pytest.mark.anyio

LIST = api.VideoGrants(room_list=True)
CREATE = api.VideoGrants(room_create=True)


async def test_a_json_request_gets_a_json_response_with_snake_case_keys(twirp: Twirp, room: str) -> None:
    reply = await twirp("RoomService/ListRooms", {"names": [room]}, grants=LIST)
    assert reply.status == 200
    assert reply.content_type == "application/json"
    (info,) = reply.json()["rooms"]
    assert info["name"] == room
    assert "empty_timeout" in info
    assert "emptyTimeout" not in info


async def test_a_json_response_emits_every_field_with_int64_as_strings(twirp: Twirp, room: str) -> None:
    info = (await twirp("RoomService/ListRooms", {"names": [room]}, grants=LIST)).json()["rooms"][0]
    assert info["metadata"] == ""
    assert info["num_participants"] == 0
    assert info["num_publishers"] == 0
    assert isinstance(info["creation_time"], str)
    assert int(info["creation_time"]) > 0


async def test_json_requests_accept_camel_case_keys(twirp: Twirp) -> None:
    name = unique("camel-case")
    reply = await twirp("RoomService/CreateRoom", {"name": name, "emptyTimeout": 42}, grants=CREATE)
    assert reply.status == 200
    assert reply.json()["empty_timeout"] == 42
    await twirp("RoomService/DeleteRoom", {"room": name}, grants=CREATE)


async def test_json_requests_ignore_unknown_keys(twirp: Twirp, room: str) -> None:
    reply = await twirp("RoomService/ListRooms", {"names": [room], "no_such_field": 1}, grants=LIST)
    assert reply.status == 200
    assert [r["name"] for r in reply.json()["rooms"]] == [room]


async def test_content_types_are_case_insensitive_and_ignore_parameters(twirp: Twirp, room: str) -> None:
    reply = await twirp(
        "RoomService/ListRooms", {"names": [room]}, grants=LIST, content_type="Application/JSON; charset=utf-8"
    )
    assert reply.status == 200
    assert reply.json()["rooms"][0]["name"] == room


async def test_a_protobuf_request_gets_a_binary_protobuf_response(twirp: Twirp, room: str) -> None:
    body = proto_room.ListRoomsRequest(names=[room]).SerializeToString()
    reply = await twirp("RoomService/ListRooms", body, grants=LIST, content_type="application/protobuf")
    assert reply.status == 200
    assert reply.content_type == "application/protobuf"
    assert [r.name for r in proto_room.ListRoomsResponse.FromString(reply.body).rooms] == [room]


async def test_an_empty_protobuf_response_is_a_zero_byte_body(twirp: Twirp, room: str) -> None:
    body = proto_room.DeleteRoomRequest(room=room).SerializeToString()
    reply = await twirp("RoomService/DeleteRoom", body, grants=CREATE, content_type="application/protobuf")
    assert reply.status == 200
    assert reply.body == b""


async def test_an_unknown_method_is_bad_route_404(twirp: Twirp) -> None:
    reply = await twirp("RoomService/NoSuchMethod", {}, grants=LIST)
    assert reply.status == 404
    assert reply.json()["code"] == "bad_route"


@pytest.mark.parametrize(
    "path", ["/twirp/livekit.NoSuchService/ListRooms", "/twirp/NoSuchService/ListRooms", "/nothing"]
)
async def test_a_path_outside_the_services_is_a_plain_text_404(
    target: Target, http: aiohttp.ClientSession, path: str
) -> None:
    headers = {"Authorization": f"Bearer {token(target, LIST)}", "Content-Type": "application/json"}
    async with http.post(target.url + path, data=b"{}", headers=headers) as resp:
        assert (resp.status, resp.headers["Content-Type"]) == (404, "text/plain; charset=utf-8")
        assert await resp.text() == "404 page not found\n"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_another_content_type_is_bad_route_404(twirp: Twirp, content_type: str) -> None:
    reply = await twirp("RoomService/ListRooms", {}, grants=LIST, content_type=content_type)
    assert (reply.status, reply.json()["code"]) == (404, "bad_route")


@pytest.mark.parametrize("http_method", ["GET", "PUT", "DELETE"])
async def test_a_method_other_than_post_is_bad_route_404(twirp: Twirp, http_method: str) -> None:
    reply = await twirp("RoomService/ListRooms", {}, grants=LIST, http_method=http_method)
    assert (reply.status, reply.json()["code"]) == (404, "bad_route")


async def test_an_undecodable_json_body_is_malformed_400(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", b'{"names": [', grants=LIST)
    assert (reply.status, reply.json()["code"]) == (400, "malformed")


async def test_json_with_a_wrong_field_type_is_malformed_400(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", b'{"names": 5}', grants=LIST)
    assert (reply.status, reply.json()["code"]) == (400, "malformed")


async def test_a_garbage_protobuf_body_is_malformed_400(twirp: Twirp) -> None:
    reply = await twirp(
        "RoomService/ListRooms", b"\xff\xfe\x00garbage", grants=LIST, content_type="application/protobuf"
    )
    assert (reply.status, reply.json()["code"]) == (400, "malformed")


async def test_errors_are_json_with_code_and_msg_whatever_the_request_type(twirp: Twirp) -> None:
    body = proto_room.DeleteRoomRequest(room=unique("never-created")).SerializeToString()
    reply = await twirp("RoomService/DeleteRoom", body, grants=CREATE, content_type="application/protobuf")
    assert reply.status == 404
    assert reply.content_type == "application/json"
    assert reply.json() == {"code": "not_found", "msg": "twirp error unknown: requested room does not exist"}


@big_body
async def test_a_body_over_10_mib_is_read_and_decoded_like_any_other(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", b"\x00" * (10 * 1024 * 1024 + 1), grants=LIST)
    assert (reply.status, reply.json()) == (400, {"code": "malformed", "msg": "the json request could not be decoded"})


@big_body
async def test_a_chunked_body_over_10_mib_is_read_and_decoded_like_any_other(
    target: Target, http: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"\x00" * (1024 * 1024)

    headers = {"Authorization": f"Bearer {token(target, LIST)}", "Content-Type": "application/protobuf"}
    async with http.post(f"{target.url}/twirp/livekit.RoomService/ListRooms", data=chunks(), headers=headers) as r:
        assert (r.status, await r.json()) == (
            400,
            {"code": "malformed", "msg": "the protobuf request could not be decoded"},
        )


@sandbox_only
@big_body
async def test_sandbox_a_body_over_its_64_mib_guard_gets_a_plain_text_413(twirp: Twirp) -> None:
    # livekit-server has no limit; the sandbox protects itself far above any real request.
    reply = await twirp("RoomService/ListRooms", b"\x00" * (64 * 1024 * 1024 + 1), grants=LIST)
    assert (reply.status, reply.content_type) == (413, "text/plain; charset=utf-8")


async def test_the_server_keeps_answering_after_bad_input(twirp: Twirp, room: str) -> None:
    for body in (b"\xff" * 100, b"{", b"null", b"[]", b'"x"'):
        reply = await twirp("RoomService/ListRooms", body, grants=LIST)
        assert reply.status == 400
    reply = await twirp("RoomService/ListRooms", {"names": [room]}, grants=LIST)
    assert reply.status == 200


async def test_the_health_check_answers_ok(target: Target, http: aiohttp.ClientSession) -> None:
    async with http.get(target.url + "/") as resp:
        assert (resp.status, await resp.text()) == (200, "OK")
