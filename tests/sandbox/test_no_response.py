"""Calls routed to a room or participant that is not live: nobody answers them. LiveKit sends such a call to the
node of the room (or of the participant's session) over psrpc; with none there, psrpc's 3 s timeout ends it with
`unavailable`, "no response from servers", 503, on every method that routes this way. The sandbox answers the
same at once. All of a backend's calls are made together, so the real server's 3 s are waited once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from livekit import api

from .support import NO_RESPONSE, code_of, perform_rpc, rpc, unique

pytestmark = pytest.mark.anyio

Call = Callable[[api.LiveKitAPI, str], Awaitable[object]]


def _mute_nobody(lk: api.LiveKitAPI, room: str, *, muted: bool) -> Awaitable[object]:
    return lk.room.mute_published_track(
        api.MuteRoomTrackRequest(room=room, identity="nobody", track_sid="TR_x", muted=muted)
    )


# name → the call, given the client and a room that exists (with nobody in it)
CALLS: dict[str, Call] = {
    "MuteRoomTrack in a missing room": lambda lk, _: lk.room.mute_published_track(
        api.MuteRoomTrackRequest(room=unique("missing"), identity="alice", track_sid="TR_x", muted=True)
    ),
    # an unmute too: the participant's node would refuse it, but there is no node to ask
    "MuteRoomTrack of a missing participant": lambda lk, room: _mute_nobody(lk, room, muted=True),
    "MuteRoomTrack (unmute) of a missing participant": lambda lk, room: _mute_nobody(lk, room, muted=False),
    "UpdateSubscriptions of a missing participant": lambda lk, room: lk.room.update_subscriptions(
        api.UpdateSubscriptionsRequest(room=room, identity="nobody")
    ),
    "UpdateSubscriptions in a missing room": lambda lk, _: lk.room.update_subscriptions(
        api.UpdateSubscriptionsRequest(room=unique("missing"), identity="a")
    ),
    "SendData to a missing room": lambda lk, _: lk.room.send_data(
        api.SendDataRequest(room=unique("missing"), data=b"hello")
    ),
    "ListDispatch of a missing room": lambda lk, _: lk.agent_dispatch.list_dispatch(unique("missing")),
    "DeleteDispatch in a missing room": lambda lk, _: lk.agent_dispatch.delete_dispatch(
        "AD_unknown", unique("missing")
    ),
    "PerformRpc to someone not there": lambda lk, room: perform_rpc(lk, rpc(room, "nobody")),
    "PerformRpc in a missing room": lambda lk, _: perform_rpc(lk, rpc(unique("ghost"), "nobody")),
}


async def test_calls_about_someone_or_a_room_not_there_get_no_response(lk: api.LiveKitAPI, room: str) -> None:
    codes = await asyncio.gather(*(code_of(call(lk, room)) for call in CALLS.values()))
    assert dict(zip(CALLS, codes, strict=True)) == dict.fromkeys(CALLS, NO_RESPONSE)
