"""When LiveKit says no, is not there, or is slow: a clear message, the server stays up, the secret stays hidden."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client

from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from tests.conftest import SECRET, LiveKitTarget, Served, fails, free_port, no_secret, ok, text

pytestmark = pytest.mark.anyio


async def test_wrong_secret_is_explained_and_never_shown(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    wrong = SECRET[::-1]
    server = serve_http("--log-level", "DEBUG", env=livekit.env(LIVEKIT_API_SECRET=wrong))
    async with Client(server.url) as client:
        message = await fails(client, "list_rooms")
        again = await fails(client, "find_agent")
    assert "rejected the API key or secret" in message
    assert "devkey" in message
    assert "rejected the API key or secret" in again
    for shown in (message, again, server.stderr()):
        assert wrong not in shown
        no_secret(shown)


async def test_unknown_api_key_is_explained(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    server = serve_http(env=livekit.env(LIVEKIT_API_KEY="who"))
    async with Client(server.url) as client:
        message = await fails(client, "list_participants", room="x")
    assert "rejected the API key or secret (key 'who')" in message
    no_secret(message, server.stderr())


async def test_unreachable_livekit_is_named_and_the_next_call_works_once_it_is_back(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_http("--log-level", "DEBUG", env=livekit.env(LIVEKIT_URL=url))
    async with Client(server.url) as client:
        message = await fails(client, "list_rooms")
        assert f"LiveKit at {url} is unreachable" in message
        back = Sandbox(keys={"devkey": SECRET}, seed=True)
        await back.start(host="127.0.0.1", port=port)
        try:
            data = await ok(client, "list_rooms")
        finally:
            await back.stop()
        assert data["total"] > 0
    no_secret(message, server.stderr())


async def test_a_slow_livekit_is_cut_off_at_our_timeout_and_the_server_keeps_serving(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    server = serve_http("--timeout", "1")
    await admin.join("r", "alice")
    async with Client(server.url) as client:
        await ok(client, "list_rooms")  # a first call pays for the connection, not the one under test
        await admin.fault("RoomService/ListParticipants", latency_ms=10_000, times=1)
        slow = await fails(client, "list_participants", room="r")
        data = await ok(client, "list_participants", room="r")
    assert "did not answer ListParticipants within 1 s" in slow
    assert [p["identity"] for p in data["participants"]] == ["alice"]


async def test_a_timed_out_change_warns_that_it_may_have_happened(
    serve_http: Callable[..., Served], admin: SandboxAdmin
) -> None:
    server = serve_http("--timeout", "1.5")
    await admin.join("r", "alice")
    await admin.fault("RoomService/RemoveParticipant", latency_ms=10_000, times=1)
    async with Client(server.url) as client:
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
    http_server: Served, admin: SandboxAdmin, fault: dict[str, Any], expected: str
) -> None:
    await admin.join("r", "alice")
    # On every call, not once: reads are retried past a passing failure.
    await admin.fault("RoomService/ListRooms", **fault)
    async with Client(http_server.url) as client:
        result = await client.call_tool("list_rooms", {})
        assert result.is_error
        assert expected in text(result)
        assert "Traceback" not in text(result)
        await admin.clear_faults()
        assert (await ok(client, "list_rooms"))["total"] == 1
