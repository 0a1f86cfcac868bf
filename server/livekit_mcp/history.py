"""Room history: LiveKit's webhooks received, kept in the store and told in plain words.

- `WebhookEndpoint`: `POST /webhooks/livekit`. Every request is verified as LiveKit signs it (a JWT in
  `Authorization`, signed with the API secret of the key in its `iss`, whose `sha256` claim is the body's hash),
  before its body is parsed; a body past `MAX_BODY` is refused unread. An event is kept once, however often LiveKit
  retries it. The answer is quick: 200 once stored, 503 when the store is down (so LiveKit retries).
- `from_webhook`: the few fields of a webhook event that history keeps (never metadata, attributes, stream keys or
  egress outputs, which can hold credentials).
- `told`: an event as a person would say it, disconnect reasons included.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from livekit_mcp.errors import StoreError, WebhookError
from livekit_mcp.models import AGENT_NAME_ATTRIBUTES
from livekit_mcp.store import Event, Store
from livekit_mcp.text import shown

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/livekit"
PRUNE_EVERY = 60.0
"""Seconds between two retention passes of the receiver."""
MAX_BODY = 1024 * 1024
"""Bytes of one webhook: LiveKit's largest events (an egress with many segments) are a few KB."""

Verify = Callable[[bytes, str], dict[str, Any]]
"""Checks a webhook's signature and body hash, then parses it (the seam's `verify_webhook`); raises WebhookError."""


# --- What history keeps ------------------------------------------------------------------------------

PARTICIPANT_EVENTS = {"participant_joined", "participant_left", "participant_connection_aborted"}
TRACK_EVENTS = {"track_published", "track_unpublished"}


def from_webhook(webhook: dict[str, Any]) -> Event | None:
    """The Event history keeps for a LiveKit webhook event, as the seam gives it (protobuf field names, enums by
    name, fields at their default left out); None for an event with no room to file it under."""
    kind = str(webhook.get("event", ""))
    room_info, egress, ingress = (webhook.get(k) or {} for k in ("room", "egress_info", "ingress_info"))
    room = room_info.get("name") or egress.get("room_name") or ingress.get("room_name")
    if not room or not webhook.get("id"):
        return None
    detail: dict[str, Any] = {}
    identity = ""
    if kind in PARTICIPANT_EVENTS or kind in TRACK_EVENTS:
        p = webhook.get("participant") or {}
        identity = str(p.get("identity", ""))
        detail["kind"] = p.get("kind", "STANDARD")
        if p.get("name") and p.get("name") != identity:
            detail["name"] = p["name"]
        if kind in PARTICIPANT_EVENTS and kind != "participant_joined":
            detail["reason"] = p.get("disconnect_reason", "UNKNOWN_REASON")
        attributes = p.get("attributes") or {}
        agent_name = next((attributes[a] for a in AGENT_NAME_ATTRIBUTES if attributes.get(a)), None)
        if detail["kind"] == "AGENT" and agent_name:  # which agent: for "why did the agent leave"
            detail["agent_name"] = agent_name
    if kind in TRACK_EVENTS:
        track = webhook.get("track") or {}
        detail |= {"track_sid": track.get("sid", ""), "source": track.get("source", "UNKNOWN")}
        detail["type"] = track.get("type", "AUDIO")
    if kind == "room_finished" and webhook.get("room_end_reason"):
        detail["reason"] = webhook["room_end_reason"]
    if kind.startswith("egress_"):
        detail |= {"egress_id": egress.get("egress_id", ""), "status": egress.get("status", "EGRESS_STARTING")}
        if egress.get("error"):
            detail["error"] = str(egress["error"])[:300]
    if kind.startswith("ingress_"):
        detail |= {"ingress_id": ingress.get("ingress_id", ""), "ingress_name": ingress.get("name", "")}
    if webhook.get("num_dropped"):
        detail["dropped_before"] = int(webhook["num_dropped"])  # LiveKit dropped this many events before this one
    return Event(
        id=str(webhook["id"]),
        at=float(webhook.get("created_at", 0)),
        room=str(room),
        event=kind,
        room_sid=str(room_info.get("sid") or egress.get("room_id") or ""),
        identity=identity,
        detail=detail,
        received=time.time(),
    )


# --- The index of live rooms and agents (find_agent without a room) ---------------------------------------


@dataclass(frozen=True)
class LiveIndex:
    """What the webhooks say is live: the rooms whose start the receiver saw (by sid), so it can vouch for who is
    in them, and the agents in those rooms. find_agent confirms each agent with LiveKit before answering."""

    rooms: dict[str, str]
    """Room sid → name, for the rooms whose whole life (since room_started, with no events dropped) is known."""
    agents: list[dict[str, str]]
    """room_sid, room, identity, agent_name of each agent that joined and has not left."""


async def update_index(store: Store, event: Event) -> None:
    """Keep the index current with `event` (called by the receiver for each new event)."""
    if event.detail.get("dropped_before"):
        # LiveKit dropped events before this one: no room's record can be vouched for; those that start from now on
        # will be again. find_agent then scans the rooms it no longer knows, as without history.
        await store.index_drop("rooms", list(await store.index("rooms")))
    key = f"{event.room_sid}|{event.identity}"
    if event.event == "room_started":
        await store.index_put("rooms", event.room_sid, event.room)
    elif event.event == "room_finished":
        await store.index_drop("rooms", [event.room_sid])
        gone = [k for k in await store.index("agents") if k.startswith(f"{event.room_sid}|")]
        await store.index_drop("agents", gone)
    elif event.event == "participant_joined" and event.detail.get("kind") == "AGENT":
        value = {"room": event.room, "identity": event.identity, "agent_name": event.detail.get("agent_name", "")}
        await store.index_put("agents", key, json.dumps(value))
    elif event.event in ("participant_left", "participant_connection_aborted") and event.detail.get("kind") == "AGENT":
        await store.index_drop("agents", [key])


async def live_index(store: Store) -> LiveIndex:
    rooms = await store.index("rooms")
    agents = []
    for key, value in (await store.index("agents")).items():
        sid = key.partition("|")[0]
        if sid in rooms:
            agents.append({"room_sid": sid, **json.loads(value)})
    return LiveIndex(rooms, agents)


# --- In plain words -----------------------------------------------------------------------------------

REASONS = {
    "UNKNOWN_REASON": "for a reason LiveKit did not give",
    "CLIENT_INITIATED": "by itself (its app disconnected or hung up)",
    "DUPLICATE_IDENTITY": "because someone else joined with the same identity",
    "SERVER_SHUTDOWN": "because the LiveKit server shut down",
    "PARTICIPANT_REMOVED": "because it was removed (RemoveParticipant)",
    "ROOM_DELETED": "because the room was deleted",
    "STATE_MISMATCH": "because its client and the server disagreed on state",
    "JOIN_FAILURE": "because joining failed",
    "MIGRATION": "while moving to another server",
    "SIGNAL_CLOSE": "because its signalling connection closed",
    "ROOM_CLOSED": "because the room closed",
    "USER_UNAVAILABLE": "because the phone user was unavailable",
    "USER_REJECTED": "because the phone user rejected the call",
    "SIP_TRUNK_FAILURE": "because the SIP trunk failed",
    "CONNECTION_TIMEOUT": "because its connection timed out",
    "MEDIA_FAILURE": "because its media failed",
    "AGENT_ERROR": "because the agent hit an error",
}
ROOM_END = {
    "ROOM_END_API_DELETE": "deleted (DeleteRoom)",
    "ROOM_END_IDLE_TIMEOUT": "closed after its empty or departure timeout",
    "ROOM_END_SERVER_SHUTDOWN": "closed because the server shut down",
    "ROOM_END_SUPERSEDED": "replaced by a newer session",
    "ROOM_END_OPEN_FAILED": "closed because it failed to open",
}


def _who(event: Event) -> str:
    kind = event.detail.get("kind", "")
    what = {"AGENT": "agent", "SIP": "phone caller", "EGRESS": "recorder", "INGRESS": "ingress"}.get(kind)
    name = event.detail.get("agent_name") or event.detail.get("name")
    label = f"'{shown(event.identity)}'" + (f" ({shown(name)})" if name else "")
    return f"{what} {label}" if what else label


def told(event: Event) -> str:
    """One line a person would say for `event`."""
    d = event.detail
    match event.event:
        case "room_started":
            return "the room started"
        case "room_finished":
            return f"the room ended: {ROOM_END.get(d.get('reason', ''), 'it closed')}"
        case "participant_joined":
            return f"{_who(event)} joined"
        case "participant_left":
            return f"{_who(event)} left {REASONS.get(d.get('reason', ''), 'for a reason LiveKit did not give')}"
        case "participant_connection_aborted":
            return f"{_who(event)} never finished connecting (the connection was aborted)"
        case "track_published":
            source = shown(d.get("source", "")).lower().replace("_", " ")
            return f"{_who(event)} published {source} ({shown(d.get('type', '')).lower()})"
        case "track_unpublished":
            return f"{_who(event)} stopped publishing {shown(d.get('source', '')).lower().replace('_', ' ')}"
        case "egress_started":
            return f"recording/egress {shown(d.get('egress_id'))} started"
        case "egress_updated":
            status = shown(d.get("status", "")).removeprefix("EGRESS_").lower()
            return f"recording/egress {shown(d.get('egress_id'))} is now {status}"
        case "egress_ended":
            status = shown(d.get("status", "")).removeprefix("EGRESS_").lower()
            error = f": {shown(d['error'])}" if d.get("error") else ""
            return f"recording/egress {shown(d.get('egress_id'))} ended ({status}{error})"
        case "ingress_started":
            return f"ingress '{shown(d.get('ingress_name'))}' ({shown(d.get('ingress_id'))}) started"
        case "ingress_ended":
            return f"ingress '{shown(d.get('ingress_name'))}' ({shown(d.get('ingress_id'))}) ended"
        case "changed":
            return str(d.get("said", "a change was made through livekit-mcp"))
    return shown(event.event).replace("_", " ")


# --- The receiver ---------------------------------------------------------------------------------------


class WebhookEndpoint:
    """`POST /webhooks/livekit`: verify, parse, keep once, answer."""

    def __init__(self, store: Store, verify: Verify) -> None:
        self._store = store
        self._verify = verify
        self._pruned = 0.0
        self._added = 0

    async def receive(self, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return _answer(*_too_big())
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:  # read no further than that: `take` refuses it
                break
        return _answer(*await self.take(body, request.headers.get("authorization", "")))

    async def take(self, body: bytes, authorization: str) -> tuple[int, dict[str, Any]]:
        """Verify, parse and keep one webhook; the HTTP status and body to answer with. The in-process sandbox
        (`--sandbox`, the demo) delivers here directly, signed all the same."""
        if len(body) > MAX_BODY:
            return _too_big()
        if not authorization:
            return _refused(401, "no Authorization header: LiveKit signs every webhook")
        try:
            webhook = self._verify(body, authorization.removeprefix("Bearer ").strip())
        except WebhookError as exc:
            status = 400 if "not a LiveKit webhook body" in str(exc) else 401
            return _refused(status, str(exc))
        event = from_webhook(webhook)
        if event is None:
            return 200, {"kept": False, "why": "no room in this event"}
        try:
            new = await self._store.add(event)
            if new:
                await update_index(self._store, event)
            self._added += new
            # At most once a minute, or sooner when this many events could push the store past max_events.
            if time.monotonic() - self._pruned > PRUNE_EVERY or self._added * 10 >= self._store.retention.max_events:
                self._pruned, self._added = time.monotonic(), 0
                await self._store.prune()
        except StoreError as exc:
            log.warning("webhook %s not kept: %s", event.id, exc)
            return _refused(503, "the history store is unavailable; LiveKit will retry")
        return 200, {"kept": new, "duplicate": not new}

    async def status_of(self, body: bytes, authorization: str) -> int:
        """`take`, as a sandbox webhook sink: the status alone."""
        return (await self.take(body, authorization))[0]


def _answer(status: int, content: dict[str, Any]) -> JSONResponse:
    return JSONResponse(content, status_code=status)


def _too_big() -> tuple[int, dict[str, Any]]:
    return _refused(413, f"a webhook is at most {MAX_BODY} bytes")


def _refused(status: int, why: str) -> tuple[int, dict[str, Any]]:
    if status != 503:
        log.info("webhook refused (%d): %s", status, why)
    return status, {"error": why}
