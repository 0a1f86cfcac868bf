"""When LiveKit says no, is not there, or is slow: a clear message, the server stays up, the secret stays hidden.

The server is built in process; what it logs is read from `caplog`, every record at the level a test names.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mcp import Client

from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from realkit.processes import free_port
from tests.conftest import SECRET, InProcess, LiveKitTarget, fails, no_secret, ok, text

pytestmark = pytest.mark.anyio


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (what a process prints on stderr), each record's message and exception in full."""
    return caplog.text + "".join(record.getMessage() for record in caplog.records)


async def test_wrong_secret_is_explained_and_never_shown(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = SECRET[::-1]
    caplog.set_level(logging.DEBUG)  # --log-level DEBUG
    async with Client(in_process(env=livekit.env(LIVEKIT_API_SECRET=wrong))) as client:
        message = await fails(client, "list_rooms")
        again = await fails(client, "find_agent")
    assert "rejected the API key or secret" in message
    assert "devkey" in message
    assert "rejected the API key or secret" in again
    for shown in (message, again, logged(caplog)):
        assert wrong not in shown
        no_secret(shown)


async def test_unknown_api_key_is_explained(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(in_process(env=livekit.env(LIVEKIT_API_KEY="who"))) as client:
        message = await fails(client, "list_participants", room="x")
    assert "rejected the API key or secret (key 'who')" in message
    no_secret(message, logged(caplog))


async def test_unreachable_livekit_is_named_and_the_next_call_works_once_it_is_back(
    in_process: InProcess, livekit: LiveKitTarget, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    caplog.set_level(logging.DEBUG)  # --log-level DEBUG
    async with Client(in_process(env=livekit.env(LIVEKIT_URL=url))) as client:
        message = await fails(client, "list_rooms")
        assert f"LiveKit at {url} is unreachable" in message
        back = Sandbox(keys={"devkey": SECRET}, seed=True)
        await back.start(host="127.0.0.1", port=port)
        try:
            data = await ok(client, "list_rooms")
        finally:
            await back.stop()
        assert data["total"] > 0
    no_secret(message, logged(caplog))


async def test_a_slow_livekit_is_cut_off_at_our_timeout_and_the_server_keeps_serving(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    server = in_process(timeout=1)  # --timeout 1
    await admin.join("r", "alice")
    async with Client(server) as client:
        await ok(client, "list_rooms")  # a first call pays for the connection, not the one under test
        await admin.fault("RoomService/ListParticipants", latency_ms=10_000, times=1)
        slow = await fails(client, "list_participants", room="r")
        data = await ok(client, "list_participants", room="r")
    assert "did not answer ListParticipants within 1 s" in slow
    assert [p["identity"] for p in data["participants"]] == ["alice"]


async def test_a_timed_out_change_warns_that_it_may_have_happened(in_process: InProcess, admin: SandboxAdmin) -> None:
    server = in_process(timeout=1.5)  # --timeout 1.5
    await admin.join("r", "alice")
    await admin.fault("RoomService/RemoveParticipant", latency_ms=10_000, times=1)
    async with Client(server) as client:
        await ok(client, "list_rooms")  # a first call pays for the connection, not the one under test
        message = await fails(client, "remove_participant", room="r", identity="alice")
    assert "may or may not have happened" in message


FAULTS: list[tuple[dict[str, Any], str]] = [
    ({"error": ("internal", "boom")}, "LiveKit refused ListRooms (internal, HTTP 500): boom"),
    ({"error": ("unauthenticated", "permissions denied")}, "lacks the permission for ListRooms"),
    ({"error": ("resource_exhausted", "slow down")}, "(resource_exhausted, HTTP 429)"),
    ({"drop": True}, "is unreachable"),
    ({"malformed": True}, "not a valid protobuf message"),
]


@pytest.mark.parametrize(("fault", "expected"), FAULTS)
async def test_each_livekit_failure_gets_a_clear_message_and_the_next_call_works(
    in_process: InProcess, admin: SandboxAdmin, fault: dict[str, Any], expected: str
) -> None:
    await admin.join("r", "alice")
    # On every call, not once: reads are retried past a passing failure.
    await admin.fault("RoomService/ListRooms", **fault)
    async with Client(in_process()) as client:
        result = await client.call_tool("list_rooms", {})
        assert result.is_error
        assert expected in text(result)
        assert "Traceback" not in text(result)
        await admin.clear_faults()
        assert (await ok(client, "list_rooms"))["total"] == 1


async def test_no_response_from_servers_is_read_as_not_live_and_not_retried(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    """livekit-server answers a call routed to a room that is not live with 503 "no response from servers"
    after ~3 s: not a failure in passing (another attempt waits 3 s more), and not a server error either."""
    await admin.join("r", "dana")
    await admin.fault(
        "AgentDispatchService/ListDispatch",
        error=("unavailable", "twirp error unknown: no response from servers"),
        times=1,
    )
    async with Client(in_process()) as client:
        listed = await fails(client, "list_dispatches", room="r")  # once only: a retry would have succeeded
        again = await ok(client, "list_dispatches", room="r")
    # The room is listed, so it is not missing: it is not live (closing, or its node is down).
    assert "LiveKit lists room 'r' but no LiveKit node answered ListDispatch" in listed
    assert "nothing was changed" in listed
    assert again["room"] == "r"


async def test_not_found_messages_are_recognised_with_livekits_prefix(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    """livekit-server v1.13.5 prefixes the messages of its room layer ("twirp error unknown: ...")."""
    await admin.join("r", "dana")
    await admin.fault(
        "RoomService/UpdateRoomMetadata",
        error=("not_found", "twirp error unknown: requested room does not exist"),
        times=1,
    )
    async with Client(in_process()) as client:
        message = await fails(client, "update_room_metadata", room="r", metadata="m")
    assert "room 'r' does not exist" in message


async def test_a_failure_in_a_fan_out_is_reported_as_itself(in_process: InProcess, admin: SandboxAdmin) -> None:
    """find_agent over every room: a failing call is named, not hidden as "Error executing tool"."""
    await admin.join("a", "x")
    await admin.join("b", "y")
    await admin.fault("RoomService/ListParticipants", error=("permission_denied", "nope"))
    async with Client(in_process()) as client:
        message = await fails(client, "find_agent")
    assert "LiveKit refused ListParticipants (permission_denied, HTTP 403): nope" in message
