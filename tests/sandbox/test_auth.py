"""Tokens, the two shapes of 401 and grants, as livekit-server 1.13.5 checks them (on both backends)."""

from __future__ import annotations

import time

import jwt
import pytest
from livekit import api

from livekit_mcp.sandbox import Sandbox

from .conftest import Twirp
from .support import Target, token, unique

pytestmark = pytest.mark.anyio

LIST = api.VideoGrants(room_list=True)
DENIED = {"code": "unauthenticated", "msg": "permissions denied"}


def raw_token(target: Target, claims: dict[str, object], *, secret: str = "", without: str = "") -> str:
    now = int(time.time())
    payload = {"iss": target.api_key, "nbf": now, "exp": now + 600, "video": {"roomList": True}} | claims
    payload.pop(without, None)
    return jwt.encode(payload, secret or target.api_secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_header_not_starting_with_bearer_is_a_plain_text_401(twirp: Twirp, target: Target) -> None:
    reply = await twirp("RoomService/ListRooms", headers={"Authorization": f"Token {token(target, LIST)}"})
    assert reply.status == 401
    assert reply.content_type.startswith("text/plain")
    assert reply.text == "invalid authorization header. Must start with Bearer "


async def test_a_token_that_is_not_a_jwt_is_a_plain_text_401(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", headers=bearer("not-a-jwt"))
    assert (reply.status, reply.text) == (401, "invalid authorization token")


@pytest.mark.parametrize(("alg", "key"), [("none", None), ("HS512", "a-secret-long-enough-for-hs512-" * 3)])
async def test_a_token_not_signed_with_hs256_is_a_plain_text_401(
    twirp: Twirp, target: Target, alg: str, key: str | None
) -> None:
    now = int(time.time())
    claims = {"iss": target.api_key, "exp": now + 600, "video": {"roomList": True}}
    value = jwt.encode(claims, key, algorithm=alg)  # type: ignore[arg-type]  # PyJWT types no key for "none"
    reply = await twirp("RoomService/ListRooms", headers=bearer(value))
    reason = f"token signature is invalid: signing method {alg} is invalid"
    assert (reply.status, reply.text) == (401, f"invalid token: {value}, error: {reason}")


async def test_an_unknown_api_key_is_a_plain_text_401_naming_it(twirp: Twirp, target: Target) -> None:
    reply = await twirp("RoomService/ListRooms", headers=bearer(raw_token(target, {"iss": "someone-else"})))
    assert (reply.status, reply.text) == (401, "invalid API key: someone-else")


@pytest.mark.parametrize(
    ("claims", "secret", "reason"),
    [
        ({}, "a-different-secret-0123456789abcdef0123", "token signature is invalid: signature is invalid"),
        ({"exp": int(time.time()) - 120}, "", "token has invalid claims: token is expired"),
        ({"nbf": int(time.time()) + 600}, "", "token has invalid claims: token is not valid yet"),
    ],
)
async def test_a_bad_signature_or_time_is_a_plain_text_401_quoting_the_token_and_the_reason(
    twirp: Twirp, target: Target, claims: dict[str, object], secret: str, reason: str
) -> None:
    value = raw_token(target, claims, secret=secret)
    reply = await twirp("RoomService/ListRooms", headers=bearer(value))
    assert reply.status == 401
    assert reply.content_type.startswith("text/plain")
    assert reply.text == f"invalid token: {value}, error: {reason}"


async def test_a_token_without_exp_is_accepted(twirp: Twirp, target: Target) -> None:
    reply = await twirp("RoomService/ListRooms", headers=bearer(raw_token(target, {}, without="exp")))
    assert reply.status == 200


async def test_a_token_expired_within_the_60_s_leeway_is_accepted(twirp: Twirp, target: Target) -> None:
    reply = await twirp("RoomService/ListRooms", headers=bearer(raw_token(target, {"exp": int(time.time()) - 20})))
    assert reply.status == 200


async def test_no_token_at_all_is_twirp_unauthenticated_401(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", headers={})
    assert reply.status == 401
    assert reply.content_type == "application/json"
    assert reply.json() == DENIED


async def test_the_token_can_come_from_the_access_token_query_parameter(twirp: Twirp, target: Target) -> None:
    reply = await twirp(f"RoomService/ListRooms?access_token={token(target, LIST)}", headers={})
    assert reply.status == 200


async def test_list_rooms_needs_room_list(twirp: Twirp) -> None:
    assert (await twirp("RoomService/ListRooms", grants=api.VideoGrants(room_create=True))).json() == DENIED
    assert (await twirp("RoomService/ListRooms", grants=LIST)).status == 200


async def test_create_room_needs_room_create(twirp: Twirp) -> None:
    name = unique("grant")
    reply = await twirp("RoomService/CreateRoom", {"name": name}, grants=api.VideoGrants(room_admin=True, room=name))
    assert (reply.status, reply.json()) == (401, DENIED)


async def test_delete_room_needs_room_create_not_room_admin(twirp: Twirp, room: str) -> None:
    reply = await twirp("RoomService/DeleteRoom", {"room": room}, grants=api.VideoGrants(room_admin=True, room=room))
    assert (reply.status, reply.json()) == (401, DENIED)
    reply = await twirp("RoomService/DeleteRoom", {"room": room}, grants=api.VideoGrants(room_create=True))
    assert reply.status == 200


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("RoomService/ListParticipants", {}),
        ("RoomService/GetParticipant", {"identity": "x"}),
        ("RoomService/RemoveParticipant", {"identity": "x"}),
        ("RoomService/MutePublishedTrack", {"identity": "x", "track_sid": "TR_x", "muted": True}),
        ("RoomService/UpdateParticipant", {"identity": "x"}),
        ("RoomService/UpdateSubscriptions", {"identity": "x"}),
        ("RoomService/SendData", {"data": "aGk="}),
        ("RoomService/UpdateRoomMetadata", {"metadata": "m"}),
        ("AgentDispatchService/CreateDispatch", {"agent_name": "a"}),
        ("AgentDispatchService/ListDispatch", {}),
        ("AgentDispatchService/DeleteDispatch", {"dispatch_id": "AD_x"}),
    ],
)
async def test_room_methods_need_room_admin_for_exactly_that_room(
    twirp: Twirp, room: str, method: str, body: dict[str, object]
) -> None:
    body = {"room": room, **body}
    for grants in (
        api.VideoGrants(room_admin=True, room="another-room"),
        api.VideoGrants(room_admin=True),
        api.VideoGrants(room_list=True, room_create=True, room=room),
    ):
        reply = await twirp(method, body, grants=grants)
        assert (reply.status, reply.json()) == (401, DENIED), grants


async def test_a_room_admin_token_for_the_room_is_enough(twirp: Twirp, room: str) -> None:
    reply = await twirp(
        "RoomService/ListParticipants", {"room": room}, grants=api.VideoGrants(room_admin=True, room=room)
    )
    assert reply.status == 200


async def test_auth_is_checked_before_the_route(twirp: Twirp) -> None:
    reply = await twirp("RoomService/NoSuchMethod", headers=bearer("not-a-jwt"))
    assert (reply.status, reply.text) == (401, "invalid authorization token")


async def test_the_route_is_checked_before_the_grant(twirp: Twirp) -> None:
    reply = await twirp("RoomService/NoSuchMethod", headers={})
    assert (reply.status, reply.json()["code"]) == (404, "bad_route")


async def test_the_body_is_decoded_before_the_grant(twirp: Twirp) -> None:
    reply = await twirp("RoomService/ListRooms", b"{", headers={})
    assert (reply.status, reply.json()["code"]) == (400, "malformed")


async def test_the_livekit_client_sees_a_plain_text_401_as_an_unknown_server_error(target: Target) -> None:
    async with api.LiveKitAPI(target.url, target.api_key, "a-wrong-secret-0123456789abcdef0123") as lk:
        with pytest.raises(api.TwirpError) as caught:
            await lk.room.list_rooms(api.ListRoomsRequest())
    assert (caught.value.code, caught.value.message, caught.value.status) == ("unknown", "", 401)


async def test_the_default_keys_are_devkey_and_secret() -> None:
    async with Sandbox(seed=False) as sandbox:
        assert (sandbox.api_key, sandbox.api_secret) == ("devkey", "secret")
        # conftest silences PyJWT's warning about this short secret; LiveKit accepts it all the same.
        async with api.LiveKitAPI(sandbox.url, "devkey", "secret") as lk:
            rooms = await lk.room.list_rooms(api.ListRoomsRequest())
    assert list(rooms.rooms) == []


async def test_more_key_pairs_can_be_configured() -> None:
    keys = {
        "first-key": "first-secret-0123456789abcdef0123456789",
        "second-key": "second-secret-0123456789abcdef012345",
    }
    async with Sandbox(keys=keys, seed=False) as sandbox:
        assert sandbox.api_key == "first-key"
        for key, secret in keys.items():
            async with api.LiveKitAPI(sandbox.url, key, secret) as lk:
                assert list((await lk.room.list_rooms(api.ListRoomsRequest())).rooms) == []
