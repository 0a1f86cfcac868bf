"""Protobuf to our models, and back for a permission: every conversion of LiveKit's messages in one place.

What a model must never see is left out here: a trunk's password, a dispatch rule's pin, a stream URL's key, an
ingress's stream key outside the answer that made it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from livekit_mcp.models import (
    Dispatch,
    Egress,
    Ingress,
    Job,
    Participant,
    Permission,
    Room,
    SipDispatchRule,
    SipTrunk,
    Track,
    iso,
    preview,
)
from livekit_mcp.text import redacted_url

from ._imports import api


def enum_name(enum: type[object], value: int) -> str:
    """The name of a protobuf enum value; the number itself for a value newer than our protocol package."""
    names = _NAMES.get(enum)
    if names is None:
        names = _NAMES[enum] = {v.number: v.name for v in enum.DESCRIPTOR.values}  # type: ignore[attr-defined]
    return names.get(value) or str(value)


_NAMES: dict[object, dict[int, str]] = {}
"""Each enum's names, read once: protobuf's `Name()` costs ~1 us a call, and a big room asks three a participant."""


def room(r: api.Room) -> Room:
    return Room(
        sid=r.sid,
        name=r.name,
        num_participants=r.num_participants,
        num_publishers=r.num_publishers,
        creation_time=r.creation_time_ms / 1000 if r.creation_time_ms else float(r.creation_time),
        metadata=r.metadata,
        empty_timeout=r.empty_timeout,
        departure_timeout=r.departure_timeout,
        max_participants=r.max_participants,
    )


def participant(p: api.ParticipantInfo) -> Participant:
    # Empty repeated fields and maps are skipped rather than iterated: a big room converts thousands of these, and
    # iterating an empty protobuf container costs as much as reading a field.
    return Participant(
        sid=p.sid,
        identity=p.identity,
        name=p.name,
        kind=enum_name(api.ParticipantInfo.Kind, p.kind),
        state=enum_name(api.ParticipantInfo.State, p.state),
        joined_at=joined_at(p),
        is_publisher=p.is_publisher,
        metadata=p.metadata,
        attributes=dict(p.attributes) if p.attributes else {},
        kind_details=[enum_name(api.ParticipantInfo.KindDetail, k) for k in p.kind_details] if p.kind_details else [],
        tracks=[track(t) for t in p.tracks] if p.tracks else [],
        permission=permission(p.permission) if p.HasField("permission") else None,
    )


def joined_at(p: api.ParticipantInfo) -> float:
    """When the participant joined, in seconds (to the millisecond when LiveKit says so)."""
    return p.joined_at_ms / 1000 if p.joined_at_ms else float(p.joined_at)


def track(t: api.TrackInfo) -> Track:
    return Track(
        sid=t.sid,
        type=enum_name(api.TrackType, t.type),
        source=enum_name(api.TrackSource, t.source),
        name=t.name,
        muted=t.muted,
    )


_PERMISSION_FIELDS = tuple(field for field in Permission.model_fields if field != "can_publish_sources")
"""Read once: pydantic's `model_fields` of a class is a property, costlier than the conversion it serves."""


def permission(p: api.ParticipantPermission) -> Permission:
    """The permission, shared with every participant that has the same one (Permission is frozen): a room's
    participants mostly join with one token's grants, and building the model was a third of a participant's cost."""
    wire = p.SerializeToString(deterministic=True)
    found = _PERMISSIONS.get(wire)
    if found is None:
        if len(_PERMISSIONS) >= _PERMISSIONS_KEPT:
            _PERMISSIONS.clear()
        found = _PERMISSIONS[wire] = Permission.model_validate(
            {
                **{field: getattr(p, field) for field in _PERMISSION_FIELDS},
                "can_publish_sources": [enum_name(api.TrackSource, s) for s in p.can_publish_sources],
            }
        )
    return found


_PERMISSIONS: dict[bytes, Permission] = {}
_PERMISSIONS_KEPT = 256


def to_permission(p: Permission) -> api.ParticipantPermission:
    # Enum names are accepted by protobuf constructors as they are.
    return api.ParticipantPermission(**p.model_dump())


def dispatch(d: api.AgentDispatch) -> Dispatch:
    return Dispatch(
        id=d.id,
        agent_name=d.agent_name,
        room=d.room,
        metadata=d.metadata,
        created_at=d.state.created_at / 1e9 if d.state.created_at > 1e12 else float(d.state.created_at),
        jobs=[
            Job(
                id=j.id,
                status=enum_name(api.JobStatus, j.state.status),
                participant_identity=j.state.participant_identity or None,
            )
            for j in d.state.jobs
        ],
    )


def inbound_trunk(t: api.SIPInboundTrunkInfo) -> SipTrunk:
    # auth_password is never read: it must not reach a model's context, a log or the audit log.
    return SipTrunk(
        id=t.sip_trunk_id,
        direction="inbound",
        name=t.name or None,
        numbers=list(t.numbers),
        allowed_addresses=list(t.allowed_addresses) or None,
        allowed_numbers=list(t.allowed_numbers) or None,
        auth_username=t.auth_username or None,
        metadata=preview(t.metadata)[0],
    )


def outbound_trunk(t: api.SIPOutboundTrunkInfo) -> SipTrunk:
    return SipTrunk(
        id=t.sip_trunk_id,
        direction="outbound",
        name=t.name or None,
        numbers=list(t.numbers),
        address=t.address or None,
        transport=enum_name(api.SIPTransport, t.transport) if t.transport else None,
        auth_username=t.auth_username or None,
        metadata=preview(t.metadata)[0],
    )


def dispatch_rule(r: api.SIPDispatchRuleInfo) -> SipDispatchRule:
    which = r.rule.WhichOneof("rule")
    room = prefix = None
    pin = ""
    if which == "dispatch_rule_direct":
        room, pin = r.rule.dispatch_rule_direct.room_name, r.rule.dispatch_rule_direct.pin
    elif which == "dispatch_rule_individual":
        prefix, pin = r.rule.dispatch_rule_individual.room_prefix, r.rule.dispatch_rule_individual.pin
    elif which == "dispatch_rule_callee":
        prefix, pin = r.rule.dispatch_rule_callee.room_prefix, r.rule.dispatch_rule_callee.pin
    kinds = {
        "dispatch_rule_direct": "direct",
        "dispatch_rule_individual": "individual",
        "dispatch_rule_callee": "callee",
    }
    return SipDispatchRule(
        id=r.sip_dispatch_rule_id,
        name=r.name or None,
        kind=kinds.get(which or "", "unknown"),
        room=room,
        room_prefix=prefix if which != "dispatch_rule_direct" else None,
        pin_required=bool(pin) or None,  # the pin itself is a secret of the callers
        trunk_ids=list(r.trunk_ids),
        numbers=list(r.numbers) or list(r.inbound_numbers),
        agents=[a.agent_name for a in r.room_config.agents],
        hide_phone_number=r.hide_phone_number or None,
        metadata=preview(r.metadata)[0],
    )


_EGRESS_KINDS = ("room_composite", "web", "participant", "track_composite", "track", "egress", "replay")


def egress(e: api.EgressInfo) -> Egress:
    outputs = [f"file {f.filename or f.location}" for f in e.file_results]
    outputs += [f"stream {display_url(s.url)}" for s in e.stream_results]  # a stream URL carries its key
    outputs += [f"segments {s.playlist_name}" for s in e.segment_results]
    return Egress(
        egress_id=e.egress_id,
        room=e.room_name,
        kind=next((k for k in _EGRESS_KINDS if e.HasField(k)), "unknown"),
        status=enum_name(api.EgressStatus, e.status).removeprefix("EGRESS_"),
        started_at=iso(e.started_at / 1e9),
        ended_at=iso(e.ended_at / 1e9),
        outputs=outputs,
        error=e.error or None,
    )


def ingress(i: api.IngressInfo, *, masked: bool) -> Ingress:
    key = i.stream_key
    return Ingress(
        ingress_id=i.ingress_id,
        name=i.name or None,
        input_type=enum_name(api.IngressInput, i.input_type).removesuffix("_INPUT"),
        room=i.room_name,
        participant_identity=i.participant_identity,
        status=enum_name(api.IngressState.Status, i.state.status).removeprefix("ENDPOINT_"),
        url=(redacted_url(i.url) if masked else i.url) or None,
        stream_key=("…" + key[-4:] if masked else key) if key else None,
        publishing=i.state.status == api.IngressState.Status.ENDPOINT_PUBLISHING or None,
        error=i.state.error or None,
    )


def display_url(url: str) -> str:
    """The URL without any user, password, path or query: safe to show in messages and logs."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return repr(url.rpartition("@")[2][:100])  # not a URL: shown as given, less anything like a password
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
