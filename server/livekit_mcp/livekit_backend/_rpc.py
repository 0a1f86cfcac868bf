"""PerformRpc: a method of a participant, called through LiveKit."""

from __future__ import annotations

import re

from livekit_mcp.models import RpcAnswer, RpcFailure

from ._adapter import Adapter, Send, change
from ._imports import api
from ._private import twirp_call

# PerformRpc (docs/livekit-behavior.md): an RPC error reaches us as a Twirp error whose message is Go's
# `RpcError <code>: <message>[: <data>]`, behind the "twirp error unknown: " of livekit-server's routing.
_RPC_ERROR = re.compile(r"RpcError (\d+): (.*)\Z", re.DOTALL)
# LiveKit's own RPC errors (livekit/protocol utils/data_channel_rpc.go, as livekit-server v1.13.5 sends them):
# their message is known, so whatever follows it is the data.
RPC_MESSAGES = {
    1400: "Method not supported at destination",
    1401: "Recipient not found",
    1402: "Request payload too large",
    1403: "RPC not supported by server",
    1404: "Unsupported RPC version",
    1500: "Application error in method handler",
    1501: "Connection timeout",
    1502: "Response timeout",
    1503: "Recipient disconnected",
    1504: "Response payload too large",
    1505: "Failed to send",
}
RPC_MARGIN = 9.0
"""Seconds our PerformRpc call waits beyond the participant's response timeout: livekit-server 1.13.11 waits the
response timeout + 7 s before it answers deadline_exceeded (pkg/service/roomservice.go:411-429, protocol
utils/data_channel_rpc.go:30), and 2 s more let its answer reach us before our clock runs out."""
OLD_RPC_END = 15.0
"""Seconds by which livekit-server up to 1.13.10 ends every PerformRpc, whatever the response timeout: psrpc's
attempts of 3, 5 and 7 s (docs/livekit-behavior.md, observed on 1.13.5)."""


def rpc_limit(response_timeout: float, timeout: float) -> float:
    """Our limit for one PerformRpc: past the end of LiveKit's own wait on every release (see RPC_MARGIN and
    OLD_RPC_END), and never under the call timeout. A call cut short here would leave the handler's fate unknown."""
    return max(timeout, response_timeout + RPC_MARGIN, OLD_RPC_END + 2)


def _rpc_failure(exc: api.ServerError) -> RpcFailure | None:
    """The RPC error a PerformRpc failure carries, or None when it is not one (LiveKit's own routing or auth)."""
    found = _RPC_ERROR.search(exc.message)
    if found is not None:
        code, rest = int(found.group(1)), found.group(2)
        known = RPC_MESSAGES.get(code)
        if known is not None and rest.startswith(known):
            message, data = known, rest[len(known) :].removeprefix(": ")
        else:
            # The participant's own error: Go joins message and data with ": ", so the first one splits them.
            message, _, data = rest.partition(": ")
        return RpcFailure(code=code, message=message, data=data or None)
    if exc.code == "deadline_exceeded":
        # livekit-server gave up: up to 1.13.10 after sending the request up to 3 times (3, 5 and 7 s), on 1.13.11
        # after the response timeout + 7 s.
        return RpcFailure(message="request timed out")
    return None


class Rpcs(Adapter):
    @change("PerformRpc", verified_by="")  # the participant's handler may have run: nothing shows it
    async def perform_rpc(
        self, send: Send, room: str, identity: str, method: str, payload: str, *, response_timeout: float
    ) -> RpcAnswer:
        """Calls `method` of a participant (livekit-api has no wrapper for PerformRpc: see `_private.twirp_call`).

        The participant's answer or its RPC error is returned; LiveKit's failures are raised as the others are."""
        request = api.PerformRpcRequest(
            room=room,
            destination_identity=identity,
            method=method,
            payload=payload,
            response_timeout_ms=round(response_timeout * 1000),
        )
        rooms = self.lk.room
        grants = api.VideoGrants(room_admin=True, room=room)

        async def perform() -> RpcAnswer:
            try:
                response = await twirp_call(rooms, "RoomService", "PerformRpc", request, grants, api.PerformRpcResponse)
            except api.ServerError as exc:
                failure = _rpc_failure(exc)
                if failure is None:
                    raise
                return RpcAnswer(error=failure)
            return RpcAnswer(payload=response.payload)

        limit = rpc_limit(response_timeout, self.path.timeout)
        return await send(perform, room=room, identity=identity, limit=limit)
