"""Attacks on the service, replayed: a hostile LiveKit, a hostile caller, a careless operator.

Each test drives a real `livekit-mcp` process (over HTTP, SSE or the command line) and checks what it answered,
what it wrote to stderr and that it still serves; or, when the transport and the process are not the subject (a
hostile LiveKit, a forged token or cursor, the precedence of settings), the server built in process, and what it
logged (`caplog`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from livekit import api
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import get_default_environment
from mcp.server.mcpserver import MCPServer

from livekit_mcp.sandbox import SandboxAdmin
from realkit.processes import free_port
from tests.conftest import (
    SECRET,
    InProcess,
    LiveKitTarget,
    Served,
    fails,
    identities,
    impostor_livekit,
    no_secret,
    ok,
    run_cli_here,
)
from tests.test_service import INITIALIZE, READ_TOKEN, TOKENS, WRITE_TOKEN, WRITER, client

pytestmark = pytest.mark.anyio

CONFIRM_KEY = "confirm-key-of-the-attack-suite-0123456789"
MAX_ANSWER = 64 * 1024 * 1024  # the README's figure, not the constant: the test pins what users are told


def one_line_failures(stderr: str) -> None:
    """No traceback at the default log level: each failure is one line."""
    assert "Traceback" not in stderr
    assert '  File "' not in stderr


def logged_one_line_failures(caplog: pytest.LogCaptureFixture) -> None:
    """In process: no record at the default level (WARNING and above) carries a traceback."""
    shown = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert not [record for record in shown if record.exc_info], [record.getMessage() for record in shown]
    one_line_failures("\n".join(record.getMessage() for record in shown))


# --- A hostile LiveKit: an answer without Content-Length is read only up to the limit ----------------------


async def test_a_chunked_answer_is_cut_off_at_the_limit_and_the_server_keeps_serving(
    in_process: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    total = 128 * 1024 * 1024
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/protobuf"})
        response.enable_chunked_encoding()  # no Content-Length: nothing to refuse in advance
        await response.prepare(request)
        chunk = b"\x0a" * (1024 * 1024)
        written = 0
        try:
            while written < total:
                await response.write(chunk)
                written += len(chunk)
                sent[0] += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass  # the client stopped reading: what the test wants
        return response

    async with (
        impostor_livekit(endless) as url,
        Client(in_process(env=LiveKitTarget(url, "devkey", SECRET).env())) as c,
    ):
        message = await fails(c, "list_rooms")
        again = await fails(c, "list_rooms")
    assert f"(HTTP 200, an answer longer than the {MAX_ANSWER:,} bytes read)" in message
    assert "check that LIVEKIT_URL is the LiveKit server itself" in message
    assert "longer than" in again  # still serving, the same answer
    # The server stopped reading at the limit each time, so the impostor could not send it all.
    assert sent[0] < 2 * total
    logged_one_line_failures(caplog)


# --- Secrets: none at any log level, in any error -------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_at_debug_no_confirm_token_bearer_token_secret_or_confirm_key_reaches_stderr(
    serve_http: Callable[..., Served],
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    transport: str,
) -> None:
    await admin.join("r", "dana")
    env = livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS, LIVEKIT_MCP_CONFIRM="auto", LIVEKIT_MCP_CONFIRM_KEY=CONFIRM_KEY)
    server = serve_http("--log-level", "DEBUG", transport=transport, env=env)
    connected = (
        client(server.url, WRITE_TOKEN)
        if transport == "http"
        else Client(sse_client(server.url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}))
    )
    async with connected as c:
        planned = await ok(c, "remove_participant", room="r", identity="dana")
        token = planned["confirm_token"]
        wrong = await fails(c, "remove_participant", room="r", identity="dana", confirm_token=token[:-2] + "xx")
        done = await ok(c, "remove_participant", room="r", identity="dana", confirm_token=token)
    assert done["outcome"] == "done"
    assert await identities(lkapi, "r") == set()
    stderr = server.stderr()
    assert "DEBUG" in stderr  # the level under test is really on
    for secret in (token, token.rsplit(".", 1)[1], WRITE_TOKEN, READ_TOKEN, CONFIRM_KEY):
        assert secret not in stderr
        assert secret not in wrong
    no_secret(stderr)


@pytest.mark.parametrize(
    "entry",
    [
        "just-a-token-0123456789abcdef",  # the token alone
        "bot:just-a-token-0123456789abcdef",  # no role: the token stands where the role should
        "bot:admin:just-a-token-0123456789abcdef",
    ],
)
def test_a_malformed_token_entry_is_named_by_its_position_never_echoed(livekit: LiveKitTarget, entry: str) -> None:
    tokens = f"ok:read:{READ_TOKEN},{entry}"
    done = run_cli_here(
        "--transport", "http", "--port", str(free_port()), env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=tokens), timeout=20
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "entry 2 of LIVEKIT_MCP_AUTH_TOKENS" in done.stderr
    assert "just-a-token" not in done.stderr
    assert READ_TOKEN not in done.stderr


# --- One clean line for every failure -------------------------------------------------------------------


async def test_a_non_ascii_confirm_token_is_a_tool_error_naming_the_field(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await admin.join("r", "dana")
    server = in_process(env=livekit.env(LIVEKIT_MCP_CONFIRM="auto", LIVEKIT_MCP_CONFIRM_KEY=CONFIRM_KEY))
    async with Client(server) as c:
        token = (await ok(c, "remove_participant", room="r", identity="dana"))["confirm_token"]
        forged = token[:-1] + "é"
        message = await fails(c, "remove_participant", room="r", identity="dana", confirm_token=forged)
        assert (await ok(c, "list_participants", room="r"))["total"] == 1
    assert "invalid 'confirm_token': not a token this server issued" in message
    assert await identities(lkapi, "r") == {"dana"}
    logged_one_line_failures(caplog)


async def test_a_crafted_cursor_is_one_tool_error_and_one_log_line(
    in_process: InProcess, admin: SandboxAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    await admin.join("a", "x")
    await admin.join("b", "y")
    crafted = base64.urlsafe_b64encode(json.dumps([1]).encode()).decode()  # a list, but of a number, not a name
    async with Client(in_process()) as c:
        message = await fails(c, "list_rooms", limit=1, cursor=crafted)
        assert (await ok(c, "list_rooms"))["total"] == 2
    assert message != "Error executing tool list_rooms"
    assert "list_rooms" in message
    logged_one_line_failures(caplog)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://admin:hunter2-password@127.0.0.1:7880", "must not carry a user or password"),
        ("127.0.0.1:7880", "needs a scheme and a host"),
        ("my-project.livekit.cloud", "needs a scheme and a host"),
        ("ftp://127.0.0.1:7880", "needs a scheme and a host"),
        ("http://127.0.0.1:port", "is not a URL"),
    ],
)
def test_a_livekit_url_that_cannot_work_is_refused_at_start_in_one_line(
    livekit: LiveKitTarget, url: str, expected: str
) -> None:
    done = run_cli_here("--transport", "http", "--port", str(free_port()), env=livekit.env(LIVEKIT_URL=url), timeout=20)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LIVEKIT_URL" in lines[0]
    assert expected in lines[0]
    assert "hunter2" not in done.stderr


# --- X-On-Behalf-Of: bounded, printable, quoted -----------------------------------------------------------


async def exchange(port: int, request: bytes, within: float = 20) -> bytes:
    """Raw bytes to the server on `port`, and everything it answers until it closes (a bounded wait)."""
    with anyio.fail_after(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
    return answer


async def raw_request(url: str, header: bytes) -> tuple[int, str]:
    """A POST with one raw `X-On-Behalf-Of` header line, as a hostile client would send it (no client library
    lets control characters through)."""
    port = int(url.split(":")[2].split("/")[0])
    body = json.dumps(INITIALIZE).encode()
    request = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json, text/event-stream\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
        % (port, len(body))
        + b"X-On-Behalf-Of: "
        + header
        + b"\r\n\r\n"
        + body
    )
    answer = await exchange(port, request)
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest.decode(errors="replace")


@pytest.mark.parametrize(
    "value",
    [b"U1\x1b[2J\x1b[Hprincipal=admin", b"U1\x7f", b"U1\x08\x08admin", b"U" * 201],
    ids=["escape", "delete", "backspace", "too-long"],
)
async def test_an_on_behalf_of_with_control_characters_or_too_long_gets_400(http_server: Served, value: bytes) -> None:
    status, body = await raw_request(http_server.url, value)
    assert status == 400
    assert "X-On-Behalf-Of" in body
    status, _ = await raw_request(http_server.url, b"U" * 200)  # the limit itself is fine
    assert status == 200


async def test_an_on_behalf_of_given_twice_gets_400(http_server: Served) -> None:
    status, body = await raw_request(http_server.url, b"U1\r\nX-On-Behalf-Of: U2")
    assert status == 400
    assert "more than once" in body


async def test_fake_fields_in_on_behalf_of_stay_quoted_in_text_logs(
    serve_http: Callable[..., Served], livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    server = serve_http("--log-level", "INFO", env=livekit.env(LIVEKIT_MCP_AUTH_TOKENS=TOKENS))
    spoof = 'U1] principal=admin on_behalf_of="boss" ['
    async with client(server.url, WRITE_TOKEN, **{"X-On-Behalf-Of": spoof}) as c:
        await fails(c, "get_room", room="no-such-room")
    lines = [line for line in server.stderr().splitlines() if "no-such-room" in line]
    assert lines
    for line in lines:
        fields = re.search(r"\[request=\S+ principal=(\S+) on_behalf_of=(\".*?(?<!\\)\")\] ", line)
        assert fields, line
        assert fields[1] == WRITER
        assert json.loads(fields[2]) == spoof


# --- Configuration that must not start ----------------------------------------------------------------


def refused(env: dict[str, str], *flags: str) -> str:
    done = run_cli_here("--transport", "http", "--port", str(free_port()), *flags, env=env, timeout=20)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_one_token_for_two_principals_is_refused(livekit: LiveKitTarget) -> None:
    tokens = f"alice:read:{WRITE_TOKEN},bob:write:{WRITE_TOKEN}"
    line = refused(livekit.env(LIVEKIT_MCP_AUTH_TOKENS=tokens))
    assert "principals alice and bob are given the same token" in line
    assert WRITE_TOKEN not in line


def test_one_token_in_the_variable_and_the_file_for_two_principals_is_refused(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    file = tmp_path / "tokens.toml"
    file.write_text(f'[[tokens]]\nprincipal = "ops"\nrole = "write"\ntoken = "{READ_TOKEN}"\n')
    env = livekit.env(LIVEKIT_MCP_AUTH_TOKENS=f"dashboard:read:{READ_TOKEN}", LIVEKIT_MCP_AUTH_FILE=str(file))
    line = refused(env)
    assert "principals dashboard and ops are given the same token" in line
    assert READ_TOKEN not in line


@pytest.mark.parametrize("key", ["kx7-short", "z" * 31, "é" * 15])
def test_a_confirm_key_shorter_than_32_bytes_is_refused(livekit: LiveKitTarget, key: str) -> None:
    line = refused(livekit.env(LIVEKIT_MCP_CONFIRM_KEY=key))
    assert "LIVEKIT_MCP_CONFIRM_KEY is shorter than 32 bytes" in line
    assert key not in line


def test_tokens_that_hold_no_token_are_refused_rather_than_serving_without_auth(
    livekit: LiveKitTarget, tmp_path: Path
) -> None:
    assert "holds no principal:role:token entry" in refused(livekit.env(LIVEKIT_MCP_AUTH_TOKENS=" , "))
    file = tmp_path / "tokens.toml"
    file.write_text("tokens = []\n")
    assert "no [[tokens]] table" in refused(livekit.env(LIVEKIT_MCP_AUTH_FILE=str(file)))


# --- Precedence: flags, then the environment (either case), then the file, then defaults ---------------------


async def tool_names(server: MCPServer[Any]) -> set[str]:
    async with Client(server) as c:
        return {t.name for t in (await c.list_tools()).tools}


@pytest.mark.parametrize("name", ["LIVEKIT_MCP_TOOLSETS", "livekit_mcp_toolsets", "Livekit_Mcp_Toolsets"])
async def test_the_environment_beats_the_config_file_whatever_the_case_of_its_names(
    in_process: InProcess, livekit: LiveKitTarget, tmp_path: Path, name: str
) -> None:
    config = tmp_path / "livekit-mcp.toml"
    config.write_text('toolsets = ["agents"]\n')
    env = livekit.env(**{name: "rooms"})
    names = await tool_names(in_process(env=env, config=config))
    assert "list_rooms" in names
    assert "find_agent" not in names


async def test_the_file_beats_defaults_and_flags_beat_everything(
    in_process: InProcess, livekit: LiveKitTarget, tmp_path: Path
) -> None:
    config = tmp_path / "livekit-mcp.toml"
    config.write_text('toolsets = ["agents"]\n')
    from_file = await tool_names(in_process(env=livekit.env(), config=config))
    from_flag = await tool_names(
        in_process(env=livekit.env(livekit_mcp_toolsets="rooms"), config=config, toolsets="participants")
    )
    assert "find_agent" in from_file
    assert "list_rooms" not in from_file
    assert "list_participants" in from_flag
    assert not {"list_rooms", "find_agent"} & from_flag


def test_the_environment_and_the_file_are_both_checked(livekit: LiveKitTarget, tmp_path: Path) -> None:
    config = tmp_path / "livekit-mcp.toml"
    config.write_text("confirm_ttl = -1\n")
    assert "confirm_ttl" in refused(livekit.env(), "--config", str(config))
    env = get_default_environment() | livekit.env(livekit_mcp_confirm_ttl="-1")
    assert "confirm_ttl" in refused(env)


# --- Malformed protocol: an error, never a crash, and the server still serves ---------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
MALFORMED = {
    "not-json": b"{this is not json",
    "not-utf8": b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
    "deeply-nested": DEEP,
    "huge-id": b'{"jsonrpc": "2.0", "id": 1' + b"0" * 5000 + b', "method": "ping"}',
    "batch": json.dumps([INITIALIZE] * 500).encode(),
    "wrong-shape": b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": 7}',
    "empty": b"",
    "null": b"null",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_gets_a_client_error_and_the_server_keeps_serving(
    http_server: Served, body: bytes
) -> None:
    port = int(http_server.url.split(":")[2].split("/")[0])
    request = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json, text/event-stream\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (port, len(body))
    ) + body
    answer = await exchange(port, request)
    status = int(answer.split()[1])
    assert 400 <= status < 500, answer[:300]
    async with Client(http_server.url) as c:
        await ok(c, "list_rooms")
    one_line_failures(http_server.stderr())
