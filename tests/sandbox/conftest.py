"""Fixtures for the sandbox's contract tests.

By default every test gets a fresh, empty sandbox on a loopback port. With LIVEKIT_CONTRACT_URL,
LIVEKIT_CONTRACT_API_KEY and LIVEKIT_CONTRACT_API_SECRET set, the same tests run against that LiveKit
server instead; the steps only the sandbox can do (participants joining, faults) go through the `admin`
fixture, which skips the test there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import api

from livekit_mcp.sandbox import Sandbox, SandboxAdmin

from .support import KEY, SECRET, Reply, Target, token


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # LiveKit's dev secret ("secret", also usable for LIVEKIT_CONTRACT_API_SECRET) is shorter than PyJWT
    # recommends; livekit-api warns when it signs with it, and filterwarnings=error would fail the test.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    url = os.environ.get("LIVEKIT_CONTRACT_URL")
    if url:
        yield Target(url, os.environ["LIVEKIT_CONTRACT_API_KEY"], os.environ["LIVEKIT_CONTRACT_API_SECRET"], None)
        return
    async with Sandbox(keys={KEY: SECRET}, seed=False) as sandbox:
        yield Target(sandbox.url, KEY, SECRET, sandbox)


@pytest.fixture
def sandbox(target: Target) -> Sandbox:
    """The in-process sandbox; skips the test against a real server."""
    if target.sandbox is None:
        pytest.skip("needs the sandbox (in-process state)")
    return target.sandbox


@pytest.fixture
async def admin(target: Target) -> AsyncIterator[SandboxAdmin]:
    """The sandbox admin API (participants joining, faults); skips the test against a real server."""
    if target.sandbox is None:
        pytest.skip("needs the sandbox admin API")
    async with SandboxAdmin(target.url, target.api_key, target.api_secret) as client:
        yield client


@pytest.fixture
async def lk(target: Target) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(target.url, target.api_key, target.api_secret) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def room(lk: api.LiveKitAPI) -> AsyncIterator[str]:
    """A new room with a unique name, deleted afterwards."""
    name = f"contract-{uuid.uuid4().hex[:10]}"
    await lk.room.create_room(api.CreateRoomRequest(name=name))
    yield name
    with contextlib.suppress(api.TwirpError):  # the test may have deleted it
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))


Twirp = Callable[..., Awaitable[Reply]]


@pytest.fixture
def twirp(target: Target, http: aiohttp.ClientSession) -> Twirp:
    """POST to a Twirp method as curl would: JSON body by default, a token with `grants` unless `headers`."""

    async def call(
        method: str,
        body: dict[str, Any] | bytes | None = None,
        *,
        grants: api.VideoGrants | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        http_method: str = "POST",
    ) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        # aiohttp wants big bodies as a stream (it warns about big raw bytes).
        payload = io.BytesIO(data) if len(data) > 1024 * 1024 else data
        if headers is None:
            headers = {"Authorization": f"Bearer {token(target, grants)}"}
        headers = {"Content-Type": content_type, **headers}
        url = f"{target.url}/twirp/livekit.{method}"
        async with http.request(http_method, url, data=payload, headers=headers) as resp:
            return Reply(resp.status, resp.headers.get("Content-Type", ""), await resp.read())

    return call
