"""Holding up under abuse (issue 12, item 9): what a slow or greedy client gets over HTTP, and that the others
are still served meanwhile. Raw sockets for the hostile clients (no client library sends headers a byte at a
time), the MCP SDK client for the well-behaved ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import LiveKitTarget, Served, ok

pytestmark = pytest.mark.anyio

TOKENS = "alice:read:alice-token-0123456789abcdef,bob:read:bob-token-0123456789abcdef"
ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
).encode()


def port_of(served: Served) -> int:
    return int(served.url.split(":")[2].split("/")[0])


async def closed_by_server(reader: asyncio.StreamReader, within: float = 20) -> bytes:
    """What the server sends before closing the connection (a bounded wait, not a timing assertion)."""
    with anyio.fail_after(within):
        return await reader.read()


async def answered(served: Served, token: str | None = None) -> None:
    """A well-behaved client is served: a tool call through the SDK client."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with anyio.fail_after(20):
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(served.url, http_client=http)) as c,
        ):
            await ok(c, "list_rooms")


# --- Slow clients ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def impatient(serve_http: Callable[..., Served], livekit: LiveKitTarget) -> Served:
    return serve_http(env=livekit.env(LIVEKIT_MCP_HEADER_TIMEOUT="1", LIVEKIT_MCP_BODY_TIMEOUT="1"))


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(impatient: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(impatient))
    try:
        assert await closed_by_server(reader) == b""
        await answered(impatient)  # the server itself is fine
    finally:
        writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off_though_every_byte_resets_keep_alive(
    impatient: Served,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(impatient))
    head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    sent = 0
    try:
        with anyio.fail_after(30):
            while sent < len(head) and not reader.at_eof():  # at 10 bytes/s: 25 s, far past the 1 s deadline
                writer.write(head[sent : sent + 1])
                await writer.drain()
                sent += 1
                await anyio.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed while we were writing: what is wanted
    finally:
        writer.close()
    assert sent < len(head), "the server kept a connection whose headers never ended"
    await answered(impatient)


async def test_a_body_that_trickles_gets_408_and_nothing_reaches_the_app(impatient: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(impatient))
    head = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(INITIALIZE)
    )
    writer.write(head + INITIALIZE[:10])  # the headers in time, then the body stops
    await writer.drain()
    try:
        answer = await closed_by_server(reader)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408"
    assert b"not received within 1 s" in rest
    assert b"connection: close" in rest.lower()
    assert "Created new transport" not in impatient.stderr()  # no session was opened by half an initialize


async def test_a_body_sent_whole_in_time_is_served_even_with_the_short_deadlines(impatient: Served) -> None:
    port = port_of(impatient)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json, text/event-stream\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (port, len(INITIALIZE))
    )
    for i in range(0, len(INITIALIZE), 40):  # in pieces, but all of it within the second
        writer.write(INITIALIZE[i : i + 40])
        await writer.drain()
    try:
        answer = await closed_by_server(reader)
    finally:
        writer.close()
    assert answer.split()[1] == b"200"
    assert b"mcp-session-id" in answer.lower()


# --- The connection limit ----------------------------------------------------------------------------


async def test_past_the_connection_limit_a_request_gets_503_and_below_it_is_served(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    served = serve_http(env=livekit.env(LIVEKIT_MCP_MAX_CONNECTIONS="3", LIVEKIT_MCP_HEADER_TIMEOUT="60"))
    idle = [await asyncio.open_connection("127.0.0.1", port_of(served)) for _ in range(2)]
    try:
        await answered(served)  # two idle connections and this one: three, the limit, served
        idle.append(await asyncio.open_connection("127.0.0.1", port_of(served)))
        async with httpx2.AsyncClient() as http:
            refused = await http.post(served.url, content=INITIALIZE, headers={"Content-Type": "application/json"})
        assert refused.status_code == 503
    finally:
        for _, writer in idle:
            writer.close()
    with anyio.fail_after(20):  # the idle ones gone, the server serves again
        while True:
            try:
                await answered(served)
                break
            except Exception:  # the server may still count the closed connections for a moment
                await anyio.sleep(0.1)


# --- Sessions per principal --------------------------------------------------------------------------


async def open_session(url: str, token: str) -> tuple[int, str | None, str]:
    """An initialize request as a client opening a session sends it: (status, session id, body)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    async with httpx2.AsyncClient() as http:
        r = await http.post(url, content=INITIALIZE, headers=headers)
    return r.status_code, r.headers.get("mcp-session-id"), r.text


async def end_session(url: str, token: str, sid: str) -> int:
    async with httpx2.AsyncClient() as http:
        r = await http.delete(url, headers={"Authorization": f"Bearer {token}", "mcp-session-id": sid})
    return r.status_code


async def test_one_principal_cannot_take_every_session_and_ending_one_frees_its_place(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    served = serve_http(env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS, LIVEKIT_MCP_MAX_SESSIONS_PER_PRINCIPAL="2"))
    first = [await open_session(served.url, ALICE) for _ in range(2)]
    assert [status for status, _, _ in first] == [200, 200]
    status, sid, body = await open_session(served.url, ALICE)
    assert (status, sid) == (503, None)
    assert "too many open sessions for alice (the limit is 2)" in body
    await answered(served, BOB)  # another principal, even with the same role, still gets a session
    assert await end_session(served.url, ALICE, str(first[0][1])) == 200
    status, sid, _ = await open_session(served.url, ALICE)
    assert status == 200
    assert sid is not None
    assert ALICE not in served.stderr()
    assert BOB not in served.stderr()


async def test_sessions_left_idle_expire_and_stop_counting(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    served = serve_http(
        env=livekit.env(
            LIVEKIT_MCP_AUTH_TOKENS=TOKENS,
            LIVEKIT_MCP_MAX_SESSIONS_PER_PRINCIPAL="1",
            LIVEKIT_MCP_SESSION_IDLE_TIMEOUT="1",
        )
    )
    status, sid, _ = await open_session(served.url, ALICE)
    assert status == 200
    assert (await open_session(served.url, ALICE))[0] == 503
    with anyio.fail_after(20):
        while (await open_session(served.url, ALICE))[0] != 200:  # noqa: ASYNC110 - polling another process
            await anyio.sleep(0.2)
    async with httpx2.AsyncClient() as http:  # the SDK closed the expired one too: its id is unknown now
        r = await http.post(
            served.url,
            content=b'{"jsonrpc":"2.0","id":2,"method":"ping"}',
            headers={
                "Authorization": f"Bearer {ALICE}",
                "mcp-session-id": str(sid),
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
        )
    assert r.status_code == 404


async def test_the_total_session_limit_holds_across_principals(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    served = serve_http(env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS, LIVEKIT_MCP_MAX_SESSIONS="2"))
    assert (await open_session(served.url, ALICE))[0] == 200
    assert (await open_session(served.url, BOB))[0] == 200
    status, _, body = await open_session(served.url, BOB)
    assert status == 503
    assert "Too many open sessions" in body


@asynccontextmanager
async def sse_session(url: str, token: str) -> AsyncIterator[Client]:
    async with Client(sse_client(url, headers={"Authorization": f"Bearer {token}"})) as c:
        yield c


async def test_sse_sessions_are_capped_per_principal_too(
    serve_http: Callable[..., Served], livekit: LiveKitTarget
) -> None:
    served = serve_http(
        transport="sse",
        env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS, LIVEKIT_MCP_MAX_SESSIONS_PER_PRINCIPAL="1"),
    )
    async with sse_session(served.url, ALICE) as first:
        await ok(first, "list_rooms")
        async with httpx2.AsyncClient() as http:
            refused = await http.get(served.url, headers={"Authorization": f"Bearer {ALICE}"})
        assert refused.status_code == 503
        assert "too many open sessions for alice" in refused.text
        async with sse_session(served.url, BOB) as other:
            await ok(other, "list_rooms")
    with anyio.fail_after(20):  # the stream closed, alice may open another
        while True:
            try:
                async with sse_session(served.url, ALICE) as again:
                    await ok(again, "list_rooms")
                break
            except Exception:  # the server may not have seen the first stream end yet
                await anyio.sleep(0.1)
