"""Argument types of the tools.

LiveKit accepts any string and simply matches nothing, so the checks a name needs are ours; they run
before anything is sent to LiveKit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

# --- Argument types: LiveKit accepts any string and simply matches nothing, so the checks are ours --------


def plain_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return no_control_characters(value)


def utf8(value: str) -> str:
    """JSON can carry lone surrogates ("\\ud800"); protobuf, and so LiveKit, cannot."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it has a lone surrogate)") from None
    return value


def no_control_characters(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return utf8(value)


def optional_name(value: str) -> str:
    return plain_name(value) if value else value


def max_bytes(limit: int, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(utf8(value).encode()) > limit:
            raise ValueError(f"{what} is limited to {limit:,} bytes (UTF-8)")
        return value

    return check


def ids(prefix: str, what: str) -> AfterValidator:
    """An id LiveKit made (`<prefix>` then letters or digits), checked before anything is sent."""
    shape = re.compile(re.escape(prefix) + "[A-Za-z0-9]{1,60}")

    def check(value: str) -> str:
        if not shape.fullmatch(value):
            raise ValueError(f"must be {what} id: '{prefix}' then letters or digits")
        return value

    return AfterValidator(check)


def attributes_size(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:  # the validator sees the optional argument whole: an explicit null comes here too
        return value
    if sum(len(utf8(k).encode()) + len(utf8(v).encode()) for k, v in value.items()) > 64 * 1024:
        raise ValueError("attributes are limited to 64 KiB in all")
    if any(not k.strip() for k in value):
        raise ValueError("attribute names must not be empty")
    return value


# No description for a room or an identity: the argument's name says it, and tools/list carries it ~40 times.
RoomName = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(plain_name)]
Identity = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(plain_name)]
AgentName = Annotated[
    str, Field(min_length=1, max_length=256, description="Agent name (lk.agent_name)."), AfterValidator(plain_name)
]
DispatchId = Annotated[
    str, Field(min_length=1, max_length=64, description="AD_… id from list_dispatches."), AfterValidator(plain_name)
]
TrackSid = Annotated[
    str, Field(min_length=1, max_length=64, description="TR_… sid from get_participant."), AfterValidator(plain_name)
]
Metadata = Annotated[str, AfterValidator(max_bytes(512 * 1024, "metadata"))]
# Optional strings are typed `str` with "" for "not given": the SDK would JSON-decode any other string-typed
# argument, turning metadata like '{"a": 1}' into an object.
Cursor = Annotated[str, Field(max_length=1024, description="next_cursor from the previous page.")]
AnyRoom = Annotated[
    str,
    Field(max_length=256, description="Only this room; all when omitted."),
    AfterValidator(optional_name),
]
AnyAgentName = Annotated[
    str, Field(max_length=256, description="Only agents of this name (lk.agent_name)."), AfterValidator(optional_name)
]
AnyIdentity = Annotated[
    str, Field(max_length=256, description="Only the participant with this identity."), AfterValidator(optional_name)
]
# No description: what it is, the answer that gives it says (and the server's instructions); tools/list is read
# into the model's context for every tool that takes it.
ConfirmToken = Annotated[str, Field(max_length=200)]
Kind = Literal["STANDARD", "AGENT", "SIP", "INGRESS", "EGRESS", "CONNECTOR", "BRIDGE"]

_UNITS = {"m": 60, "h": 3600, "d": 86_400}


def since_seconds(value: str) -> str:
    """`30m`, `6h`, `7d` (back from now) or an ISO 8601 time; "" for the default. Checked here, read by `since_time`."""
    if value:
        since_time(value)
    return value


def since_time(value: str, default_hours: float = 24) -> float:
    """The epoch seconds `value` names (see `since_seconds`)."""
    if not value:
        return time.time() - default_hours * 3600
    number, unit = value[:-1], value[-1:].lower()
    if unit in _UNITS and number.replace(".", "", 1).isdigit():
        return time.time() - float(number) * _UNITS[unit]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "must be a duration back from now (30m, 6h, 7d) or an ISO 8601 time (2026-12-01T14:00Z)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


Since = Annotated[
    str,
    Field(max_length=40, description="How far back: 30m, 6h, 7d, or an ISO 8601 time (default 24h)."),
    AfterValidator(since_seconds),
]
