"""RoomService.PerformRpc on both backends: what LiveKit answers before a request reaches a participant's
client (a missing participant or room, no identity, a payload over 15 KiB, no grant). What a real client
answers (its payload, its errors, 1400 for a method it did not register) is tested in tests/test_rpc_tokens.py;
a sandbox participant has no client, and gets what livekit-server gives a client that never acknowledges."""

from __future__ import annotations

import pytest
from livekit import api

from .conftest import Twirp, sandbox_only
from .support import Crowd, Target, code_of, perform_rpc, rpc

pytestmark = pytest.mark.anyio

PAYLOAD_LIMIT = 15 * 1024


async def test_a_call_without_destination_is_refused(lk: api.LiveKitAPI, room: str) -> None:
    assert await code_of(perform_rpc(lk, rpc(room, ""))) == (
        "invalid_argument",
        "twirp error unknown: destination identity is required",
        400,
    )


async def test_a_payload_over_15_kib_is_refused_before_it_is_sent(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice")
    assert await code_of(perform_rpc(lk, rpc(room, "alice", "é" * (PAYLOAD_LIMIT // 2) + "x"))) == (
        "invalid_argument",
        "twirp error unknown: RpcError 1402: Request payload too large",
        400,
    )


async def test_perform_rpc_needs_room_admin_for_that_room(twirp: Twirp, room: str) -> None:
    body = {"room": room, "destination_identity": "alice", "method": "m"}
    for grants in (api.VideoGrants(room_list=True), api.VideoGrants(room_admin=True, room="other")):
        reply = await twirp("RoomService/PerformRpc", body, grants=grants)
        assert (reply.status, reply.json()) == (401, {"code": "unauthenticated", "msg": "permissions denied"})


@sandbox_only
async def test_a_sandbox_participant_never_acknowledges_as_a_client_without_rpc(
    lk: api.LiveKitAPI, crowd: Crowd, room: str, target: Target
) -> None:
    await crowd.join(room, "alice")
    assert await code_of(perform_rpc(lk, rpc(room, "alice", "é" * (PAYLOAD_LIMIT // 2)))) == (
        "canceled",
        "twirp error unknown: RpcError 1501: Connection timeout",
        408,
    )
