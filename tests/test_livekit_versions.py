"""livekit-server 1.13.6–1.13.11 as the tools meet it (issue 23, item 2): each change handled, on the sandbox answering
as 1.13.11 (server/livekit_mcp/sandbox/_versions.py cites the release's source for each) and on the real 1.13.5
(the session's livekit-server). LiveKit's state is checked after each change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit import api
from livekit.protocol import sip as proto_sip
from mcp import Client
from pydantic import SecretStr

from livekit_mcp.cli import main
from livekit_mcp.errors import AuthenticationFailed, ClientTooOld, TooLarge
from livekit_mcp.history import from_webhook, told
from livekit_mcp.livekit_backend import LiveKit, rpc_limit, webhook_verifier
from livekit_mcp.livekit_backend._call import Call, Rpc, _foreign_errors, _matches
from livekit_mcp.sandbox import Sandbox
from livekit_mcp.sandbox._versions import V1_13_5, V1_13_11
from realkit.livekit_server import RealLiveKitServer
from tests.conftest import InProcess, LiveKitTarget, fails, ok

pytestmark = pytest.mark.anyio

KEY, SECRET = "devkey", "versions-secret-0123456789abcdef0123456789"
CALLER = "sip_+15550142"


@pytest.fixture(params=["1.13.5", "1.13.11"])
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    async with Sandbox(keys={KEY: SECRET}, seed=False, livekit_version=request.param) as sb:
        yield sb


@pytest.fixture(params=["sandbox-1.13.11", "real-1.13.5"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, LiveKitTarget]]:
    """The sandbox answering as 1.13.11, or the real 1.13.5 (shared by the session)."""
    if request.param == "real-1.13.5":
        real: RealLiveKitServer = request.getfixturevalue("real_livekit")
        real.check_alive()
        yield "1.13.5", LiveKitTarget(real.url, real.api_key, real.api_secret)
        return
    async with Sandbox(keys={KEY: SECRET}, seed=False, livekit_version="1.13.11") as sb:
        yield "1.13.11", LiveKitTarget(sb.url, KEY, SECRET)


async def a_caller(sb: Sandbox) -> None:
    async with api.LiveKitAPI(sb.url, KEY, SECRET) as lk:
        trunk = await lk.sip.create_outbound_trunk(
            api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(name="desk", address="sip.example.com", numbers=["+15550100"])
            )
        )
        await lk.sip.create_sip_participant(
            api.CreateSIPParticipantRequest(room_name="r", sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+15550142")
        )


async def in_room(sb: Sandbox) -> list[str]:
    async with api.LiveKitAPI(sb.url, KEY, SECRET) as lk:
        return [
            p.identity for p in (await lk.room.list_participants(api.ListParticipantsRequest(room="r"))).participants
        ]


TRANSFER = {"room": "r", "identity": CALLER, "transfer_to": "tel:+15550177"}


async def test_a_transfer_reports_the_status_livekit_gives(sandbox: Sandbox, in_process: InProcess) -> None:
    await a_caller(sandbox)
    async with Client(in_process(env=LiveKitTarget(sandbox.url, KEY, SECRET).env(), toolsets="sip")) as client:
        done = await ok(client, "transfer_sip_participant", **TRANSFER)
    # 1.13.5 answers Empty: no status to report (not "ongoing", which is what an empty answer decodes to).
    assert done.get("status") == ("successful" if sandbox.version.transfer_answer else None)
    assert await in_room(sandbox) == []


async def test_a_transfer_that_fails_without_an_error_is_told_as_a_failure(in_process: InProcess) -> None:
    async with Sandbox(keys={KEY: SECRET}, seed=False, livekit_version="1.13.11") as sb:
        await a_caller(sb)
        sb.state.transfer_outcome = proto_sip.TransferSIPParticipantResponse(
            transfer_id="TX_1",
            status=proto_sip.STS_TRANSFER_FAILED,
            reason=proto_sip.STR_RINGING_TIMEOUT,
            sip_status=proto_sip.SIPStatus(code=proto_sip.SIP_STATUS_BUSY_HERE, status="Busy Here"),
        )
        async with Client(in_process(env=LiveKitTarget(sb.url, KEY, SECRET).env(), toolsets="sip")) as client:
            said = await fails(client, "transfer_sip_participant", **TRANSFER)
            sb.state.transfer_outcome = proto_sip.TransferSIPParticipantResponse(status=proto_sip.STS_TRANSFER_ONGOING)
            sb.state.transfer_outcome.transfer_id = "TX_2"
            ongoing = await ok(client, "transfer_sip_participant", **TRANSFER)
        assert (
            f"LiveKit did not transfer the call of '{CALLER}' in room 'r' to tel:+15550177: the transferee did not "
            "answer in time (SIP 486 Busy Here); the caller is still in the room." in said
        )
        assert ongoing["status"] == "ongoing"
        assert await in_room(sb) == [CALLER]  # neither the failed nor the ongoing transfer made the caller leave


async def test_a_rejected_key_or_secret_is_an_authentication_failure_whatever_the_401_says(
    server: tuple[str, LiveKitTarget],
) -> None:
    # 1.13.5: "invalid API key: <key>" / "invalid token: <jwt>, error: …"; 1.13.11: "invalid API key" /
    # "invalid authorization token: …" (tests/sandbox/test_livekit_1_13_11.py has the texts).
    _, target = server
    for key, secret in (("someone-else", target.api_secret), (target.api_key, "not-the-secret-0123456789abcdef012")):
        async with LiveKit(target.url, key, SecretStr(secret), timeout=5, concurrency=2) as lk:
            with pytest.raises(AuthenticationFailed, match=f"rejected the API key or secret \\(key '{key}'\\)"):
                await lk.list_rooms([])


# livekit-api sends its body as raw bytes, which aiohttp warns about over 1 MiB; a connection whose body the server
# answered before reading it can outlive the session (see tests/sandbox/conftest.py's `big_body`).
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_request_over_10_mib_is_told_as_too_large_from_1_13_6_on(server: tuple[str, LiveKitTarget]) -> None:
    version, target = server
    names = ["n" * (11 << 20)]
    async with LiveKit(target.url, target.api_key, SecretStr(target.api_secret), timeout=20, concurrency=2) as lk:
        if version == "1.13.5":  # no limit: the 11 MiB name is read and matches no room
            assert await lk.list_rooms(names) == []
            return
        with pytest.raises(TooLarge, match=r"ListRooms \(HTTP 413\): the request is larger than the server accepts"):
            await lk.list_rooms(names)


def test_moving_a_participant_whose_client_is_too_old_is_a_clear_error() -> None:
    # 1.13.11 pkg/rtc/participant.go:97 (psrpc.FailedPrecondition), wrapped by the routing as the others are.
    exc = api.ServerError(
        "failed_precondition",
        "twirp error unknown: participant client version does not support moving",
        status=412,
    )
    call = Call(Rpc("MoveParticipant", verified_by="list_participants"), "http://lk", "devkey", 5, "r", "alice")
    mapped = next(to for key, to in _foreign_errors() if _matches(key, exc, call))(call, exc)
    assert isinstance(mapped, ClientTooOld)
    assert str(mapped) == (
        "LiveKit cannot MoveParticipant 'alice' in room 'r': the participant's client SDK is too old to be moved; "
        "nothing was changed. The participant can leave and join the other room instead."
    )


@pytest.mark.parametrize("response_timeout", [1.0, 2.5, 5.0, 8.0, 15.0])
def test_a_perform_rpc_waits_past_livekits_own_end_on_both_releases(response_timeout: float) -> None:
    limit = rpc_limit(response_timeout, timeout=10)
    # 1.13.11: the response timeout + the acknowledgement latency (7 s), then deadline_exceeded; 1.13.5: 15 s.
    assert limit >= response_timeout + V1_13_11.rpc_ack_s + 1
    assert limit >= 15 + 1
    assert V1_13_5.rpc_ack_s < V1_13_11.rpc_ack_s


async def test_history_tells_why_a_room_ended_when_livekit_says(sandbox: Sandbox) -> None:
    kept: list[dict[str, Any]] = []
    verify = webhook_verifier(KEY, SECRET)

    async def receiver(body: bytes, authorization: str) -> int:
        kept.append(verify(body, authorization))  # the receiver's own check and parse
        return 200

    sandbox.webhooks.add("history", receiver)
    async with api.LiveKitAPI(sandbox.url, KEY, SECRET) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name="r"))
        await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
    await sandbox.webhooks.drained()
    [finished] = [event for w in kept if (event := from_webhook(w)) and event.event == "room_finished"]
    expected = "deleted (DeleteRoom)" if sandbox.version.room_end_reason else "it closed"
    assert told(finished) == f"the room ended: {expected}"


def test_an_ingress_webhook_leaves_its_stream_key_out_of_history() -> None:
    # protocol v1.53.1 marks stream_key SENSITIVITY_SECRET (livekit_ingress.proto:126): LiveKit's own logs redact it,
    # and history never keeps it either (it is in every ingress_started / ingress_ended webhook).
    key = "sk-never-kept-0123"
    webhook = {
        "event": "ingress_started",
        "id": "EV_ingress",
        "created_at": "1796151968",
        "ingress_info": {"ingress_id": "IN_1", "name": "obs", "room_name": "r", "stream_key": key},
    }
    event = from_webhook(webhook)
    assert event is not None
    assert event.detail == {"ingress_id": "IN_1", "ingress_name": "obs"}
    assert key not in repr(event)


@pytest.mark.parametrize(("argv", "version"), [([], "1.13.5"), (["--livekit-version", "1.13.11"], "1.13.11")])
def test_the_sandbox_command_answers_as_the_version_asked(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], version: str
) -> None:
    import livekit_mcp.sandbox

    served: dict[str, Any] = {}
    monkeypatch.setattr(livekit_mcp.sandbox, "serve_forever", lambda *a, **kw: served.update(kw))
    main(["sandbox", "--empty", *argv])
    assert served["livekit_version"] == version
    assert Sandbox(seed=False, livekit_version=version).version.name == version
