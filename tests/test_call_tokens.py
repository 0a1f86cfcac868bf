"""The tokens LiveKit calls are signed with are reused while fresh (issue 13, item 4: the CPU of a scan), one per
room as livekit-server requires, and the real server accepts them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import jwt
import pytest
from aiohttp import web
from pydantic import SecretStr

from livekit_mcp import livekit_backend
from livekit_mcp.livekit_backend import LiveKit
from tests.conftest import SECRET, LiveKitTarget, impostor_livekit

pytestmark = pytest.mark.anyio


@pytest.fixture
async def seen() -> AsyncIterator[tuple[str, list[str]]]:
    """A LiveKit stand-in that answers every call with an empty message and keeps the tokens it was sent."""
    tokens: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        tokens.append(request.headers["Authorization"].removeprefix("Bearer "))
        return web.Response(body=b"", content_type="application/protobuf")

    async with impostor_livekit(answer) as url:
        yield url, tokens


async def test_a_token_is_reused_for_the_same_grants_and_not_for_another_room(
    seen: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, tokens = seen
    async with LiveKit(url, "key", SecretStr(SECRET), timeout=5, concurrency=4) as lk:
        await lk.list_participants("room-a")
        await lk.list_participants("room-a")
        await lk.list_participants("room-b")
        assert tokens[0] == tokens[1]
        assert tokens[2] != tokens[0]
        claims = [jwt.decode(t, SECRET, algorithms=["HS256"]) for t in tokens]
        assert [c["video"]["room"] for c in claims] == ["room-a", "room-a", "room-b"]
        assert all(c["video"]["roomAdmin"] for c in claims)
        assert claims[0]["exp"] - claims[0]["nbf"] == livekit_backend._Tokens.TTL
        # Past its time of use a token is signed anew.
        monkeypatch.setattr(livekit_backend._Tokens, "REUSE", 0)
        await anyio.sleep(1.1)  # a token signed in the same second would be the same bytes
        await lk.list_participants("room-a")
        assert tokens[3] != tokens[0]


async def test_the_real_server_accepts_a_reused_token(real_target: LiveKitTarget) -> None:
    async with LiveKit(
        real_target.url, real_target.api_key, SecretStr(real_target.api_secret), timeout=10, concurrency=2
    ) as lk:
        room = f"tokens-{uuid.uuid4().hex[:6]}"
        await lk.create_room(room, empty_timeout=60, departure_timeout=20, max_participants=0, metadata="")
        # The same room-admin token twice, then the room-list token twice: a refusal would raise
        # AuthenticationFailed or PermissionDenied.
        for _ in range(2):
            assert (await lk.get_room(room)).name == room
            assert await lk.list_participants(room) == []
        await lk.delete_room(room)
