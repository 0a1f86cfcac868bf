"""AgentDispatchService and how agents look as participants: the same tests on the sandbox (simulated
workers) and on the real livekit-server (real `livekit-agents` workers, through `crowd`)."""

from __future__ import annotations

import pytest
from livekit import api
from livekit.protocol import models as proto_models

from livekit_mcp.sandbox import SandboxAdmin
from realkit.processes import until

from .conftest import sandbox_only
from .support import JOIN_SECONDS, Crowd, code_of, unique

pytestmark = pytest.mark.anyio

AGENT = proto_models.ParticipantInfo.Kind.AGENT
# Each agent name is served by one worker for the whole session (on the real server, a process).
AGENT_NAME = "contract-agent"


async def identities(lk: api.LiveKitAPI, room: str) -> set[str]:
    return {p.identity for p in (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants}


async def test_a_new_room_holds_one_default_dispatch_with_an_empty_agent_name(lk: api.LiveKitAPI, room: str) -> None:
    (dispatch,) = await lk.agent_dispatch.list_dispatch(room)
    assert dispatch.agent_name == ""
    assert dispatch.room == room
    assert dispatch.id.startswith("AD_")


async def test_a_room_created_with_agents_holds_those_dispatches_only(lk: api.LiveKitAPI) -> None:
    name = unique("with-agents")
    await lk.room.create_room(
        api.CreateRoomRequest(name=name, agents=[api.RoomAgentDispatch(agent_name="greeter", metadata="hi")])
    )
    dispatches = await lk.agent_dispatch.list_dispatch(name)
    assert [(d.agent_name, d.metadata) for d in dispatches] == [("greeter", "hi")]
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_dispatch_returns_an_ad_id_with_its_fields(lk: api.LiveKitAPI, room: str) -> None:
    dispatch = await lk.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="no-worker-serves-this", room=room, metadata='{"k": 1}')
    )
    assert dispatch.id.startswith("AD_")
    assert (dispatch.agent_name, dispatch.room, dispatch.metadata) == ("no-worker-serves-this", room, '{"k": 1}')
    assert dispatch.state.created_at > 0
    assert list(dispatch.state.jobs) == []  # jobs are launched afterwards, asynchronously


async def test_create_dispatch_creates_a_missing_room(lk: api.LiveKitAPI) -> None:
    name = unique("auto")
    await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="helper", room=name))
    assert [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest(names=[name]))).rooms] == [name]
    assert sorted(d.agent_name for d in await lk.agent_dispatch.list_dispatch(name)) == ["", "helper"]
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_dispatch_with_metadata_over_the_limit_is_invalid_argument(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateAgentDispatchRequest(agent_name="a", room=room, metadata="m" * (512 * 1024 + 1))
    assert (await code_of(lk.agent_dispatch.create_dispatch(request)))[0] == "invalid_argument"


async def test_list_dispatch_by_id_returns_that_dispatch(lk: api.LiveKitAPI, room: str) -> None:
    created = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=room))
    found = await lk.agent_dispatch.get_dispatch(created.id, room)
    assert found is not None
    assert (found.id, found.agent_name) == (created.id, "a")


async def test_list_dispatch_with_an_unknown_id_is_an_empty_list(lk: api.LiveKitAPI, room: str) -> None:
    assert await lk.agent_dispatch.get_dispatch("AD_unknown", room) is None


async def test_delete_dispatch_returns_the_dispatch_as_it_stood(lk: api.LiveKitAPI, room: str) -> None:
    created = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=room))
    deleted = await lk.agent_dispatch.delete_dispatch(created.id, room)
    assert (deleted.id, deleted.agent_name, deleted.state.created_at) == (created.id, "a", created.state.created_at)
    assert deleted.state.deleted_at == 0
    assert created.id not in {d.id for d in await lk.agent_dispatch.list_dispatch(room)}


async def test_delete_dispatch_with_an_unknown_id_is_not_found(lk: api.LiveKitAPI, room: str) -> None:
    call = lk.agent_dispatch.delete_dispatch("AD_unknown", room)
    assert await code_of(call) == ("not_found", "twirp error unknown: dispatch ID not found", 404)


# -- agents as participants ------------------------------------------------------------------------


async def test_a_dispatched_agent_joins_with_kind_agent_the_agent_permission_and_its_attributes(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    _, agent = await crowd.dispatch_agent(room, AGENT_NAME)
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=agent.identity))
    assert p.kind == AGENT
    assert p.permission.agent
    # lk.agent_name is the server's; lk.agent.name and lk.agent.state come from livekit-agents.
    assert dict(p.attributes) == {
        "lk.agent_name": AGENT_NAME,
        "lk.agent.name": AGENT_NAME,
        "lk.agent.state": "listening",
    }
    assert p.identity.startswith("agent-AJ_")


async def test_list_dispatch_shows_a_running_agents_job_only_after_a_lag(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    # The real server lists a job 0.2-5.1 s after its agent joined (docs/livekit-behavior.md, ListDispatch): right
    # after the join the jobs may be empty or hold this one. Agents are cross-checked with the participants.
    dispatch, agent = await crowd.dispatch_agent(room, AGENT_NAME)
    found = await lk.agent_dispatch.get_dispatch(dispatch.id, room)
    assert found is not None
    assert [job.state.participant_identity for job in found.state.jobs] in ([], [agent.identity])
    assert agent.identity in await identities(lk, room)


async def test_removing_an_agent_leaves_its_dispatch_listed(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    dispatch, agent = await crowd.dispatch_agent(room, AGENT_NAME)
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=agent.identity))
    assert agent.identity not in await identities(lk, room)
    assert dispatch.id in {d.id for d in await lk.agent_dispatch.list_dispatch(room)}


async def test_deleting_a_dispatch_makes_its_agent_leave(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    dispatch, agent = await crowd.dispatch_agent(room, AGENT_NAME)
    deleted = await lk.agent_dispatch.delete_dispatch(dispatch.id, room)
    assert deleted.id == dispatch.id

    async def gone() -> bool:
        return agent.identity not in await identities(lk, room)

    await until(f"{agent.identity} left {room}", gone, JOIN_SECONDS)


async def test_each_dispatch_for_a_served_agent_brings_a_new_agent(lk: api.LiveKitAPI, crowd: Crowd, room: str) -> None:
    first, one = await crowd.dispatch_agent(room, AGENT_NAME)
    second, other = await crowd.dispatch_agent(room, AGENT_NAME)
    assert first.id != second.id
    assert one.identity != other.identity
    agents = {
        p.identity
        for p in (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
        if p.kind == AGENT
    }
    assert agents == {one.identity, other.identity}
    assert {first.id, second.id} <= {d.id for d in await lk.agent_dispatch.list_dispatch(room)}


async def test_an_older_agent_can_be_kind_standard_with_the_agent_permission(
    lk: api.LiveKitAPI, crowd: Crowd, room: str
) -> None:
    p = await crowd.join(room, "old-bot", agent=True, attributes={"lk.agent_name": "old"})
    assert (p.kind, p.permission.agent) == (proto_models.ParticipantInfo.Kind.STANDARD, True)


@pytest.mark.parametrize("kind", ["SIP", "EGRESS", "INGRESS", "AGENT"])
async def test_the_kind_comes_from_the_join_token(lk: api.LiveKitAPI, crowd: Crowd, room: str, kind: str) -> None:
    p = await crowd.join(room, "p", kind=kind)
    assert proto_models.ParticipantInfo.Kind.Name(p.kind) == kind


@sandbox_only
@pytest.mark.parametrize("kind", ["SIP", "EGRESS", "INGRESS", "CONNECTOR", "BRIDGE"])
async def test_sandbox_admin_joins_participants_of_every_kind_with_kind_details(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str, kind: str
) -> None:
    # A join token carries no kind_details (nor the kinds CONNECTOR and BRIDGE): only the admin API sets them.
    await admin.join(room, "p", kind=kind, kind_details=["FORWARDED"])
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="p"))
    assert proto_models.ParticipantInfo.Kind.Name(p.kind) == kind
    assert list(p.kind_details) == [proto_models.ParticipantInfo.KindDetail.FORWARDED]
