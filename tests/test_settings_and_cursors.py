"""Crafted list cursors are refused as tool errors, and the README's settings that had no test of their own.

Every server is built in the test process from its settings: driven by the MCP SDK's client in memory, or by plain
HTTP requests to its HTTP app (in process too) for what only HTTP has: Host, Origin and the OAuth metadata.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from mcp import Client
from pydantic import SecretStr

from livekit_mcp.config import Settings
from livekit_mcp.sandbox import SandboxAdmin
from tests.asgi import asgi_client
from tests.conftest import (
    InProcess,
    InProcessHTTP,
    LiveKitTarget,
    environment,
    fails,
    http_in_process,
    identities,
    ok,
    text,
)

pytestmark = pytest.mark.anyio


def crafted(raw: str) -> str:
    """A cursor as the server would encode it, around JSON it never writes."""
    return base64.urlsafe_b64encode(raw.encode()).decode()


# --- Crafted cursors ---------------------------------------------------------------------------------

HUGE_INT = "9" * 400
# Refused by both list tools, whatever sort key each uses.
EITHER = {
    "not base64 JSON": "!!not-a-cursor!!",
    "an object": crafted('{"after": "r"}'),
    "nested objects": crafted('[{"a": [1, {"b": 2}]}, {"c": null}]'),
    "nested lists": crafted("[" * 300 + "]" * 300),
    "1e400": crafted('[1e400, "alice"]'),
    "NaN": crafted('[NaN, "alice"]'),
    "a bool": crafted('[true, "alice"]'),
    "null": crafted('[null, "alice"]'),
}
# Flat lists of the allowed types, but not of the types of that list's sort key.
ROOMS_ONLY = {"a number for a name": crafted("[1]"), "a huge number": crafted(f"[{HUGE_INT}]")}
PARTICIPANTS_ONLY = {
    "a name for a time": crafted('["yesterday", "alice"]'),
    "too short": crafted("[1.5]"),
    "a huge number": crafted(f'[{HUGE_INT}, "alice"]'),
}


def refused_cursor(message: str) -> None:
    assert "'cursor'" in message, message
    assert "next_cursor" in message, message  # says what is allowed
    assert "Traceback" not in message


async def test_crafted_cursors_are_tool_errors_naming_the_cursor_and_the_server_keeps_serving(
    in_process: InProcess, admin: SandboxAdmin
) -> None:
    await admin.join("r1", "alice")
    await admin.join("r1", "bob")
    await admin.join("r2", "carol")
    async with Client(in_process()) as client:
        for name, cursor in (EITHER | ROOMS_ONLY).items():
            message = await fails(client, "list_rooms", cursor=cursor)
            refused_cursor(message)
            assert (await ok(client, "list_rooms"))["total"] == 2, f"after list_rooms with {name}"
        for name, cursor in (EITHER | PARTICIPANTS_ONLY).items():
            message = await fails(client, "list_participants", room="r1", cursor=cursor)
            refused_cursor(message)
            assert (await ok(client, "list_participants", room="r1"))["total"] == 2, f"after {name}"
        # The cursors the server does issue still page through.
        first = await ok(client, "list_rooms", limit=1)
        second = await ok(client, "list_rooms", limit=1, cursor=first["next_cursor"])
        people = await ok(client, "list_participants", room="r1", limit=1)
        rest = await ok(client, "list_participants", room="r1", limit=1, cursor=people["next_cursor"])
    assert [r["name"] for r in first["rooms"] + second["rooms"]] == ["r1", "r2"]
    assert "next_cursor" not in second
    assert {p["identity"] for p in people["participants"] + rest["participants"]} == {"alice", "bob"}


# --- Host and Origin ---------------------------------------------------------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}},
}


async def post(server: InProcessHTTP, **headers: str) -> int:
    """The status of an initialize request to the server's HTTP app with these headers."""
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with asgi_client(server.app) as http:
        response = await http.post(server.url, json=INITIALIZE, headers=accept | headers)
        await response.aclose()
        return response.status_code


async def test_allowed_hosts_and_origins_are_served_and_others_refused(livekit: LiveKitTarget) -> None:
    env = livekit.env(
        LIVEKIT_MCP_ALLOWED_HOSTS="mcp.example.com", LIVEKIT_MCP_ALLOWED_ORIGINS="https://app.example.com"
    )
    async with http_in_process(env) as server:
        assert await post(server, Host="mcp.example.com") == 200
        assert await post(server, Host="other.example.com") == 421
        assert await post(server, Origin="https://app.example.com") == 200
        assert await post(server, Origin="https://other.example.com") == 403
        assert await post(server, Host="mcp.example.com", Origin="https://other.example.com") == 403


async def test_without_allowed_hosts_a_non_loopback_host_is_refused(livekit: LiveKitTarget) -> None:
    async with http_in_process(livekit.env()) as server:
        assert await post(server, Host="mcp.example.com") == 421
        assert await post(server, Origin="https://app.example.com") == 403
        assert await post(server) == 200


# --- Confirmation tokens -----------------------------------------------------------------------------


async def test_a_confirm_token_past_the_confirm_ttl_is_refused_as_expired(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("support", "customer")
    now = [1_900_000_000.0]  # the server's clock, moved on by the test instead of waiting
    env = livekit.env(LIVEKIT_MCP_CONFIRM="auto", LIVEKIT_MCP_CONFIRM_TTL="1")
    server = in_process(env=env, clock=lambda: now[0])
    async with Client(server) as bot:
        preview = await ok(bot, "remove_participant", room="support", identity="customer")
        token = preview["confirm_token"]
        assert int(token.split(".")[1]) == 1_900_000_001  # the TTL asked for, not the default 120 s
        now[0] += 1.5  # past its expiry, without waiting for it
        refused = await fails(bot, "remove_participant", room="support", identity="customer", confirm_token=token)
    assert "'confirm_token'" in refused
    assert "expired (tokens last 1 s)" in refused
    assert await identities(lkapi, "support") == {"customer"}


# --- Public URL --------------------------------------------------------------------------------------


async def test_the_public_url_is_the_resource_the_oauth_metadata_names(livekit: LiveKitTarget) -> None:
    public = "https://mcp.example.com/mcp"
    env = livekit.env(LIVEKIT_MCP_AUTH_TOKENS="bot:write:token-0123456789abcdef", LIVEKIT_MCP_PUBLIC_URL=public)
    async with http_in_process(env) as server, asgi_client(server.app) as http:
        response = await http.get(server.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
        assert response.status_code == 200
        metadata: dict[str, Any] = response.json()
        unauthorized = await http.post(server.url, json=INITIALIZE)
        challenge = unauthorized.headers["WWW-Authenticate"]
    assert metadata["resource"] == public
    assert server.url not in json.dumps(metadata)
    assert "https://mcp.example.com/.well-known/oauth-protected-resource/mcp" in challenge


# --- Retries -----------------------------------------------------------------------------------------


async def test_with_no_retries_a_read_that_failed_in_passing_fails_and_by_default_it_succeeds(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin
) -> None:
    await admin.join("r", "alice")
    once = in_process(env=livekit.env(LIVEKIT_MCP_RETRIES="0"))
    async with Client(once) as client:
        await admin.fault("RoomService/ListRooms", error=("unavailable", "draining"), times=1)
        failed = await fails(client, "list_rooms")
        assert (await ok(client, "list_rooms"))["total"] == 1  # the one failure was used up: one attempt, no retry
    assert "unavailable" in failed
    async with Client(in_process()) as client:
        await admin.fault("RoomService/ListRooms", error=("unavailable", "draining"), times=1)
        result = await client.call_tool("list_rooms", {})
    assert not result.is_error, text(result)
    assert (await admin.state())["faults"].get("RoomService/ListRooms", {"times": 0})["times"] == 0


# --- The audit log flag ------------------------------------------------------------------------------


async def test_the_audit_log_flag_gets_a_line_per_attempted_change(
    in_process: InProcess, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await admin.join("r", "alice")
    audit = tmp_path / "flag-audit.jsonl"
    server = in_process(audit_log=audit)  # the --audit-log flag
    async with Client(server) as client:
        await ok(client, "update_room_metadata", room="r", metadata="m")
        await ok(client, "list_rooms")  # reads are not audited
    written = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["tool"], line["outcome"]) for line in written] == [
        ("update_room_metadata", "attempted"),
        ("update_room_metadata", "done"),
    ]
    assert written[1]["arguments"] == {"room": "r", "metadata": "m"}


def test_livekits_credentials_are_read_from_their_own_names_only() -> None:
    # pydantic-settings reads every alias of a field from the environment: with the aliases "url", "api_key" and
    # "api_secret", a host's `URL` variable was taken as the LiveKit URL.
    with environment({"URL": "http://elsewhere:1", "API_KEY": "other", "API_SECRET": "other-secret"}):
        settings = Settings.load(None)
    assert (settings.url, settings.api_key, settings.api_secret) == (None, None, None)
    with environment({"LIVEKIT_URL": "http://lk:7880", "LIVEKIT_API_KEY": "k", "livekit_api_secret": "s"}):
        settings = Settings.load(None, url="http://flag:7880")
    assert (settings.url, settings.api_key, settings.api_secret) == ("http://flag:7880", "k", SecretStr("s"))
