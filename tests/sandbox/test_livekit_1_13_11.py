"""The sandbox answering as livekit-server 1.13.11 (`Sandbox(livekit_version="1.13.11")`), each difference from
1.13.5 as read in the release's source (server/livekit_mcp/sandbox/_versions.py cites the file and line). 1.13.11
cannot be built here, so these run on the sandbox alone; the 1.13.5 side of each row is held to the real server by
the contract tests beside this file (test_auth.py, test_transport.py, test_sip_egress_ingress.py)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from livekit import api
from livekit.protocol import sip as proto_sip

from livekit_mcp.sandbox import Sandbox

from .support import KEY, SECRET, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["1.13.5", "1.13.11"])
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    async with Sandbox(keys={KEY: SECRET}, seed=False, livekit_version=request.param) as sb:
        yield sb


def newer(sandbox: Sandbox) -> bool:
    return sandbox.version.name == "1.13.11"


async def post(sandbox: Sandbox, method: str, body: bytes, headers: dict[str, str]) -> Reply:
    payload = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.url}/twirp/livekit.{method}",
            data=payload,
            headers={"Content-Type": "application/json", **headers},
        ) as resp,
    ):
        return Reply(resp.status, resp.headers.get("Content-Type", ""), await resp.read())


def signed(claims: dict[str, Any], secret: str = SECRET) -> dict[str, str]:
    now = int(time.time())
    payload = {"iss": KEY, "nbf": now, "exp": now + 600, "video": {"roomList": True}} | claims
    payload = {k: v for k, v in payload.items() if v is not None}
    return {"Authorization": "Bearer " + jwt.encode(payload, secret, algorithm="HS256")}


async def test_the_401_texts_follow_the_version(sandbox: Sandbox) -> None:
    unknown = await post(sandbox, "RoomService/ListRooms", b"{}", signed({"iss": "someone-else"}))
    bad = signed({}, secret="a-different-secret-0123456789abcdef0123")
    forged = await post(sandbox, "RoomService/ListRooms", b"{}", bad)
    jwt_text = bad["Authorization"].removeprefix("Bearer ")
    assert (unknown.status, forged.status) == (401, 401)
    assert unknown.content_type.startswith("text/plain")
    if newer(sandbox):  # pkg/service/auth.go:95 and :101: neither the key nor the token is echoed
        assert unknown.text == "invalid API key"
        assert forged.text == "invalid authorization token: token signature is invalid: signature is invalid"
    else:
        assert unknown.text == "invalid API key: someone-else"
        assert forged.text == f"invalid token: {jwt_text}, error: token signature is invalid: signature is invalid"


async def test_a_token_without_exp_is_refused_from_1_13_11_on(sandbox: Sandbox) -> None:
    reply = await post(sandbox, "RoomService/ListRooms", b"{}", signed({"exp": None}))
    if newer(sandbox):  # protocol auth/verifier.go:84
        assert (reply.status, reply.text) == (
            401,
            "invalid authorization token: token has invalid claims: token is missing required claim: "
            "exp claim is required",
        )
    else:
        assert (reply.status, reply.json()) == (200, {"rooms": []})


async def test_a_body_over_10_mib_is_a_413_before_the_token_from_1_13_11_on(sandbox: Sandbox) -> None:
    big = json.dumps({"names": ["n" * (10 << 20)]}).encode()
    # No token at all: 1.13.11's limiter runs before the auth middleware.
    reply = await post(sandbox, "RoomService/ListRooms", big, {})
    if newer(sandbox):
        assert (reply.status, reply.text) == (413, "request body too large")
        assert reply.content_type.startswith("text/plain")
    else:
        assert (reply.status, reply.json()["code"]) == (401, "unauthenticated")
    # Just under the limit is read, on both.
    small = json.dumps({"names": ["n" * ((10 << 20) - 100)]}).encode()
    assert (await post(sandbox, "RoomService/ListRooms", small, signed({}))).status == 200


async def caller_in(sandbox: Sandbox, lk: api.LiveKitAPI) -> api.SIPOutboundTrunkInfo:
    trunk = await lk.sip.create_outbound_trunk(
        api.CreateSIPOutboundTrunkRequest(
            trunk=api.SIPOutboundTrunkInfo(name="desk", address="sip.example.com", numbers=["+15550100"])
        )
    )
    await lk.sip.create_sip_participant(
        api.CreateSIPParticipantRequest(room_name="r", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142")
    )
    return trunk


async def test_a_transfer_answers_its_outcome_from_1_13_11_on_and_a_failed_one_keeps_the_caller(
    sandbox: Sandbox,
) -> None:
    transfer = api.TransferSIPParticipantRequest(
        room_name="r", participant_identity="sip_+15550142", transfer_to="tel:+15550177"
    )
    async with api.LiveKitAPI(sandbox.url, KEY, SECRET) as lk:
        await caller_in(sandbox, lk)
        sandbox.state.transfer_outcome = proto_sip.TransferSIPParticipantResponse(
            transfer_id="TX_1",
            status=proto_sip.STS_TRANSFER_FAILED,
            reason=proto_sip.STR_REJECTED,
            sip_status=proto_sip.SIPStatus(code=proto_sip.SIP_STATUS_BUSY_HERE, status="Busy Here"),
        )
        failed = await lk.sip.transfer_sip_participant(transfer)
        still = await lk.room.list_participants(api.ListParticipantsRequest(room="r"))
        if not newer(sandbox):  # Empty: the caller is handed over, nothing is reported
            assert failed == api.TransferSIPParticipantResponse()
            assert list(still.participants) == []
            return
        assert (failed.status, failed.reason, failed.sip_status.code) == (
            proto_sip.STS_TRANSFER_FAILED,
            proto_sip.STR_REJECTED,
            proto_sip.SIP_STATUS_BUSY_HERE,
        )
        assert [p.identity for p in still.participants] == ["sip_+15550142"]
        sandbox.state.transfer_outcome = proto_sip.TransferSIPParticipantResponse(
            status=proto_sip.STS_TRANSFER_SUCCESSFUL, reason=proto_sip.STR_COMPLETED
        )
        done = await lk.sip.transfer_sip_participant(transfer)
        gone = await lk.room.list_participants(api.ListParticipantsRequest(room="r"))
    assert (done.status, done.reason) == (proto_sip.STS_TRANSFER_SUCCESSFUL, proto_sip.STR_COMPLETED)
    assert list(gone.participants) == []


async def test_room_finished_carries_its_end_reason_from_1_13_11_on(sandbox: Sandbox) -> None:
    seen: list[dict[str, Any]] = []

    async def sink(body: bytes, authorization: str) -> int:
        seen.append(json.loads(body))
        return 200

    sandbox.webhooks.add("test", sink)
    async with api.LiveKitAPI(sandbox.url, KEY, SECRET) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name="r"))
        await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
    await sandbox.webhooks.drained()
    [finished] = [e for e in seen if e["event"] == "room_finished"]
    assert finished.get("roomEndReason") == ("ROOM_END_API_DELETE" if newer(sandbox) else None)


def test_an_unknown_version_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"1\.13\.5 or 1\.13\.11, not '1\.14\.0'"):
        Sandbox(livekit_version="1.14.0")


async def test_a_reset_forgets_a_failure_set_for_the_next_transfer(sandbox: Sandbox) -> None:
    sandbox.state.transfer_outcome = proto_sip.TransferSIPParticipantResponse(status=proto_sip.STS_TRANSFER_FAILED)
    sandbox.state.reset(seed=False)
    assert sandbox.state.transfer_outcome.status == proto_sip.STS_TRANSFER_SUCCESSFUL
