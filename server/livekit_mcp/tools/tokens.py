"""The `tokens` toolset (off by default): short-lived join tokens for one room, never with admin grants.

The token is in the tool's answer and nowhere else: it is made inside the LiveKit seam and handed straight back,
never passed to a log call; the audit log records the call's arguments (who, which room, for how long), which
do not include it.
"""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.errors import InvalidInput
from livekit_mcp.models import JoinToken
from livekit_mcp.scope import Scope
from livekit_mcp.tools._args import Identity, RoomName, max_bytes, optional_name
from livekit_mcp.tools._base import SEND, duration_text, reply
from livekit_mcp.tools._registry import tool

MAX_TTL = 900


@tool("tokens", SEND)
async def create_join_token(
    scope: Scope,
    room: RoomName,
    identity: Identity,
    ttl_seconds: Annotated[int, Field(ge=60, le=MAX_TTL, description="Seconds the token is valid, 60-900.")] = 600,
    can_publish: bool = False,
    can_subscribe: bool = True,
    can_publish_data: bool = False,
    name: Annotated[
        str, Field(max_length=256), AfterValidator(optional_name), AfterValidator(max_bytes(256, "name"))
    ] = "",
) -> Annotated[CallToolResult, JoinToken]:
    """Make a short-lived token to join one room (listen-only by default); never admin or recorder rights."""
    lk = scope.livekit
    # LiveKit lets one connection hold an identity: joining with a present one disconnects that participant.
    present = {p.identity for p in await lk.list_participants(room)}
    if identity in present:
        raise InvalidInput(
            "identity",
            f"'{identity}' is in room '{room}' now, and joining with it would disconnect them; choose another identity",
        )
    made = lk.join_token(
        room,
        identity,
        ttl_seconds=ttl_seconds,
        name=name,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
    )
    rights = ", ".join(
        f"{k.removeprefix('can_').replace('_', ' ')} {'yes' if v else 'no'}" for k, v in made.grants.items()
    )
    empty = "" if present else f" Room '{room}' is empty or does not exist yet; joining creates it."
    return reply(
        made,
        f"Join token for '{identity}' in room '{room}', valid {duration_text(ttl_seconds)} (until {made.expires_at}); "
        f"{rights}. Connect to {made.url} with it. It is shown only here: not logged, not kept.{empty}\n{made.token}",
    )
