"""Every use of a private attribute of `livekit-api` or aiohttp, each with why no public way does it.

tests/test_livekit_private.py fails when an installed version no longer has them as used here: read it before
upgrading either library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from ._imports import aiohttp, api

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from livekit.api._service import Service

M = TypeVar("M", bound="Message")


class AuthHeader(Protocol):
    """What `Service._auth_header` is: the headers a call is signed with."""

    def __call__(self, grants: api.VideoGrants | None, sip: api.SIPGrants | None = None) -> dict[str, str]: ...


def sign_with(service: Service, header: AuthHeader) -> None:
    """Makes `service` sign its calls with `header` instead of its own `Service._auth_header`.

    livekit-api signs a new JWT (JSON, base64, HMAC) for every call and offers no hook for it; its one public way,
    `LiveKitAPI.with_token`, sends one pre-signed token for every call, whereas livekit-server wants the `room`
    grant of a room-admin call to be the room asked about. Replacing the method on the instance is the only way
    to reuse tokens (see `_tokens.CallTokens`)."""
    service._auth_header = header  # type: ignore[method-assign]


async def twirp_call(
    service: Service, name: str, method: str, request: Message, grants: api.VideoGrants, answer: type[M]
) -> M:
    """Sends `method` of the Twirp service `name` through `service`'s own client, signed as its calls are.

    livekit-api 1.2.2 has no wrapper for RoomService.PerformRpc, yet its Twirp client (`Service._client`) is what
    every other call goes through: the same session, URL handling, failover setting and error type
    (`ServerError`). Signing through `Service._auth_header` keeps the token reuse of `sign_with`."""
    return await service._client.request(name, method, request, service._auth_header(grants), answer)


def read_with(reader: Callable[[aiohttp.ClientResponse], Awaitable[bytes]]) -> type[aiohttp.ClientResponse]:
    """aiohttp's response class, its body read by `reader` (once; aiohttp's `read` then returns it).

    livekit-api reads every answer whole with `ClientResponse.read()`; aiohttp has no public limit on a body's size,
    and its `read()` keeps the body in `ClientResponse._body` and returns it when it is already there. Filling
    `_body` first is the only way to bound an answer without Content-Length (chunked, or until the connection
    closes). Made at the first call, not at import (see `_imports`)."""

    class Response(aiohttp.ClientResponse):
        async def read(self) -> bytes:
            if self._body is None:
                self._body = await reader(self)
            return await super().read()

    return Response
