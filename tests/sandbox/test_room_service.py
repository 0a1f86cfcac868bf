"""RoomService, every method, through the real livekit-api client: the same tests on the sandbox and on
the real livekit-server (participants join through `crowd`)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from livekit import api
from livekit.protocol import models as proto_models

from realkit.processes import until

from .conftest import Twirp
from .support import JOIN_SECONDS, Crowd, code_of, unique

pytestmark = pytest.mark.anyio

NO_ROOM = ("not_found", "twirp error unknown: requested room does not exist", 404)
NO_PARTICIPANT = ("not_found", "twirp error unknown: participant does not exist", 404)


async def rooms_named(lk: api.LiveKitAPI, *names: str) -> list[proto_models.Room]:
    return list((await lk.room.list_rooms(api.ListRoomsRequest(names=list(names)))).rooms)


async def counts_become(lk: api.LiveKitAPI, room: str, participants: int, publishers: int) -> None:
    """ListRooms' counts reach these values (the real server updates them asynchronously)."""

    seen: list[tuple[int, int]] = []

    async def counted() -> bool:
        (info,) = await rooms_named(lk, room)
        seen[:] = [(info.num_participants, info.num_publishers)]
        return seen[0] == (participants, publishers)

    try:
        await until(f"{room} counts {participants} participants, {publishers} publishers", counted, JOIN_SECONDS)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last seen: {seen})") from None


async def identities(lk: api.LiveKitAPI, room: str) -> set[str]:
    return {p.identity for p in (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants}


# -- CreateRoom --------------------------------------------------------------------------------------


async def test_create_room_makes_a_room_with_an_rm_sid_and_default_timeouts(lk: api.LiveKitAPI) -> None:
    name = unique("create")
    created = await lk.room.create_room(api.CreateRoomRequest(name=name))
    assert created.name == name
    assert created.sid.startswith("RM_")
    assert (created.empty_timeout, created.departure_timeout) == (300, 20)
    assert created.creation_time > 0
    assert created.creation_time_ms // 1000 == created.creation_time
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_room_keeps_the_given_settings(lk: api.LiveKitAPI) -> None:
    name = unique("create")
    created = await lk.room.create_room(
        api.CreateRoomRequest(name=name, empty_timeout=60, departure_timeout=5, max_participants=7, metadata="m")
    )
    assert (created.empty_timeout, created.departure_timeout, created.max_participants, created.metadata) == (
        60,
        5,
        7,
        "m",
    )
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_room_on_a_live_room_returns_it_unchanged(lk: api.LiveKitAPI, room: str) -> None:
    (before,) = await rooms_named(lk, room)
    again = await lk.room.create_room(
        api.CreateRoomRequest(name=room, metadata="ignored", empty_timeout=42, max_participants=3)
    )
    assert (again.sid, again.metadata, again.empty_timeout, again.max_participants) == (
        before.sid,
        before.metadata,
        before.empty_timeout,
        before.max_participants,
    )
    (after,) = await rooms_named(lk, room)
    assert (after.metadata, after.empty_timeout) == (before.metadata, before.empty_timeout)


async def test_create_room_with_a_name_over_256_characters_is_invalid_argument(lk: api.LiveKitAPI) -> None:
    call = lk.room.create_room(api.CreateRoomRequest(name="r" * 257))
    assert (await code_of(call))[::2] == ("invalid_argument", 400)


async def test_create_room_with_metadata_over_512_kib_is_invalid_argument(lk: api.LiveKitAPI) -> None:
    call = lk.room.create_room(api.CreateRoomRequest(name=unique("big"), metadata="m" * (512 * 1024 + 1)))
    assert (await code_of(call))[0] == "invalid_argument"


# -- ListRooms ---------------------------------------------------------------------------------------


async def test_list_rooms_by_name_leaves_unknown_names_out(lk: api.LiveKitAPI, room: str) -> None:
    assert [r.name for r in await rooms_named(lk, room, unique("missing"))] == [room]


async def test_list_rooms_without_names_lists_every_room(lk: api.LiveKitAPI, room: str) -> None:
    other = unique("other")
    await lk.room.create_room(api.CreateRoomRequest(name=other))
    names = {r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms}
    assert {room, other} <= names
    await lk.room.delete_room(api.DeleteRoomRequest(room=other))


async def test_list_rooms_counts_participants_and_publishers_and_not_agents(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    # Two rooms at once: the real server updates the counts every few seconds, so both are waited for together.
    agents_room = unique("counted")
    await lk.room.create_room(api.CreateRoomRequest(name=agents_room))
    try:

        async def people() -> None:
            await crowd.join(room, "speaker", audio=True)
            await crowd.join(room, "listener")
            await crowd.join(room, "ghost", hidden=True)
            await counts_become(lk, room, participants=3, publishers=1)  # hidden participants are counted too

        async def with_an_agent() -> None:
            # livekit-server leaves "dependent" participants (agents, egress) out of num_participants. The agent is
            # in the room before the speaker joins, so a backend that counted it would go from 1 to 2, never show 1
            # with the speaker's publication.
            await crowd.dispatch_agent(agents_room, "counted-agent")
            await crowd.join(agents_room, "speaker", audio=True)
            await counts_become(lk, agents_room, participants=1, publishers=1)

        await asyncio.gather(people(), with_an_agent())
    finally:
        await lk.room.delete_room(api.DeleteRoomRequest(room=agents_room))


# -- DeleteRoom --------------------------------------------------------------------------------------


async def test_delete_room_removes_the_room(lk: api.LiveKitAPI) -> None:
    name = unique("delete")
    await lk.room.create_room(api.CreateRoomRequest(name=name))
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    assert await rooms_named(lk, name) == []


async def test_delete_room_on_a_missing_room_is_not_found(lk: api.LiveKitAPI) -> None:
    call = lk.room.delete_room(api.DeleteRoomRequest(room=unique("missing")))
    assert await code_of(call) == NO_ROOM


async def test_delete_room_with_an_empty_name_is_not_found(lk: api.LiveKitAPI) -> None:
    assert (await code_of(lk.room.delete_room(api.DeleteRoomRequest(room=""))))[0] == "not_found"


async def test_delete_room_is_not_idempotent(lk: api.LiveKitAPI, room: str) -> None:
    await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert (await code_of(lk.room.delete_room(api.DeleteRoomRequest(room=room))))[0] == "not_found"


async def test_delete_room_disconnects_everyone(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice")
    await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert await identities(lk, room) == set()
    assert await rooms_named(lk, room) == []


# -- ListParticipants / GetParticipant -----------------------------------------------------------------


async def test_list_participants_on_a_missing_room_is_an_empty_list(lk: api.LiveKitAPI) -> None:
    assert await identities(lk, unique("missing")) == set()


async def test_list_participants_lists_everyone_in_the_room(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice")
    await crowd.join(room, "bob")
    assert await identities(lk, room) == {"alice", "bob"}  # in no promised order


async def test_get_participant_returns_the_participant_info(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice", name="Alice", metadata="meta", attributes={"team": "red"}, audio=True)
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    assert p.sid.startswith("PA_")
    assert (p.identity, p.name, p.metadata, dict(p.attributes)) == ("alice", "Alice", "meta", {"team": "red"})
    assert p.state == proto_models.ParticipantInfo.State.ACTIVE
    assert p.kind == proto_models.ParticipantInfo.Kind.STANDARD
    assert p.is_publisher
    assert p.joined_at > 0
    assert p.joined_at_ms // 1000 == p.joined_at
    assert [(t.type, t.source, t.name) for t in p.tracks] == [
        (proto_models.TrackType.AUDIO, proto_models.TrackSource.MICROPHONE, "microphone")
    ]
    assert all(t.sid.startswith("TR_") for t in p.tracks)


async def test_get_participant_on_a_missing_room_is_not_found(lk: api.LiveKitAPI) -> None:
    call = lk.room.get_participant(api.RoomParticipantIdentity(room=unique("missing"), identity="alice"))
    assert await code_of(call) == NO_PARTICIPANT


async def test_get_participant_of_a_missing_identity_is_not_found(lk: api.LiveKitAPI, room: str) -> None:
    call = lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="nobody"))
    assert await code_of(call) == NO_PARTICIPANT


# -- RemoveParticipant -------------------------------------------------------------------------------


async def test_remove_participant_removes_it_from_the_list_at_once(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice", audio=True)
    await crowd.join(room, "bob")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    assert await identities(lk, room) == {"bob"}
    await counts_become(lk, room, participants=1, publishers=0)


async def test_remove_participant_twice_is_not_found_the_second_time(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    await crowd.join(room, "alice")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    call = lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    assert await code_of(call) == NO_PARTICIPANT


async def test_remove_participant_on_a_missing_room_is_not_found(lk: api.LiveKitAPI) -> None:
    call = lk.room.remove_participant(api.RoomParticipantIdentity(room=unique("missing"), identity="alice"))
    assert await code_of(call) == NO_PARTICIPANT


async def test_a_removed_participant_can_rejoin_and_gets_a_new_sid(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    first = await crowd.join(room, "alice")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    second = await crowd.join(room, "alice")
    assert second.sid != first.sid
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
    assert p.sid == second.sid


# -- MutePublishedTrack ------------------------------------------------------------------------------


async def test_mute_published_track_mutes_the_track(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    sid = (await crowd.join(room, "alice", audio=True)).tracks[0].sid
    muted = await lk.room.mute_published_track(
        api.MuteRoomTrackRequest(room=room, identity="alice", track_sid=sid, muted=True)
    )
    assert (muted.track.sid, muted.track.muted) == (sid, True)

    async def shown_muted() -> bool:
        p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="alice"))
        return p.tracks[0].muted

    await until("GetParticipant shows the track muted", shown_muted, JOIN_SECONDS)


async def test_mute_published_track_with_an_unknown_track_sid_answers_without_a_track(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    await crowd.join(room, "alice", audio=True)
    muted = await lk.room.mute_published_track(
        api.MuteRoomTrackRequest(room=room, identity="alice", track_sid="TR_unknown", muted=True)
    )
    assert not muted.HasField("track")


async def test_remote_unmute_is_failed_precondition(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    sid = (await crowd.join(room, "alice", audio=True)).tracks[0].sid
    request = api.MuteRoomTrackRequest(room=room, identity="alice", track_sid=sid, muted=False)
    assert await code_of(lk.room.mute_published_track(request)) == (
        "failed_precondition",
        "twirp error unknown: remote unmute not enabled",
        412,
    )


# -- UpdateParticipant -------------------------------------------------------------------------------


async def test_update_participant_changes_metadata_and_name(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice", name="Alice", metadata="old")
    updated = await lk.room.update_participant(
        api.UpdateParticipantRequest(room=room, identity="alice", metadata="new", name="Alice B.")
    )
    assert (updated.metadata, updated.name) == ("new", "Alice B.")


async def test_update_participant_with_empty_metadata_and_name_changes_neither(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    await crowd.join(room, "alice", name="Alice", metadata="keep")
    updated = await lk.room.update_participant(api.UpdateParticipantRequest(room=room, identity="alice"))
    assert (updated.metadata, updated.name) == ("keep", "Alice")


async def test_update_participant_merges_attributes_and_an_empty_value_deletes_a_key(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    await crowd.join(room, "alice", attributes={"keep": "1", "drop": "2", "change": "3"})
    updated = await lk.room.update_participant(
        api.UpdateParticipantRequest(room=room, identity="alice", attributes={"drop": "", "change": "4", "add": "5"})
    )
    assert dict(updated.attributes) == {"keep": "1", "change": "4", "add": "5"}


async def test_update_participant_replaces_the_whole_permission(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    joined = await crowd.join(room, "alice")
    assert (joined.permission.can_subscribe, joined.permission.can_publish, joined.permission.can_publish_data) == (
        True,
        True,
        True,
    )
    updated = await lk.room.update_participant(
        api.UpdateParticipantRequest(
            room=room, identity="alice", permission=proto_models.ParticipantPermission(can_subscribe=True)
        )
    )
    assert (updated.permission.can_subscribe, updated.permission.can_publish, updated.permission.can_publish_data) == (
        True,
        False,
        False,
    )


async def test_update_participant_of_a_missing_participant_is_not_found(lk: api.LiveKitAPI, room: str) -> None:
    call = lk.room.update_participant(api.UpdateParticipantRequest(room=room, identity="nobody", metadata="m"))
    assert await code_of(call) == NO_PARTICIPANT


async def test_update_participant_in_a_missing_room_is_not_found(lk: api.LiveKitAPI) -> None:
    call = lk.room.update_participant(api.UpdateParticipantRequest(room=unique("missing"), identity="a", name="n"))
    assert await code_of(call) == NO_PARTICIPANT


@pytest.mark.parametrize(
    "oversized",
    [
        {"name": "n" * 257},
        {"metadata": "m" * (512 * 1024 + 1)},
        {"attributes": {"k": "v" * (64 * 1024)}},
    ],
)
async def test_update_participant_size_limits_are_checked_before_the_grant(
    twirp: Twirp, oversized: dict[str, object]
) -> None:
    body = {"room": unique("any"), "identity": "alice", **oversized}
    reply = await twirp("RoomService/UpdateParticipant", body, grants=api.VideoGrants())
    assert (reply.status, reply.json()["code"]) == (400, "invalid_argument")


# -- UpdateSubscriptions / SendData / UpdateRoomMetadata ---------------------------------------------


async def test_update_subscriptions_answers_empty(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    await crowd.join(room, "alice")
    await lk.room.update_subscriptions(
        api.UpdateSubscriptionsRequest(room=room, identity="alice", track_sids=["TR_x"], subscribe=True)
    )


async def test_send_data_does_not_validate_destinations(lk: api.LiveKitAPI, room: str) -> None:
    await lk.room.send_data(
        api.SendDataRequest(
            room=room,
            data=b"hello",
            kind=proto_models.DataPacket.Kind.RELIABLE,
            destination_identities=["nobody"],
            topic="chat",
        )
    )


@pytest.mark.parametrize(("nonce", "status"), [(b"", 200), (b"n" * 16, 200), (b"n" * 8, 400), (b"n" * 17, 400)])
async def test_send_data_accepts_a_nonce_of_0_or_16_bytes_only(
    twirp: Twirp, room: str, nonce: bytes, status: int
) -> None:
    body = {"room": room, "data": base64.b64encode(b"hi").decode(), "nonce": base64.b64encode(nonce).decode()}
    reply = await twirp("RoomService/SendData", body, grants=api.VideoGrants(room_admin=True, room=room))
    assert reply.status == status
    if status == 400:
        assert reply.json()["code"] == "invalid_argument"


async def test_update_room_metadata_returns_the_updated_room(lk: api.LiveKitAPI, room: str) -> None:
    updated = await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=room, metadata="agenda"))
    assert (updated.name, updated.metadata) == (room, "agenda")
    assert (await rooms_named(lk, room))[0].metadata == "agenda"


async def test_update_room_metadata_of_a_missing_room_is_not_found(lk: api.LiveKitAPI) -> None:
    call = lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=unique("missing"), metadata="m"))
    assert await code_of(call) == NO_ROOM


async def test_update_room_metadata_over_512_kib_is_invalid_argument_before_the_grant(twirp: Twirp) -> None:
    body = {"room": unique("any"), "metadata": "m" * (512 * 1024 + 1)}
    reply = await twirp("RoomService/UpdateRoomMetadata", body, grants=api.VideoGrants())
    assert (reply.status, reply.json()["code"]) == (400, "invalid_argument")


async def test_an_empty_identity_is_not_invalid_argument_it_matches_nobody(lk: api.LiveKitAPI, room: str) -> None:
    call = lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=""))
    assert await code_of(call) == NO_PARTICIPANT
