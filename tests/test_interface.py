"""The public interface: tools/list of every toolset is a snapshot (changes must be deliberate) and answers stay small.

To accept a deliberate change: LIVEKIT_MCP_UPDATE_SNAPSHOTS=1 pytest tests/test_interface.py, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; the SDK itself uses it
import pytest
from google.protobuf import json_format
from livekit import api
from mcp import Client
from mcp.server.mcpserver import MCPServer

from livekit_mcp.config import TOOLSETS
from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import InProcess, LiveKitTarget, call, ok, text

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"
TOOLS_LIST_BUDGET = 16 * 1024  # about 4,000 tokens for every toolset together (issue 14)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def tools_list(server: MCPServer[Any]) -> list[dict[str, Any]]:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"meta"}) for t in tools]


@pytest.fixture
def with_output_schemas(livekit: LiveKitTarget, in_process: InProcess) -> MCPServer[Any]:
    """Every toolset, with output schemas, recording to a (made-up) stream."""
    env = livekit.env(LIVEKIT_MCP_EGRESS_OUTPUT="rtmp://live.example.com/app/key")
    return in_process(env=env, output_schemas=True, toolsets=",".join(TOOLSETS))


@pytest.fixture
def every_toolset(in_process: InProcess) -> MCPServer[Any]:
    return in_process(toolsets=",".join(TOOLSETS))


async def test_tools_list_matches_the_snapshot(with_output_schemas: MCPServer[Any]) -> None:
    listed = await tools_list(with_output_schemas)
    if os.environ.get("LIVEKIT_MCP_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(listed, indent=1, ensure_ascii=False) + "\n")
    assert listed == json.loads(SNAPSHOT.read_text()), "the public interface changed: see this module's docstring"


async def test_tools_list_of_every_toolset_is_the_snapshot_without_output_schemas_and_within_budget(
    every_toolset: MCPServer[Any], in_process: InProcess
) -> None:
    listed = await tools_list(every_toolset)
    expected = [{k: v for k, v in tool.items() if k != "outputSchema"} for tool in json.loads(SNAPSHOT.read_text())]
    assert listed == expected
    assert len(compact({"tools": listed}).encode()) < TOOLS_LIST_BUDGET  # bytes of the answer, as the bench counts
    for tool in listed:
        assert "title" not in compact(tool["inputSchema"])  # pydantic's titles only repeat the names
    # The default toolsets offer the snapshot's tools of those toolsets (tokens, sip, egress, ingress are off), and
    # list_projects, which is listed whatever the toolsets.
    default = await tools_list(in_process())
    assert default == [t for t in expected if t["name"] in {d["name"] for d in default}]
    assert len(default) == 19


async def test_every_answer_matches_its_published_output_schema(
    with_output_schemas: MCPServer[Any], admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    # The SDK client validates structuredContent against the tool's outputSchema and fails the call if it differs.
    joined = await admin.join("r", "dana", tracks=[{"type": "AUDIO", "source": "MICROPHONE"}], attributes={"a": "b"})
    agent = await admin.join_agent("r", "helper")
    mic = joined["tracks"][0]["sid"]
    outbound = api.SIPOutboundTrunkInfo(name="o", address="sip.example.com", numbers=["+15550199"])
    trunk = await lkapi.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=outbound))
    rule = api.SIPDispatchRule(dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix="call-"))
    await lkapi.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(rule=rule))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_rooms", {}),
        ("get_room", {"room": "r"}),
        ("room_history", {"room": "r"}),
        ("room_history", {}),
        ("create_room", {"room": "other", "metadata": "m"}),
        ("update_room_metadata", {"room": "other", "metadata": "n"}),
        ("list_participants", {"room": "r"}),
        ("get_participant", {"room": "r", "identity": "dana"}),
        # Muted before publishing is revoked: revoking it unpublishes the track, as on livekit-server.
        ("mute_track", {"room": "r", "identity": "dana", "track_sid": mic, "muted": True}),
        ("update_participant", {"room": "r", "identity": "dana", "permission": {"can_subscribe": True}}),
        ("send_data", {"room": "r", "data": "hi"}),
        ("find_agent", {}),
        ("list_dispatches", {"room": "r"}),
        ("dispatch_agent", {"room": "other", "agent_name": "x", "wait_seconds": 0}),
        ("create_join_token", {"room": "r", "identity": "viewer"}),
        ("list_sip_trunks", {}),
        ("list_sip_dispatch_rules", {}),
        ("create_sip_participant", {"room": "r", "sip_trunk_id": trunk.sip_trunk_id, "sip_call_to": "+15550100"}),
        ("transfer_sip_participant", {"room": "r", "identity": "sip_+15550100", "transfer_to": "tel:+15550101"}),
        ("start_room_egress", {"room": "r"}),
        ("list_egress", {}),
        ("list_ingress", {}),
        ("create_ingress", {"input_type": "RTMP", "room": "r", "participant_identity": "obs"}),
        ("remove_participant", {"room": "r", "identity": "dana"}),
        ("remove_agent", {"room": "r", "identity": agent["identity"]}),
        ("delete_room", {"room": "r"}),
        ("list_projects", {}),
    ]
    async with Client(with_output_schemas) as client:
        for tool, args in calls:
            result = await call(client, tool, **args)
            assert not result.is_error, f"{tool}: {text(result)}"
        egress = (await ok(client, "list_egress"))["egress"][0]["egress_id"]
        calls.append(("stop_egress", {"egress_id": egress}))
        await ok(client, *calls[-1][:1], **calls[-1][1])
        ingress = (await ok(client, "list_ingress"))["ingress"][0]["ingress_id"]
        calls.append(("delete_ingress", {"ingress_id": ingress}))
        await ok(client, *calls[-1][:1], **calls[-1][1])
        dispatch = (await ok(client, "dispatch_agent", room="other", agent_name="y", wait_seconds=0))["dispatch"]
        calls.append(("cancel_dispatch", {"room": "other", "dispatch_id": dispatch["id"]}))
        await ok(client, *calls[-1][:1], **calls[-1][1])
        # A sandbox participant has no client, so perform_rpc's answer is an RPC error, which the SDK client does
        # not validate: its structured content is checked against the schema here.
        calls.append(("perform_rpc", {"room": "other", "destination_identity": "x", "method": "m"}))
        await admin.join("other", "x")
        failed = await call(client, *calls[-1][:1], **calls[-1][1])
        schema = next(t.output_schema for t in (await client.list_tools()).tools if t.name == "perform_rpc")
        jsonschema.validate(failed.structured_content, schema)
    assert {tool for tool, _ in calls} == {t["name"] for t in json.loads(SNAPSHOT.read_text())}


async def test_list_participants_costs_a_small_fraction_of_the_raw_protojson(
    in_process: InProcess, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    for i in range(20):
        await admin.join(
            "webinar",
            f"viewer-{i:02d}",
            name=f"Viewer {i}",
            tracks=[{"type": "AUDIO", "source": "MICROPHONE"}, {"type": "VIDEO", "source": "CAMERA"}],
            attributes={"role": "viewer"},
            permission={"can_subscribe": True, "can_publish": True, "can_publish_data": True},
        )
    raw = await lkapi.room.list_participants(api.ListParticipantsRequest(room="webinar"))
    raw_bytes = sum(
        len(
            compact(
                json_format.MessageToDict(
                    p, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                )
            )
        )
        for p in raw.participants
    )
    async with Client(in_process()) as client:
        result = await call(client, "list_participants", room="webinar")
    structured = compact(result.structured_content)
    assert len(structured) * 4 <= raw_bytes, (len(structured), raw_bytes)
    assert len(text(result)) * 4 <= raw_bytes, (len(text(result)), raw_bytes)
