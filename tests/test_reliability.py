"""Faults injected into LiveKit, answered through a running server: reads retried where that is safe, changes
never sent twice, every failure explained, nothing left running after a timeout or a cancelled call, and the
server recovering by itself when LiveKit comes back.

The server is built in process, except where the process is the subject: a call cancelled by its HTTP client,
and a server process that must still be running once LiveKit is back.

Calls are wrapped in hang guards (`anyio.fail_after`), never timed: the behaviour is what is asserted.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web
from livekit import api
from mcp import Client
from mcp.server.mcpserver import MCPServer

from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from realkit.processes import connections, until
from tests.conftest import (
    SECRET,
    InProcess,
    LiveKitTarget,
    Served,
    fails,
    http_in_process,
    identities,
    impostor_livekit,
    no_secret,
    ok,
    text,
)

pytestmark = pytest.mark.anyio

# Every Twirp code with the HTTP status LiveKit answers it with (LIVEKIT_BEHAVIOR.md, section 1).
TWIRP = {
    "invalid_argument": 400,
    "malformed": 400,
    "out_of_range": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "canceled": 408,
    "deadline_exceeded": 408,
    "already_exists": 409,
    "aborted": 409,
    "failed_precondition": 412,
    "resource_exhausted": 429,
    "unknown": 500,
    "internal": 500,
    "dataloss": 500,
    "unimplemented": 501,
    "unavailable": 503,
}
# What may pass by itself: connection trouble, 5xx except "unimplemented", 408 and 429.
PASSING = {code for code, status in TWIRP.items() if status in (408, 429) or (status >= 500 and status != 501)}
HANG_GUARD = 15  # seconds: far beyond any timeout used here; only there so that a hang fails instead of stalling


@pytest.fixture
def impatient(in_process: InProcess) -> MCPServer[Any]:
    """A server that gives LiveKit one second per call, retries included."""
    return in_process(timeout=1)  # --timeout 1


@pytest.fixture
async def own() -> AsyncIterator[Sandbox]:
    """A sandbox of the test's own, in its event loop: no other test's stalled requests or pooled connections
    in what it counts, and it can be stopped and started again."""
    async with Sandbox(keys={"devkey": SECRET}, seed=False) as sandbox:
        yield sandbox


def serve_for(serve_http: Callable[..., Served], sandbox: Sandbox, *flags: str, **env: str) -> Served:
    """A server of the test's own, talking to `sandbox`."""
    return serve_http(*flags, env=LiveKitTarget(sandbox.url, "devkey", SECRET).env(**env))


def connections_to(server: Served | None, sandbox: Sandbox) -> int:
    """Connections to `sandbox` of the server's process, or of this one for a server built in process (the
    sandbox's own sockets are not counted: their remote ports are the clients')."""
    return connections(server.process.pid if server else os.getpid(), int(sandbox.url.rsplit(":", 1)[1]))


async def guarded(client: Client, tool: str, **args: Any) -> str:
    """A call that must fail as a tool error, with a hang guard; its message, checked to be clean."""
    with anyio.fail_after(HANG_GUARD):
        message = await fails(client, tool, **args)
    assert "Traceback" not in message
    no_secret(message)
    return message


# --- Retries: reads yes, changes never -----------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), TWIRP.items())
async def test_each_twirp_code_is_explained_and_a_read_is_retried_only_past_a_passing_failure(
    in_process: InProcess, admin: SandboxAdmin, code: str, status: int
) -> None:
    await admin.join("r", "alice")
    await admin.fault("RoomService/ListRooms", error=(code, "boom"), times=1)
    async with Client(in_process()) as client:
        once = await client.call_tool("list_rooms", {})
        await admin.fault("RoomService/ListRooms", error=(code, "boom"))
        always = await guarded(client, "list_rooms")
        await admin.clear_faults()
        assert (await ok(client, "list_rooms"))["total"] == 1
    assert once.is_error is (code not in PASSING), text(once)
    if code == "unauthenticated":
        assert "lacks the permission for ListRooms" in always
    else:
        assert f"LiveKit refused ListRooms ({code}, HTTP {status}): boom" in always


async def test_a_read_is_retried_past_a_dropped_connection(in_process: InProcess, admin: SandboxAdmin) -> None:
    await admin.join("r", "alice")
    await admin.fault("RoomService/ListParticipants", drop=True, times=2)
    async with Client(in_process()) as client:
        data = await ok(client, "list_participants", room="r")
    assert [p["identity"] for p in data["participants"]] == ["alice"]


async def test_a_change_that_failed_is_not_sent_again(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "alice")
    await admin.fault("RoomService/RemoveParticipant", error=("unavailable", "draining"), times=1)
    async with Client(in_process()) as client:
        message = await guarded(client, "remove_participant", room="r", identity="alice")
        assert "(unavailable, HTTP 503): draining" in message
        assert await identities(lkapi, "r") == {"alice"}  # a retry would have removed her: the fault was used up
        await ok(client, "remove_participant", room="r", identity="alice")
    assert await identities(lkapi, "r") == set()


async def test_a_change_whose_connection_broke_says_it_may_have_happened_and_how_to_check(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "alice")
    await admin.fault("RoomService/RemoveParticipant", drop=True, times=1)
    async with Client(in_process()) as client:
        message = await guarded(client, "remove_participant", room="r", identity="alice")
    assert "the connection broke during RemoveParticipant" in message
    assert "may or may not have happened: call list_participants" in message
    assert await identities(lkapi, "r") == {"alice"}


async def test_a_garbled_answer_to_a_change_says_it_may_have_happened(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice", metadata="old")
    await admin.fault("RoomService/UpdateParticipant", malformed=True)
    async with Client(in_process()) as client:
        message = await guarded(client, "update_participant", room="r", identity="alice", metadata="new")
    assert "not a valid protobuf message" in message
    assert "may or may not have happened: call get_participant" in message


# --- The timeout bounds the whole call ---------------------------------------------------------------


async def test_the_timeout_bounds_a_read_with_its_retries_and_the_server_keeps_serving(
    impatient: MCPServer[Any], admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice")
    # Each attempt fails after 0.7 s: within the 1 s the whole call has, a second one can start but not finish,
    # where 3 retries unbounded by the timeout would make 4 attempts.
    await admin.fault("RoomService/ListParticipants", latency_ms=700, error=("unavailable", "busy"), times=100)
    async with Client(impatient) as client:
        message = await guarded(client, "list_participants", room="r")
        attempts = 100 - (await admin.state())["faults"]["RoomService/ListParticipants"]["times"]
        await admin.clear_faults()
        data = await ok(client, "list_participants", room="r")
    assert attempts in (1, 2)
    # Cut off in the second attempt, or (on a slow machine) given up when no time was left for one.
    assert "did not answer ListParticipants within 1 s" in message or "(unavailable, HTTP 503): busy" in message
    assert [p["identity"] for p in data["participants"]] == ["alice"]


async def test_a_timed_out_call_leaves_no_connection_to_livekit_behind(in_process: InProcess, own: Sandbox) -> None:
    own.state.join("r", "alice")
    server = in_process(env=LiveKitTarget(own.url, "devkey", SECRET).env(), timeout=1)
    own.state.fault("RoomService/GetParticipant", latency_ms=30_000)
    messages: list[str] = []

    async def timed_out(client: Client) -> None:
        messages.append(await guarded(client, "get_participant", room="r", identity="alice"))

    async with Client(server) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(timed_out, client)
        assert own.state.peak_in_flight["RoomService/GetParticipant"] == 4
        assert all("did not answer GetParticipant within 1 s" in m for m in messages), messages
        # Had the calls been left running, their connections would stay open while the sandbox stalls (checked
        # while the server still runs: its LiveKit client is closed with it).
        await until("the server closed its connections to LiveKit", lambda: connections_to(None, own) == 0, 5)


# --- Cancellation -------------------------------------------------------------------------------------


async def test_a_call_the_client_cancels_stops_talking_to_livekit(
    serve_http: Callable[..., Served], own: Sandbox, mode: str
) -> None:
    own.state.join("r", "alice")
    server = serve_for(serve_http, own, "--timeout", "60")
    own.state.fault("RoomService/GetParticipant", latency_ms=30_000)
    async with Client(server.url, mode=mode) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(client.call_tool, "get_participant", {"room": "r", "identity": "alice"})
            await until("four calls stalled in LiveKit", lambda: own.state.in_flight["RoomService/GetParticipant"] == 4)
            assert connections_to(server, own) == 4
            tg.cancel_scope.cancel()
        # The server would wait 60 s for LiveKit: only the cancellation can have closed these connections.
        await until("the server closed its connections to LiveKit", lambda: connections_to(server, own) == 0, 5)
        own.state.clear_faults()
        await ok(client, "get_participant", room="r", identity="alice")


# --- Bounded fan-out ----------------------------------------------------------------------------------


async def test_find_agent_over_many_rooms_never_has_more_than_the_concurrency_limit_in_flight(own: Sandbox) -> None:
    for n in range(24):
        own.state.join_agent(f"busy-{n:02d}", "helper")
    # Over HTTP (in process): one server running for both clients, as one process serves all its sessions.
    env = LiveKitTarget(own.url, "devkey", SECRET).env(LIVEKIT_MCP_CONCURRENCY="3")
    # Slow answers, so that requests overlap as much as the server lets them.
    own.state.fault("RoomService/ListParticipants", latency_ms=50)
    async with http_in_process(env) as server, server.client() as first, server.client() as second:
        results: list[dict[str, Any]] = []

        async def find(client: Client) -> None:
            results.append(await ok(client, "find_agent"))

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(find, first)
                tg.start_soon(find, second)
    assert [len(r["agents"]) for r in results] == [24, 24]
    # The limit holds for the whole process, however many tools fan out at once; and it is used.
    assert own.state.peak_in_flight["RoomService/ListParticipants"] == 3


# --- Recovery -----------------------------------------------------------------------------------------


async def test_livekit_stopped_and_restarted_on_the_same_port_is_used_again_without_a_restart(
    serve_http: Callable[..., Served], own: Sandbox
) -> None:
    own.state.join("r", "alice")
    own.state.join("r", "bob")
    port = int(own.url.rsplit(":", 1)[1])
    server = serve_for(serve_http, own)
    async with Client(server.url) as client:
        assert (await ok(client, "list_participants", room="r"))["total"] == 2
        await own.stop()
        down = await guarded(client, "list_participants", room="r")
        change_while_down = await guarded(client, "remove_participant", room="r", identity="bob")
        await own.start(port=port)
        # A change first: it must not meet a connection the old LiveKit closed.
        await ok(client, "remove_participant", room="r", identity="bob")
        data = await ok(client, "list_participants", room="r")
    assert f"LiveKit at http://127.0.0.1:{port} is unreachable (connection refused)" in down
    assert "is unreachable (connection refused)" in change_while_down
    assert [p["identity"] for p in data["participants"]] == ["alice"]
    assert server.process.poll() is None


# --- Failures that are not LiveKit's errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://no-such-host.invalid", "is unreachable (no such host: no-such-host.invalid); check the host name"),
        ("https://{sandbox}", "is unreachable (TLS failed: [SSL: WRONG_VERSION_NUMBER]"),
    ],
    ids=["dns", "tls"],
)
async def test_a_wrong_livekit_url_is_explained(
    in_process: InProcess, livekit: LiveKitTarget, url: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = url.format(sandbox=livekit.url.removeprefix("http://"))
    async with Client(in_process(env=livekit.env(LIVEKIT_URL=url))) as client:
        message = await guarded(client, "list_rooms")
    assert expected in message
    no_secret(caplog.text, *(record.getMessage() for record in caplog.records))


HUGE = "(100 MiB)"


async def test_answers_that_are_not_livekit_answers_are_explained(in_process: InProcess) -> None:
    answer = [(200, "text/html", "")]  # status, content type, body: what the impostor answers now

    async def impostor(request: web.Request) -> web.StreamResponse:
        status, content_type, body = answer[0]
        if body != HUGE:
            return web.Response(status=status, content_type=content_type, text=body)
        # Announces 100 MiB and sends the first bytes: the client must not start reading it.
        response = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(100 * 2**20)})
        await response.prepare(request)
        await response.write(b"\x0a" * 1024)
        return response

    async with impostor_livekit(impostor) as url:
        messages = {}
        async with Client(in_process(env=LiveKitTarget(url, "devkey", SECRET).env())) as client:
            for case, status, content_type, body in [
                ("empty page", 200, "text/html", ""),  # would decode as "no rooms"
                ("web page", 200, "text/html", "<!DOCTYPE html><html><body>Welcome</body></html>"),
                ("json", 200, "application/json", '{"rooms": []}'),
                ("proxy error", 502, "text/html", "<html>Bad Gateway</html>"),
                ("not found", 404, "text/plain", "404 page not found"),
                ("too large", 413, "text/plain", "request body too large"),
                ("huge answer", 200, "application/protobuf", HUGE),
            ]:
                answer[0] = (status, content_type, body)
                messages[case] = await guarded(client, "list_rooms")
    for case in ("empty page", "web page"):
        assert "did not answer ListRooms as LiveKit does (HTTP 200, text/html instead of protobuf)" in messages[case]
    assert "(HTTP 200, application/json instead of protobuf)" in messages["json"]
    assert (
        "(HTTP 502, no Twirp error in the body); check that LIVEKIT_URL is the LiveKit server"
        in messages["proxy error"]
    )
    assert "(HTTP 404, no Twirp error in the body)" in messages["not found"]
    assert (
        "LiveKit refused ListRooms (HTTP 413): the request is larger than the server accepts" in messages["too large"]
    )
    assert "(HTTP 200, 104,857,600 bytes announced, over the 67,108,864 read)" in messages["huge answer"]
