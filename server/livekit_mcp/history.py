"""Room history: LiveKit's webhooks received, kept in the store and told in plain words.

- `WebhookEndpoint`: `POST /webhooks/livekit`. Every request is verified as LiveKit signs it (a JWT in
  `Authorization`, signed with the API secret of the key in its `iss`, whose `sha256` claim is the body's hash):
  the token before the body is read, the hash before it is parsed. An event is kept once, however often LiveKit
  retries it, in one write with the index changes it makes. The answer is quick: 200 once stored, 503 when the
  store is down (so LiveKit retries). livekit-server's notifier takes any 4xx as delivered (no retry, not counted
  in `numDropped`), so a signed webhook is never answered 4xx: what cannot be taken (past `MAX_BODY`, or a body
  this server cannot read) is a gap, kept as such: the index stops vouching for any room, and room_history says
  events may be missing from then on.
- `from_webhook`: the few fields of a webhook event that history keeps (never metadata, attributes, stream keys or
  egress outputs, which can hold credentials).
- `told`: an event as a person would say it, disconnect reasons included.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from livekit_mcp.agent_health import note_webhook
from livekit_mcp.errors import StoreError, WebhookError, WebhookUnreadable
from livekit_mcp.models import AGENT_NAME_ATTRIBUTES, effective_kind
from livekit_mcp.store import Event, IndexOp, Store
from livekit_mcp.text import shown

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/livekit"
PRUNE_EVERY = 60.0
"""Seconds between two retention passes of the receiver."""
MAX_BODY = 8 * 1024 * 1024
"""Bytes of one webhook. LiveKit's limits (livekit-server 1.13.5's defaults) let a participant event carry the
room's metadata (512 KiB) and the participant's (512 KiB) and attributes (64 KiB), each byte of which protojson may
escape into 6 (`\u0001`): 6.4 MiB, plus names and ids. A deployment with larger limits meets gaps, never silence."""
GAP = "webhook_gap"
"""The event name of a gap: a webhook LiveKit sent that this server could not take (kept under the room "")."""


class Verify(Protocol):
    """Checks a webhook as LiveKit signs it (the seam's `webhook_verifier`); raises WebhookError saying which check
    failed, WebhookUnreadable for a body LiveKit signed that cannot be read."""

    def __call__(self, body: bytes, token: str) -> dict[str, Any]:
        """The signature, the body's hash, then the body parsed (metadata and attributes left out)."""
        ...

    def signed(self, token: str) -> str:
        """The signature alone (whether the request is LiveKit's, before its body is read): the body hash it signs."""
        ...


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
        # Older agents join as STANDARD with permission.agent: the kind the tools give them, so the index has them.
        detail["kind"] = effective_kind(p.get("kind", "STANDARD"), bool((p.get("permission") or {}).get("agent")))
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


def index_changes(event: Event) -> list[IndexOp]:
    """What `event` changes in the index: written with it, in one write (`Store.add`)."""
    changes: list[IndexOp] = []
    if event.detail.get("dropped_before") or event.event == GAP:
        # Events were lost (LiveKit dropped them, or sent what we could not take): no room's record can be vouched
        # for; those that start from now on will be again. find_agent then scans the rooms it no longer knows.
        changes.append(IndexOp("rooms", "", prefix=True))
    key = f"{event.room_sid}|{event.identity}"
    if event.event == "room_started":
        changes.append(IndexOp("rooms", event.room_sid, event.room))
    elif event.event == "room_finished":
        changes += [IndexOp("rooms", event.room_sid), IndexOp("agents", f"{event.room_sid}|", prefix=True)]
    elif event.event == "participant_joined" and event.detail.get("kind") == "AGENT":
        value = {"room": event.room, "identity": event.identity, "agent_name": event.detail.get("agent_name", "")}
        changes.append(IndexOp("agents", key, json.dumps(value)))
    elif event.event in ("participant_left", "participant_connection_aborted") and event.detail.get("kind") == "AGENT":
        changes.append(IndexOp("agents", key))
    return changes


def gap(why: str, of: str = "") -> Event:
    """Webhooks LiveKit sent that were not taken (or that it dropped): which room they were about is unknown, so the
    gap is kept under the room "" and told in every room's history. `of`: the event that told of it (its id makes
    the gap's, so LiveKit's retry of that event does not count it twice)."""
    now = time.time()
    return Event(f"GAP_{of or uuid.uuid4().hex}", now, "", GAP, detail={"why": why}, received=now)


async def gaps_since(store: Store, since: float) -> list[Event]:
    """The gaps since `since` (the first 100)."""
    return (await store.events("", since, 100)).events


def gaps_note(gaps: list[Event]) -> str:
    if not gaps:
        return ""
    last = gaps[-1]
    return (
        f"History may be missing events: {len(gaps)} webhook(s) from LiveKit could not be taken since "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(gaps[0].at))} (the last: {last.detail.get('why')})."
    )


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


def told(event: Event, cause: Event | None = None) -> str:
    """One line a person would say for `event`; for a departure, `cause` is the change made through this server
    that made it leave (LiveKit's reason alone would say an agent whose dispatch was deleted "left by itself")."""
    d = event.detail
    if cause is not None and event.event in ("participant_left", "participant_connection_aborted"):
        c = cause.detail
        by = shown(c.get("principal", "someone")) + (
            f" for {shown(c['on_behalf_of'])}" if c.get("on_behalf_of") else ""
        )
        reason = f"; LiveKit's reason: {d['reason']}" if d.get("reason") else ""
        return f"{_who(event)} left because {by} ran {c.get('tool')} through livekit-mcp{reason}"
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
        case "webhook_gap":
            return f"a webhook from LiveKit could not be taken ({shown(d.get('why'))}): events may be missing"
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
        authorization = request.headers.get("authorization", "")
        unsigned = self._unsigned(authorization)
        if unsigned is not None:  # not LiveKit's: its body is not even read
            return _answer(*unsigned)
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return _answer(*_refused(400, "Content-Length is not a number"))
        if declared is not None and int(declared) > MAX_BODY:
            return _answer(*await self._gap(f"a webhook of {declared} bytes, over the {MAX_BODY} this server takes"))
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:  # read no further than that: `take` marks a gap
                    break
        except ClientDisconnect:  # gone, or the body was not in within the deadline (limits.BodyDeadline)
            return _answer(*_refused(408, "the webhook's body did not arrive in time"))
        return _answer(*await self.take(bytes(body), authorization))

    async def take(self, body: bytes, authorization: str) -> tuple[int, dict[str, Any]]:
        """Verify, parse and keep one webhook; the HTTP status and body to answer with. The in-process sandbox
        (`--sandbox`, the demo) delivers here directly, signed all the same."""
        unsigned = self._unsigned(authorization)
        if unsigned is not None:
            return unsigned
        if len(body) > MAX_BODY:
            return await self._gap(f"a webhook of more than {MAX_BODY} bytes")
        try:
            webhook = self._verify(body, authorization.removeprefix("Bearer ").strip())
        except WebhookUnreadable as exc:
            return await self._gap(str(exc))
        except WebhookError as exc:
            return _refused(401, str(exc))
        event = from_webhook(webhook)
        if event is None:
            return 200, {"kept": False, "why": "no room in this event"}
        return await self._keep(event, webhook)

    def _unsigned(self, authorization: str) -> tuple[int, dict[str, Any]] | None:
        if not authorization:
            return _refused(401, "no Authorization header: LiveKit signs every webhook")
        try:
            self._verify.signed(authorization.removeprefix("Bearer ").strip())
        except WebhookError as exc:
            return _refused(401, str(exc))
        return None

    async def _gap(self, why: str) -> tuple[int, dict[str, Any]]:
        """A webhook LiveKit signed that cannot be taken: kept as a gap (answered 200, since LiveKit would not send
        it again anyway: it takes a 4xx as delivered, and the same body would fail the same way)."""
        log.warning("webhook not taken, history has a gap: %s", why)
        answer = await self._keep(gap(why))
        return answer if answer[0] != 200 else (200, {"kept": False, "gap": why})

    async def _keep(self, event: Event, webhook: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        try:
            if dropped := event.detail.get("dropped_before"):  # LiveKit gave up on earlier ones: told as a gap too
                lost = gap(f"LiveKit dropped {dropped} webhook(s) it could not deliver", of=event.id)
                await self._store.add(lost, index_changes(lost))
            new = await self._store.add(event, index_changes(event))
            if new and webhook is not None:
                await note_webhook(self._store, event, webhook)  # agent health (agent_health.py)
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


def _refused(status: int, why: str) -> tuple[int, dict[str, Any]]:
    if status != 503:
        log.info("webhook refused (%d): %s", status, why)
    return status, {"error": why}
