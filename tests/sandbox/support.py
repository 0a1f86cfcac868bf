"""Shared test helpers: the target server, raw replies, tokens, unique names."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import api

from livekit_mcp.sandbox import Sandbox

# Long enough that PyJWT does not warn; the dev default ("secret") has its own test.
KEY = "contract-key"
SECRET = "contract-secret-0123456789abcdef0123456789"


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str
    api_secret: str
    sandbox: Sandbox | None  # None: a real LiveKit server


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def token(target: Target, grants: api.VideoGrants | None = None, *, secret: str | None = None) -> str:
    return (
        api.AccessToken(target.api_key, secret or target.api_secret).with_grants(grants or api.VideoGrants()).to_jwt()
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def code_of(call: Awaitable[object]) -> tuple[str, str, int]:
    """The (code, message, status) of the ServerError that awaiting `call` raises."""
    with pytest.raises(api.TwirpError) as caught:
        await call
    return caught.value.code, caught.value.message, caught.value.status
