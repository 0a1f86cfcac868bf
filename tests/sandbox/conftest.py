"""Fixtures for the contract tests: each test runs against the sandbox AND the real livekit-server.

`target` is parametrized over both backends: "sandbox" (a fresh, empty sandbox on a loopback port) and
"real" (the session's `livekit-server --dev`, realkit/livekit_server.py). Tests share rooms with nobody:
they use unique room names. Participants and agents join through `crowd`, the same steps on both
backends. Tests of what only the sandbox has (its admin API, faults, its state) are marked
`@sandbox_only` and run against the sandbox alone.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import api

from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from realkit.agents import RealAgentWorker
from realkit.livekit_server import RealLiveKitServer
from realkit.participants import RealPeople

from .support import KEY, SECRET, Crowd, RealCrowd, Reply, SandboxCrowd, Target, token

BACKENDS = ["sandbox", "real"]
# Marks a test (or, as `pytestmark`, a module) of a sandbox-only feature: it runs against the sandbox
# alone. A fixture rather than a custom mark, so that no marker registration outside this directory is needed.
sandbox_only = pytest.mark.usefixtures("sandbox_only")
# Marks a test of what only the real server shows here (a service the sandbox plays as connected, absent).
real_only = pytest.mark.usefixtures("real_only")


@pytest.fixture(name="sandbox_only")
def _sandbox_only() -> None:
    """Requested through @sandbox_only: the test's `target` is the sandbox only."""


@pytest.fixture(name="real_only")
def _real_only() -> None:
    """Requested through @real_only: the test's `target` is the real server only."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        backends = BACKENDS
        if "sandbox_only" in metafunc.fixturenames:
            backends = BACKENDS[:1]
        elif "real_only" in metafunc.fixturenames:
            backends = BACKENDS[1:]
        metafunc.parametrize("target", backends, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # LiveKit's dev secret ("secret") is shorter than PyJWT recommends; livekit-api warns when it signs
    # with it, and filterwarnings=error would fail the test.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "real":
        server: RealLiveKitServer = request.getfixturevalue("real_livekit")
        server.check_alive()
        return Target(server.url, server.api_key, server.api_secret, None)
    sandbox: Sandbox = request.getfixturevalue("_sandbox")
    return Target(sandbox.url, KEY, SECRET, sandbox)


@pytest.fixture
async def _sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(keys={KEY: SECRET}, seed=False) as sandbox:
        yield sandbox


def _only_on_the_sandbox(target: Target, fixture: str) -> Sandbox:
    if target.sandbox is None:
        pytest.fail(f"`{fixture}` is the sandbox's own: mark the test @sandbox_only or use `crowd`", pytrace=False)
    return target.sandbox


@pytest.fixture
def sandbox(target: Target) -> Sandbox:
    """The in-process sandbox (its state), for @sandbox_only tests."""
    return _only_on_the_sandbox(target, "sandbox")


@pytest.fixture
async def admin(target: Target) -> AsyncIterator[SandboxAdmin]:
    """The sandbox admin API (participants, faults, state), for @sandbox_only tests."""
    _only_on_the_sandbox(target, "admin")
    async with SandboxAdmin(target.url, target.api_key, target.api_secret) as client:
        yield client


@pytest.fixture
def crowd(request: pytest.FixtureRequest, target: Target, lk: api.LiveKitAPI) -> Crowd:
    """Participants and agents joining rooms, on either backend (the same steps and waits)."""
    if target.sandbox is not None:
        return SandboxCrowd(lk, target.sandbox)
    people: RealPeople = request.getfixturevalue("real_people")
    workers: Callable[[str], RealAgentWorker] = request.getfixturevalue("agent_worker")
    return RealCrowd(lk, people, workers)


@pytest.fixture
async def lk(target: Target) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(target.url, target.api_key, target.api_secret) as client:
        yield client


# For the tests that send bodies of many MiB. A connection whose body the server answered before reading it
# all can outlive the client session (its transport waits to send bytes nobody reads): an artefact of the
# test client, not of the server under test. `http` collects it at the end of such a test, so that its
# ResourceWarning is ignored there and not raised in whichever later test the garbage collector runs.
big_body = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
async def http(request: pytest.FixtureRequest) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
    if any(mark.args == big_body.args for mark in request.node.iter_markers("filterwarnings")):
        gc.collect()


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
