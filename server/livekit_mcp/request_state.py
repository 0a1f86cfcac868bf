"""The request state of MCP 2026-07-28: sealed so that every replica opens it, bound to the caller, good for one round.

From protocol 2026-07-28 a question ("delete room 'support'? type its name") is not a request of the server's: the
call answers `input_required` with a `requestState` that the client echoes, with the person's answer, on its next
round, which a load balancer may send to another replica. The SDK accepts an answer only to a question that state
records as put, so the state is the proof that a person was asked; the client holds it, so it is
attacker-controlled. The SDK's boundary (`mcp.server.request_state`) seals it with AES-256-GCM and binds it to the
method, the tool and its arguments, an audience, a principal and an expiry, under a key made per process unless it
is given one: a second round on another replica would be refused. Here:

- `KeyRing`: the SDK's codec under keys made from LIVEKIT_MCP_CONFIRM_KEY and the previous keys still accepted (the
  first seals, every one opens: a key is rotated without refusing what the old one sealed), with an expiry of our
  own by the server's clock (LIVEKIT_MCP_CONFIRM_TTL), which tests move instead of waiting;
- `caller_principal`: the principal it is bound to is the caller of service.py, the token's principal and the
  person an `X-On-Behalf-Of` names, so a bot's state for one person does not answer for another;
- `audience`: this deployment, its public URL when it has one, so another deployment sharing the key cannot use it;
- `OnceOnly`: a state answers one round: used again (a replay), on this replica or another sharing the store, it
  is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import (
    AESGCMRequestStateCodec,
    InvalidRequestState,
    RequestStateBoundary,
    RequestStateSecurity,
)
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.methods import INPUT_REQUIRED_METHODS

from livekit_mcp.service import caller_of
from livekit_mcp.store import Store

log = logging.getLogger(__name__)

STATE_KEY_LABEL = b"livekit-mcp/request-state/v1"
"""What a confirm key is HMAC'd with to make a request-state key: the same on every replica, never the key itself."""
_EXPIRY = struct.Struct(">d")
USED_MARGIN = 60.0
"""Seconds a used state is remembered past its lifetime (past it, its expiry refuses it anyway)."""
REFUSED = "Invalid or expired requestState"
"""The SDK boundary's one answer to a state it refuses (the reason goes to the log only): a replay gets the same."""


def state_keys(confirm_keys: Sequence[bytes]) -> list[bytes]:
    """The request-state keys made from the confirm keys, in their order (the first seals)."""
    return [hmac.new(key, STATE_KEY_LABEL, hashlib.sha256).digest() for key in confirm_keys]


class KeyRing:
    """The SDK's AES-256-GCM codec (`RequestStateCodec`) under the confirm keys' ring, with an expiry by `clock`
    inside the seal."""

    def __init__(self, confirm_keys: Sequence[bytes], ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._codec = AESGCMRequestStateCodec(state_keys(confirm_keys))
        self.ttl = ttl
        self._clock = clock

    def seal(self, payload: bytes) -> str:
        return self._codec.seal(_EXPIRY.pack(self._clock() + self.ttl) + payload)

    def unseal(self, token: str) -> bytes:
        opened = self._codec.unseal(token)  # InvalidRequestState: altered, malformed, or a key not in the ring
        if len(opened) < _EXPIRY.size:
            raise InvalidRequestState("malformed")
        (expiry,) = _EXPIRY.unpack_from(opened)
        if not self._clock() < expiry:  # stated positively: a NaN expiry refuses
            raise InvalidRequestState("expired")
        return opened[_EXPIRY.size :]


def caller_principal(ctx: ServerRequestContext[Any, Any]) -> str:
    """Whom a state is bound to: the caller as service.py sees it (the token's principal, or the local user on
    stdio, and the person a bot acts for)."""
    caller = caller_of(ctx.request, getattr(ctx.request, "headers", None), ctx.meta)
    return json.dumps([caller.principal, caller.on_behalf_of])


def request_state_policy(ring: KeyRing, audience: str) -> RequestStateSecurity:
    """The SDK's request-state policy: our ring, the caller as principal, this deployment as audience. The SDK's
    own expiry (by the wall clock) is kept a little longer than ours, which is the one that refuses."""
    return RequestStateSecurity(
        codec=ring, ttl=ring.ttl + USED_MARGIN, bind_principal=caller_principal, audience=audience
    )


def audience_of(public_url: str | None) -> str:
    """This deployment: the server's name, and its public URL when it has one (the same on all its replicas)."""
    return f"livekit-mcp {public_url}" if public_url else "livekit-mcp"


class OnceOnly:
    """SDK middleware, just outside the SDK's boundary: a sealed state that opens is marked used before its round
    runs; one already used is refused. Given back when the boundary refuses it (another principal, other
    arguments), so a stolen copy sent first cannot spend its owner's."""

    def __init__(self, ring: KeyRing, used: Store) -> None:
        self._ring = ring
        self._used = used

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        state = ctx.params.get("requestState") if ctx.params is not None else None
        if ctx.method not in INPUT_REQUIRED_METHODS or not isinstance(state, str):
            return await call_next(ctx)
        try:
            self._ring.unseal(state)
        except InvalidRequestState:
            return await call_next(ctx)  # the boundary refuses it, and logs why
        key = "request-state:" + hashlib.sha256(state.encode()).hexdigest()
        if not await self._used.redeem_once(key, self._ring.ttl + USED_MARGIN):
            log.warning("requestState rejected on %s: already used (a replay)", ctx.method)
            raise MCPError(code=INVALID_PARAMS, message=REFUSED, data={"reason": "invalid_request_state"})
        try:
            return await call_next(ctx)
        except MCPError as exc:
            if exc.message == REFUSED:
                await self._used.unredeem(key)
            raise


def protect(server: MCPServer[Any], ring: KeyRing, used: Store) -> None:
    """Put `OnceOnly` just outside the SDK's request-state boundary of `server` (which sees the sealed form)."""
    at = next(i for i, m in enumerate(server.middleware) if isinstance(m, RequestStateBoundary))
    server.middleware.insert(at, OnceOnly(ring, used))
