"""The `data` toolset: send data messages to a room."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.errors import (
    InvalidInput,
)
from livekit_mcp.models import (
    SentData,
)
from livekit_mcp.tools._args import (
    Identity,
    RoomName,
    no_control_characters,
    utf8,
)
from livekit_mcp.tools._base import (
    SEND,
    livekit_of,
    reply,
    tool,
)

# --- data --------------------------------------------------------------------------------------------

RELIABLE_LIMIT = 15 * 1024
LOSSY_LIMIT = 1300


@tool("data", SEND)
async def send_data(
    ctx: Context,
    room: RoomName,
    data: Annotated[
        str,
        Field(min_length=1, description="Text payload (UTF-8); 15 KiB reliable, 1,300 bytes lossy."),
        AfterValidator(utf8),
    ],
    topic: Annotated[str, Field(max_length=256), AfterValidator(no_control_characters)] = "",
    destination_identities: Annotated[
        list[Identity] | None, Field(max_length=256, description="Only these participants; everyone when omitted.")
    ] = None,
    reliable: bool = True,
) -> Annotated[CallToolResult, SentData]:
    """Send a data message to a room or to some participants, optionally on a topic."""
    payload = data.encode()
    limit = RELIABLE_LIMIT if reliable else LOSSY_LIMIT
    if len(payload) > limit:
        raise InvalidInput(
            "data", f"{len(payload):,} bytes; {'reliable' if reliable else 'lossy'} data is limited to {limit:,}"
        )
    lk = livekit_of(ctx)
    await lk.get_room(room)  # checked first: for a room that is not live LiveKit answers only after ~3 s
    await lk.send_data(
        room, payload, reliable=reliable, topic=topic or None, destination_identities=destination_identities or ()
    )
    result = SentData(
        room=room,
        bytes=len(payload),
        topic=topic or None,
        destination_identities=destination_identities,
        reliable=reliable,
    )
    to = ", ".join(destination_identities) if destination_identities else "everyone"
    return reply(result, f"Sent {len(payload)} bytes to {to} in '{room}'{f' on topic {topic!r}' if topic else ''}.")
