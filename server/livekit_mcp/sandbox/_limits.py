"""LiveKit's size limits (the server's defaults) and the invalid_argument errors they raise."""

from __future__ import annotations

from collections.abc import Mapping

from livekit.protocol import room as proto_room

from ._twirp import TwirpError

MAX_NAME = 256
MAX_METADATA = 512 * 1024
MAX_ATTRIBUTES = 64 * 1024


def too_big(what: str, limit: int) -> TwirpError:
    # twirp.InvalidArgumentError(argument, validationMsg), as livekit's RoomService builds it.
    return TwirpError("invalid_argument", f"{what} {limit}", {"argument": what})


def check_metadata(metadata: str) -> None:
    if len(metadata.encode()) > MAX_METADATA:
        raise too_big("metadata size exceeds limits", MAX_METADATA)


def check_attributes(attributes: Mapping[str, str]) -> None:
    if sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items()) > MAX_ATTRIBUTES:
        raise too_big("attribute size exceeds limits", MAX_ATTRIBUTES)


def check_participant_update(req: proto_room.UpdateParticipantRequest) -> None:
    """UpdateParticipant's size limits, which the real server checks before the grant."""
    if len(req.name) > MAX_NAME:
        raise too_big("name length exceeds limits", MAX_NAME)
    check_metadata(req.metadata)
    check_attributes(req.attributes)


def check_room_metadata(req: proto_room.UpdateRoomMetadataRequest) -> None:
    """UpdateRoomMetadata's size limit, which the real server checks before the grant."""
    check_metadata(req.metadata)
