"""The HTTP service: bearer tokens and roles, safe defaults, attribution, health, SIGTERM, stateless replicas.

Real HTTP on loopback, with the MCP SDK client and with plain HTTP requests.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from hashlib import sha256
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import httpx2
import pytest
from livekit import api
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.service import listen
from realkit.processes import free_port
from tests.conftest import LiveKitTarget, Served, fails, identities, no_secret, ok, run_cli_here, spawn

pytestmark = pytest.mark.anyio

WRITER = "slack-bot"
WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
TOKENS = f"{WRITER}:write:{WRITE_TOKEN},dashboard:read:{READ_TOKEN}"
CHANGE_TOOLS = {
    "create_room",
    "update_room_metadata",
    "delete_room",
    "update_participant",
    "mute_track",
    "remove_participant",
    "dispatch_agent",
    "cancel_dispatch",
    "remove_agent",
    "send_data",
    "perform_rpc",
}


@asynccontextmanager
async def client(url: str, token: str | None = None, **headers: str) -> AsyncIterator[Client]:
    """The SDK client over streamable HTTP, sending a bearer token and any other headers."""
    sent = dict(headers) | ({"Authorization": f"Bearer {token}"} if token else {})
    async with httpx2.AsyncClient(headers=sent) as http, Client(streamable_http_client(url, http_client=http)) as c:
        yield c


@pytest.fixture(scope="module")
def secured(serve_http: Callable[..., Served], livekit: LiveKitTarget) -> Served:
    """A server with a write token and a read token, logging JSON."""
    return serve_http("--log-format", "json", "--log-level", "INFO", env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS))


async def post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], str]:
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=accept | headers) as r:
        return r.status, dict(r.headers), await r.text()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}},
}


# --- Tokens and roles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", "Basic abc", f"Bearer {WRITE_TOKEN}x"]
)
async def test_no_or_wrong_token_is_401_with_www_authenticate(secured: Served, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    status, response_headers, body = await post(secured.url, INITIALIZE, **headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"].startswith("Bearer ")
    assert "oauth-protected-resource" in response_headers["WWW-Authenticate"]
    assert WRITE_TOKEN not in body


async def test_the_protected_resource_metadata_names_the_scopes(secured: Served) -> None:
    url = secured.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        metadata = await response.json()
    assert metadata["resource"] == secured.url
    assert metadata["scopes_supported"] == ["livekit:read"]


async def test_a_read_token_sees_and_calls_only_read_tools(
    secured: Served, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "dana")
    async with client(secured.url, READ_TOKEN) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        listed = await ok(c, "list_participants", room="r")
        refused = await fails(c, "remove_participant", room="r", identity="dana")
    assert names
    assert not names & CHANGE_TOOLS
    assert listed["total"] == 1
    assert "refused by policy (role): 'dashboard' has a read-only token" in refused
    assert await identities(lkapi, "r") == {"dana"}


async def test_a_write_token_does_everything_and_is_recorded_with_who_it_acts_for(
    serve_http: Callable[..., Served],
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
) -> None:
    await admin.join("r", "dana")
    await admin.join("r", "bob")
    audit = tmp_path / "audit.jsonl"
    server = serve_http(env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS, LIVEKIT_MCP_AUDIT_LOG=str(audit)))
    async with client(server.url, WRITE_TOKEN, **{"X-On-Behalf-Of": "U024BE7LH"}) as c:
        assert {t.name for t in (await c.list_tools()).tools} >= CHANGE_TOOLS
        await ok(c, "remove_participant", room="r", identity="dana")
    async with client(server.url, READ_TOKEN) as c:
        await fails(c, "remove_participant", room="r", identity="bob")
    assert await identities(lkapi, "r") == {"bob"}
    attempted, done, refused = (json.loads(line) for line in audit.read_text().splitlines())
    assert (attempted["principal"], attempted["outcome"]) == (WRITER, "attempted")
    assert (done["principal"], done["on_behalf_of"], done["outcome"]) == (WRITER, "U024BE7LH", "done")
    assert (refused["principal"], refused["outcome"]) == ("dashboard", "refused by policy")
    for token in (WRITE_TOKEN, READ_TOKEN):
        no_secret(audit.read_text(), server.stderr())
        assert token not in audit.read_text() + server.stderr()


async def test_tokens_from_a_file_may_be_stored_as_hashes(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await admin.join("r", "dana")
    tokens = tmp_path / "tokens.toml"
    digest = sha256(WRITE_TOKEN.encode()).hexdigest()
    tokens.write_text(f'[[tokens]]\nprincipal = "ops"\nrole = "write"\ntoken_sha256 = "{digest}"\n')
    server = serve_http(env=livekit.env(LIVEKIT_MCP_AUTH_FILE=str(tokens)))
    async with client(server.url, WRITE_TOKEN) as c:
        assert (await ok(c, "list_participants", room="r"))["total"] == 1
    status, _, _ = await post(server.url, INITIALIZE, Authorization=f"Bearer {READ_TOKEN}")
    assert status == 401


async def test_sse_requires_the_token_too(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    await admin.join("r", "dana")
    server = serve_http(transport="sse", env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS))
    async with aiohttp.ClientSession() as session, session.get(server.url) as response:
        assert response.status == 401
    async with Client(sse_client(server.url, headers={"Authorization": f"Bearer {READ_TOKEN}"})) as c:
        assert (await ok(c, "list_participants", room="r"))["total"] == 1
        assert "remove_participant" not in {t.name for t in (await c.list_tools()).tools}


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ("bot:admin:0123456789abcdef0123", "role must be read or write"),
        ("bot:write:short", "shorter than 16 characters"),
        ("just-a-token-without-colons", "is not principal:role:token"),
    ],
)
def test_bad_token_settings_stop_the_server_without_showing_a_token(
    livekit: LiveKitTarget, tokens: str, expected: str
) -> None:
    done = run_cli_here(
        "--transport", "http", "--port", str(free_port()), env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=tokens)
    )
    assert done.returncode == 2
    assert expected in done.stderr
    assert "0123456789abcdef0123" not in done.stderr


# --- Safe defaults -----------------------------------------------------------------------------------


def test_a_non_loopback_bind_without_tokens_is_refused_at_start(livekit: LiveKitTarget) -> None:
    done = run_cli_here("--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()), env=livekit.env())
    assert done.returncode == 2
    assert "refusing to serve HTTP on 0.0.0.0 without authentication" in done.stderr


async def test_allow_unauthenticated_starts_but_warns(serve_http: Callable[..., Served]) -> None:
    server = serve_http("--host", "0.0.0.0", "--allow-unauthenticated")
    async with Client(server.url) as c:
        assert (await c.list_tools()).tools
    assert "WITHOUT authentication" in server.stderr()


# --- Health ------------------------------------------------------------------------------------------


async def test_healthz_needs_no_token_and_says_whether_livekit_answered(
    secured: Served, serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    down = serve_http(env=livekit.env(LIVEKIT_URL=f"http://127.0.0.1:{free_port()}"))
    answers = {}
    for name, server in (("up", secured), ("down", down)):
        async with aiohttp.ClientSession() as session, session.get(server.url.replace("/mcp", "/healthz")) as r:
            assert r.status == 200
            answers[name] = await r.json()
    assert answers["up"]["livekit"]["ok"] is True
    assert answers["down"]["livekit"] == {
        "ok": False,
        "error": "Unreachable",
        "checked_at": answers["down"]["livekit"]["checked_at"],
    }


# --- Logs --------------------------------------------------------------------------------------------


async def test_json_logs_carry_the_request_id_and_the_caller(secured: Served, admin: SandboxAdmin) -> None:
    async with client(secured.url, WRITE_TOKEN, **{"X-On-Behalf-Of": "U1"}) as c:
        await fails(c, "get_room", room="no-such-room")
    lines = [json.loads(line) for line in secured.stderr().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["principal"] == WRITER and "no-such-room" in line["message"]]
    assert mine
    assert mine[0]["request_id"] != "-"
    assert mine[0]["on_behalf_of"] == "U1"
    assert WRITE_TOKEN not in secured.stderr()


# --- Graceful stop, stateless replicas ---------------------------------------------------------------


async def test_sigterm_lets_a_call_in_flight_finish_then_refuses_new_ones(
    livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await admin.join("r", "dana")
    await admin.fault("RoomService/ListParticipants", latency_ms=1500, times=1)
    log = tmp_path / "log"
    process, port = spawn(["--transport", "http", "--port", "0", "--log-level", "INFO"], livekit.env(), log)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        # terminate_on_close=False: leaving the client must not need the server, which is stopping by then.
        async with Client(streamable_http_client(url, terminate_on_close=False), mode="2026-07-28") as c:
            await c.list_tools()  # the client checks results against tools/list: fetch it while the server takes calls
            result: dict[str, Any] = {}

            async def slow_call() -> None:
                result.update(await ok(c, "list_participants", room="r"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                with anyio.fail_after(10):  # until the call is waiting on LiveKit's injected latency
                    while (await admin.state())["faults"]:  # noqa: ASYNC110 - polling another process's state
                        await anyio.sleep(0.02)
                process.send_signal(signal.SIGTERM)
        assert result["total"] == 1
        # It stops by itself once the call is answered (uvicorn re-raises the SIGTERM it caught, hence -15).
        assert await anyio.to_thread.run_sync(lambda: process.wait(40)) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in log.read_text()
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(url, INITIALIZE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_a_call_longer_than_the_shutdown_grace_is_cut_off_when_the_grace_ends(
    livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await admin.join("r", "dana")
    await admin.fault("RoomService/ListParticipants", latency_ms=20_000, times=1)
    log = tmp_path / "log"
    env = livekit.env(LIVEKIT_MCP_SHUTDOWN_GRACE="1", LIVEKIT_MCP_TIMEOUT="60")
    process, port = spawn(["--transport", "http", "--port", "0", "--log-level", "INFO"], env, log)
    outcome: list[BaseException | dict[str, Any]] = []
    try:
        async with Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", terminate_on_close=False), mode="2026-07-28"
        ) as c:
            await c.list_tools()

            async def slow_call() -> None:
                try:
                    outcome.append(await ok(c, "list_participants", room="r"))
                except Exception as exc:  # what the client gets is the point
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                with anyio.fail_after(10):
                    while (await admin.state())["faults"]:  # noqa: ASYNC110 - polling another process's state
                        await anyio.sleep(0.02)
                process.send_signal(signal.SIGTERM)
                # The call needs 20 s more; with a 1 s grace the process is gone long before (bounded wait).
                code = await anyio.to_thread.run_sync(lambda: process.wait(15))
                tg.cancel_scope.cancel()
        assert code in (0, 1, -signal.SIGTERM)
        assert not any(isinstance(o, dict) for o in outcome), "the call outlived the grace period"
        assert "timeout graceful shutdown exceeded" in log.read_text()  # uvicorn's line when it cancels calls
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_stateless_replicas_serve_one_client_and_its_confirmation_between_them(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("r", "dana")
    env = livekit.env(LIVEKIT_MCP_CONFIRM="auto", LIVEKIT_MCP_CONFIRM_KEY="one-key-for-all-replicas-0123456789")
    a, b = serve_http("--stateless", env=env), serve_http("--stateless", env=env)
    # No session: a request carries all it needs, so any replica can answer it.
    status, headers, _ = await post(a.url, INITIALIZE)
    assert status == 200
    assert "mcp-session-id" not in {k.lower() for k in headers}
    async with Client(a.url) as first:
        token = (await ok(first, "remove_participant", room="r", identity="dana"))["confirm_token"]
    assert await identities(lkapi, "r") == {"dana"}
    async with Client(b.url) as second:
        assert (await ok(second, "remove_participant", room="r", identity="dana", confirm_token=token))[
            "outcome"
        ] == "done"
    assert await identities(lkapi, "r") == set()


async def test_the_http_server_sends_each_response_without_waiting_for_an_ack() -> None:
    """Accepted connections have TCP_NODELAY, as uvicorn serves them from our listening socket: without it Nagle
    held a JSON response's body until the client acknowledged its head (~40 ms per request on 2026-07-28)."""
    sock = listen("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[int] = loop.create_future()

    class Record(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Record, sock=sock)  # what uvicorn does with the sockets it is given
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        with anyio.fail_after(10):
            assert await accepted == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
