"""The seam's declarations: every LiveKit call says whether it reads or changes, a change names a tool that shows
whether it happened, and an adapter method without a declaration is refused when its class is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livekit_mcp import livekit_backend
from livekit_mcp.livekit_backend._adapter import DECLARED, Adapter, Send, change, read
from livekit_mcp.livekit_backend._call import Rpc
from livekit_mcp.sandbox._services import METHODS

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


def seam() -> list[Rpc]:
    """What the seam's adapters declare (not the adapters these tests make)."""
    assert callable(livekit_backend.LiveKit)  # imports every adapter, and with them their declarations
    return [rpc for method, rpc in DECLARED.items() if method.__module__.startswith("livekit_mcp.")]


def test_an_adapter_method_without_a_declaration_is_refused_when_its_class_is_made() -> None:
    with pytest.raises(TypeError, match=r"Undeclared\.list_things does not say what it calls"):

        class Undeclared(Adapter):
            async def list_things(self) -> None: ...


def test_a_declared_adapter_method_and_a_private_helper_are_accepted() -> None:
    class Things(Adapter):
        @read("ListThings")
        async def list_things(self, send: Send) -> None: ...

        @change("DeleteThing", verified_by="list_things", service="egress")
        async def delete_thing(self, send: Send, thing: str) -> None: ...

        def _helper(self) -> None: ...

    assert DECLARED[Things.list_things].changes is False
    assert DECLARED[Things.delete_thing].verified_by == "list_things"
    assert DECLARED[Things.delete_thing].service == "egress"


def test_every_change_names_a_tool_that_shows_whether_it_happened_or_none() -> None:
    tools = {tool["name"] for tool in json.loads(SNAPSHOT.read_text())}
    checks = {rpc.name: rpc.verified_by for rpc in seam() if rpc.changes}
    assert checks["SendData"] == checks["PerformRpc"] == ""  # nothing shows them
    assert {name for name, tool in checks.items() if tool and tool not in tools} == set()


def test_the_sandbox_serves_every_livekit_method_the_seam_calls() -> None:
    served = {key.rpartition("/")[2] for key in METHODS}
    assert {rpc.name for rpc in seam()} - served == set()


def test_a_participant_converts_with_enum_names_and_its_whole_permission() -> None:
    """The conversion of a big room's participants, made cheaper (enum names read once per enum, the permission's
    fields listed once), still gives every name and every field; a number newer than our protocol package stays
    a number."""
    from livekit import api

    from livekit_mcp.livekit_backend import _convert

    info = api.ParticipantInfo(
        sid="PA_1",
        identity="caller",
        kind=api.ParticipantInfo.Kind.SIP,
        state=api.ParticipantInfo.State.ACTIVE,
        permission=api.ParticipantPermission(
            can_publish=True, agent=True, can_subscribe_metrics=True, can_publish_sources=[api.TrackSource.MICROPHONE]
        ),
    )
    info.tracks.append(api.TrackInfo(sid="TR_1", type=api.TrackType.AUDIO, source=api.TrackSource.MICROPHONE))
    converted = _convert.participant(info)
    assert (converted.kind, converted.state, converted.tracks[0].type) == ("SIP", "ACTIVE", "AUDIO")
    assert converted.permission is not None
    assert converted.permission.model_dump() == {
        "can_subscribe": False,
        "can_publish": True,
        "can_publish_data": False,
        "can_publish_sources": ["MICROPHONE"],
        "hidden": False,
        "can_update_metadata": False,
        "agent": True,
        "can_subscribe_metrics": True,
    }
    assert _convert.enum_name(api.ParticipantInfo.Kind, 99) == "99"
    assert _convert.enum_name(api.ParticipantInfo.Kind, api.ParticipantInfo.Kind.AGENT) == "AGENT"
