"""LIVEKIT_BEHAVIOR.md sections 4 and 5: AgentDispatchService and how agents look as participants."""

from __future__ import annotations

import pytest
from livekit import api
from livekit.protocol import agent as proto_agent
from livekit.protocol import models as proto_models

from livekit_mcp.sandbox import SandboxAdmin

from .support import code_of, unique

pytestmark = pytest.mark.anyio

AGENT = proto_models.ParticipantInfo.Kind.AGENT


async def test_a_new_room_holds_one_default_dispatch_with_an_empty_agent_name(lk: api.LiveKitAPI, room: str) -> None:
    (dispatch,) = await lk.agent_dispatch.list_dispatch(room)
    assert dispatch.agent_name == ""
    assert dispatch.room == room


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


async def test_create_dispatch_creates_a_missing_room(lk: api.LiveKitAPI) -> None:
    name = unique("auto")
    await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="helper", room=name))
    assert [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest(names=[name]))).rooms] == [name]
    assert {d.agent_name for d in await lk.agent_dispatch.list_dispatch(name)} == {"", "helper"}
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_dispatch_with_metadata_over_the_limit_is_invalid_argument(lk: api.LiveKitAPI, room: str) -> None:
    request = api.CreateAgentDispatchRequest(agent_name="a", room=room, metadata="m" * (512 * 1024 + 1))
    assert (await code_of(lk.agent_dispatch.create_dispatch(request)))[0] == "invalid_argument"


async def test_list_dispatch_by_id_returns_that_dispatch(lk: api.LiveKitAPI, room: str) -> None:
    created = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=room))
    found = await lk.agent_dispatch.get_dispatch(created.id, room)
    assert found is not None
    assert found.id == created.id


async def test_list_dispatch_with_an_unknown_id_is_an_empty_list(lk: api.LiveKitAPI, room: str) -> None:
    assert await lk.agent_dispatch.get_dispatch("AD_unknown", room) is None


async def test_list_dispatch_of_a_missing_room_times_out(lk: api.LiveKitAPI) -> None:
    call = lk.agent_dispatch.list_dispatch(unique("missing"))
    assert await code_of(call) == ("deadline_exceeded", "request timed out", 408)


async def test_delete_dispatch_returns_the_deleted_dispatch(lk: api.LiveKitAPI, room: str) -> None:
    created = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=room))
    deleted = await lk.agent_dispatch.delete_dispatch(created.id, room)
    assert (deleted.id, deleted.agent_name) == (created.id, "a")
    assert created.id not in {d.id for d in await lk.agent_dispatch.list_dispatch(room)}


async def test_delete_dispatch_with_an_unknown_id_is_not_found(lk: api.LiveKitAPI, room: str) -> None:
    call = lk.agent_dispatch.delete_dispatch("AD_unknown", room)
    assert await code_of(call) == ("not_found", "dispatch ID not found", 404)


async def test_delete_dispatch_in_a_missing_room_times_out(lk: api.LiveKitAPI) -> None:
    call = lk.agent_dispatch.delete_dispatch("AD_unknown", unique("missing"))
    assert await code_of(call) == ("deadline_exceeded", "request timed out", 408)


# -- agents as participants (sandbox admin API) --------------------------------------------------------


async def test_an_agent_joins_with_kind_agent_the_agent_permission_and_its_attributes(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    joined = await admin.join_agent(room, "support-agent", state="thinking")
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity=joined["identity"]))
    assert p.kind == AGENT
    assert p.permission.agent
    assert dict(p.attributes) == {"lk.agent_name": "support-agent", "lk.agent.state": "thinking"}


async def test_an_agent_identity_defaults_to_agent_dash_its_job_id(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    joined = await admin.join_agent(room, "support-agent")
    (dispatch,) = [d for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == "support-agent"]
    (job,) = dispatch.state.jobs
    assert job.id.startswith("AJ_")
    assert joined["identity"] == f"agent-{job.id}"
    assert job.state.participant_identity == joined["identity"]
    assert job.state.status == proto_agent.JobStatus.JS_RUNNING


async def test_an_agent_joins_for_an_existing_dispatch(lk: api.LiveKitAPI, admin: SandboxAdmin, room: str) -> None:
    created = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="helper", room=room))
    await admin.join_agent(room, "helper", identity="helper-1")
    found = await lk.agent_dispatch.get_dispatch(created.id, room)
    assert found is not None
    assert [j.state.participant_identity for j in found.state.jobs] == ["helper-1"]


async def test_removing_an_agent_ends_its_job_but_the_dispatch_stays_listed(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    joined = await admin.join_agent(room, "support-agent")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=joined["identity"]))
    (dispatch,) = [d for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == "support-agent"]
    (job,) = dispatch.state.jobs
    assert job.state.status != proto_agent.JobStatus.JS_RUNNING
    assert job.state.ended_at > 0
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    assert joined["identity"] not in {p.identity for p in listed.participants}


async def test_deleting_a_dispatch_ends_its_jobs_and_its_agent_leaves(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    joined = await admin.join_agent(room, "support-agent")
    (dispatch,) = [d for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == "support-agent"]
    deleted = await lk.agent_dispatch.delete_dispatch(dispatch.id, room)
    assert deleted.state.jobs[0].state.status != proto_agent.JobStatus.JS_RUNNING
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    assert joined["identity"] not in {p.identity for p in listed.participants}


async def test_a_dispatch_for_an_agent_a_worker_serves_brings_a_new_agent(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    await admin.set_workers(["support-agent"])
    first = await lk.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="support-agent", room=room)
    )
    second = await lk.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="support-agent", room=room)
    )
    agents = [
        p
        for p in (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
        if p.kind == AGENT
    ]
    assert len(agents) == 2
    assert len({p.identity for p in agents}) == 2
    assert {first.id, second.id} == {d.id for d in await lk.agent_dispatch.list_dispatch(room) if d.state.jobs}


async def test_an_older_agent_can_be_kind_standard_with_the_agent_permission(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str
) -> None:
    await admin.join(
        room, "old-bot", permission={"agent": True, "can_publish": True}, attributes={"lk.agent_name": "old"}
    )
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="old-bot"))
    assert (p.kind, p.permission.agent) == (proto_models.ParticipantInfo.Kind.STANDARD, True)


@pytest.mark.parametrize("kind", ["SIP", "EGRESS", "INGRESS", "CONNECTOR", "BRIDGE"])
async def test_participants_of_every_kind_can_join(
    lk: api.LiveKitAPI, admin: SandboxAdmin, room: str, kind: str
) -> None:
    await admin.join(room, "p", kind=kind, kind_details=["FORWARDED"])
    p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="p"))
    assert proto_models.ParticipantInfo.Kind.Name(p.kind) == kind
    assert list(p.kind_details) == [proto_models.ParticipantInfo.KindDetail.FORWARDED]
