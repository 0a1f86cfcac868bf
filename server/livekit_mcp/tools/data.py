"""The `data` toolset: send data messages to a room."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import AfterValidator, Field

from livekit_mcp.confirm import Plan, Planned, leaving
from livekit_mcp.errors import InvalidInput
from livekit_mcp.models import SHUTDOWN_TOPIC, SentData
from livekit_mcp.scope import Scope
from livekit_mcp.tools._args import Identity, RoomName, no_control_characters, utf8
from livekit_mcp.tools._base import SEND, names_text, participants_of_existing_room, reply
from livekit_mcp.tools._registry import Confirm, tool

RELIABLE_LIMIT = 15 * 1024
LOSSY_LIMIT = 1300


async def _send_plan(
    scope: Scope, room: str, data: str, topic: str, destination_identities: list[str] | None, reliable: bool
) -> Planned[None]:
    """Nobody leaves for a data message, but for the shutdown topic: the agents it reaches end their session."""
    payload = data.encode()
    limit = RELIABLE_LIMIT if reliable else LOSSY_LIMIT
    if len(payload) > limit:
        raise InvalidInput(
            "data", f"{len(payload):,} bytes; {'reliable' if reliable else 'lossy'} data is limited to {limit:,}"
        )
    sent = SentData(
        room=room,
        bytes=len(payload),
        topic=topic or None,
        destination_identities=destination_identities,
        reliable=reliable,
    )
    args: dict[str, object] = {"room": room, "data": data, "topic": topic, "reliable": reliable}
    args["destination_identities"] = destination_identities
    if topic != SHUTDOWN_TOPIC:
        return Planned(Plan("send_data", room, args, [], ""), None, sent)
    participants = await participants_of_existing_room(scope.livekit, room)
    # Named ones are asked whatever their kind; a message to everyone reaches the agents, which act on the topic.
    reached = [
        p for p in participants if (p.identity in destination_identities if destination_identities else p.is_agent)
    ]
    why = f"asked to end its session by a data message on topic {SHUTDOWN_TOPIC}"
    gone = [leaving(p, why) for p in reached]
    question = (
        f"This sends a data message on topic {SHUTDOWN_TOPIC} to {names_text(reached)} in room '{room}': an agent "
        "that follows the convention ends its session and leaves the room."
    )
    return Planned(Plan("send_data", room, args, sorted(p.sid for p in reached), question, gone), None, sent)


@tool("data", SEND, confirm=Confirm(_send_plan, always=False))
async def send_data(
    scope: Scope,
    room: RoomName,
    data: Annotated[
        str,
        Field(min_length=1, description="Text payload (UTF-8); 15 KiB reliable, 1,300 bytes lossy."),
        AfterValidator(utf8),
    ],
    planned: Planned[None],
    topic: Annotated[str, Field(max_length=256), AfterValidator(no_control_characters)] = "",
    destination_identities: Annotated[
        list[Identity] | None, Field(max_length=256, description="Only these participants; everyone when omitted.")
    ] = None,
    reliable: bool = True,
) -> Annotated[CallToolResult, SentData]:
    """Send a data message to a room or to some participants, optionally on a topic."""
    payload = data.encode()  # its size was checked with the plan, before anything reached LiveKit
    lk = scope.livekit
    await lk.get_room(room)  # checked first: for a room that is not live LiveKit answers only after ~3 s
    await lk.send_data(
        room, payload, reliable=reliable, topic=topic or None, destination_identities=destination_identities or ()
    )
    to = ", ".join(destination_identities) if destination_identities else "everyone"
    where = f" on topic {topic!r}" if topic else ""
    return reply(planned.preview, f"Sent {len(payload)} bytes to {to} in '{room}'{where}.")
