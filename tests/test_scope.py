"""The request scope (scope.py): every surface a client reaches takes its project from the same place, so a token
limited to some projects reaches nothing of the others, through tools, resources or errors, on every transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceTemplateReference

from .conftest import InProcessHTTP, LiveKitTarget, Served, fails, http_in_process, ok

pytestmark = pytest.mark.anyio

STAGING_TOKEN = "staging-reader-token-0123456789"
WRITER_TOKEN = "everything-writer-token-0123456789"


def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(
        '[[tokens]]\nprincipal = "staging-bot"\nrole = "write"\n'
        f'token = "{STAGING_TOKEN}"\nprojects = ["staging"]\n'
        '[[tokens]]\nprincipal = "ops"\nrole = "write"\n'
        f'token = "{WRITER_TOKEN}"\n'
    )
    return path


@pytest.fixture
async def server(
    transport: str, livekit: LiveKitTarget, tmp_path: Path, serve_http: Callable[..., Served]
) -> AsyncIterator[InProcessHTTP | Served]:
    """`--sandbox` (projects staging, the default, and production, each its own seeded sandbox) over `transport`,
    with a token limited to staging and one for every project: streamable HTTP built in this process, SSE (whose
    stream outlives a request) as a process."""
    env = livekit.env(LIVEKIT_MCP_AUTH_FILE=str(tokens_file(tmp_path)))
    if transport == "sse":
        yield serve_http("--sandbox", transport="sse", env=env)
        return
    async with http_in_process(env, credentials="sandbox") as running:
        yield running


@asynccontextmanager
async def connected(server: InProcessHTTP | Served, transport: str, mode: str, bearer: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {bearer}"}
    if isinstance(server, Served):
        async with Client(sse_client(server.url, headers=headers)) as client:
            yield client
        return
    async with server.client(headers, mode=mode) as client:
        yield client


async def read(client: Client, uri: str) -> Any:
    contents = (await client.read_resource(uri)).contents
    return json.loads(getattr(contents[0], "text", ""))


async def refused(client: Client, uri: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return str(caught.value)


SURFACES = [("http", "legacy"), ("http", "2026-07-28"), ("sse", "legacy")]


@pytest.mark.parametrize(("transport", "mode"), SURFACES, ids=["http-2025", "http-2026", "sse"])
async def test_a_token_limited_to_one_project_reads_no_resource_of_another(
    server: InProcessHTTP | Served, transport: str, mode: str
) -> None:
    async with connected(server, transport, mode, STAGING_TOKEN) as client:
        staging = await read(client, "livekit://rooms")
        by_name = await read(client, "livekit://projects/staging/rooms")
        room = await read(client, "livekit://projects/staging/rooms/support-call-1042")
        denied = [
            await refused(client, "livekit://projects/production/rooms"),
            await refused(client, "livekit://rooms?project=production"),
            await refused(client, "livekit://projects/production/rooms/support-call-1042"),
        ]
        unknown = await refused(client, "livekit://projects/nowhere/rooms")
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
    assert staging["total"] > 0
    assert staging == by_name
    assert room["room"]["name"] == "support-call-1042"
    for said in denied:
        assert "refused by policy (projects): 'staging-bot' may use project(s) staging only" in said
        assert "support-call-1042" not in said  # nothing of production's rooms
    assert "known: 'staging'" in unknown
    assert "production" not in unknown  # not even its name
    assert "livekit://rooms" in listed
    async with connected(server, transport, mode, WRITER_TOKEN) as everything:
        production = await read(everything, "livekit://projects/production/rooms")
    assert production["total"] > 0  # the refusals above were the token's, not a missing project


@pytest.mark.parametrize(("transport", "mode"), SURFACES, ids=["http-2025", "http-2026", "sse"])
async def test_tools_refuse_another_project_and_offer_only_the_allowed_names(
    server: InProcessHTTP | Served, transport: str, mode: str
) -> None:
    async with connected(server, transport, mode, STAGING_TOKEN) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        refused_call = await fails(client, "list_rooms", project="production")
        refused_change = await fails(client, "create_room", room="made-here", project="production")
        unknown = await fails(client, "get_room", room="standup", project="nowhere")
        rooms = await ok(client, "list_rooms", project="staging")
    project = tools["list_rooms"].input_schema["properties"]["project"]
    assert project["enum"] == ["staging"]  # never the names it may not use
    assert "project" not in tools["list_projects"].input_schema.get("properties", {})
    for said in (refused_call, refused_change):
        assert "refused by policy (projects)" in said
    assert "production" not in unknown
    assert "known: 'staging'" in unknown
    assert rooms["total"] > 0
    async with connected(server, transport, mode, WRITER_TOKEN) as everything:
        tools = {t.name: t for t in (await everything.list_tools()).tools}
        production = await ok(everything, "list_rooms", names=["made-here"], project="production")
    assert tools["list_rooms"].input_schema["properties"]["project"]["enum"] == ["staging", "production"]
    assert production["rooms"] == []  # the refused create_room made nothing in production


def template(uri: str) -> ResourceTemplateReference:
    return ResourceTemplateReference(type="ref/resource", uri=uri)


@pytest.mark.parametrize(("transport", "mode"), SURFACES, ids=["http-2025", "http-2026", "sse"])
async def test_completions_offer_only_the_callers_projects_and_their_rooms(
    server: InProcessHTTP | Served, transport: str, mode: str
) -> None:
    project_rooms = template("livekit://projects/{project}/rooms/{room}")
    async with connected(server, transport, mode, STAGING_TOKEN) as client:
        capabilities = client.server_capabilities
        projects = (await client.complete(project_rooms, {"name": "project", "value": ""})).completion
        rooms = (
            await client.complete(project_rooms, {"name": "room", "value": "sup"}, {"project": "staging"})
        ).completion
        default_rooms = (
            await client.complete(template("livekit://rooms/{room}"), {"name": "room", "value": ""})
        ).completion
        with pytest.raises(MCPError) as other:
            await client.complete(project_rooms, {"name": "room", "value": ""}, {"project": "production"})
        with pytest.raises(MCPError) as unknown:
            await client.complete(project_rooms, {"name": "room", "value": ""}, {"project": "nowhere"})
    if mode == "legacy":  # 2026-07-28 has no initialize: its client is told no capabilities up front
        assert capabilities is not None
        assert capabilities.completions is not None
    assert projects.values == ["staging"]  # never the names it may not use
    assert rooms.values == ["support-call-1042"]
    assert rooms.total == 1
    assert not rooms.has_more
    assert "support-call-1042" in default_rooms.values  # the default project is staging
    assert "refused by policy (projects)" in str(other.value)
    assert "production" not in str(unknown.value)
    async with connected(server, transport, mode, WRITER_TOKEN) as everything:
        every = (await everything.complete(project_rooms, {"name": "project", "value": ""})).completion
        production = (
            await everything.complete(project_rooms, {"name": "room", "value": ""}, {"project": "production"})
        ).completion
    assert every.values == ["production", "staging"]
    assert production.values  # the refusal above was the token's, not an empty project
