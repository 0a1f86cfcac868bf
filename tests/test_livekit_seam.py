"""The seam's declarations: every LiveKit call says whether it reads or changes, a change names a tool that shows
whether it happened, and an adapter method without a declaration is refused when its class is made."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

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


def _info(identity: str, joined_ms: int, kind: str = "STANDARD", **fields: Any) -> Any:
    from livekit import api

    return api.ParticipantInfo(
        sid=f"PA_{identity}",
        identity=identity,
        kind=kind,
        state=api.ParticipantInfo.State.ACTIVE,
        joined_at=joined_ms // 1000,
        joined_at_ms=joined_ms,
        **fields,
    )


def test_participants_that_share_a_permission_share_one_frozen_model() -> None:
    """The seam builds a permission once per distinct grant set; the shared model cannot be changed in place."""
    from livekit import api

    from livekit_mcp.livekit_backend import _convert

    guest = api.ParticipantPermission(can_subscribe=True, can_publish=True)
    one, two = (_convert.participant(_info(n, 1_000, permission=guest)) for n in ("a", "b"))
    other = _convert.participant(_info("c", 1_000, permission=api.ParticipantPermission(can_subscribe=True)))
    assert one.permission is two.permission
    assert other.permission is not None
    assert other.permission is not one.permission
    assert (other.permission.can_subscribe, other.permission.can_publish) == (True, False)
    with pytest.raises(ValidationError):
        one.permission.can_publish = False  # type: ignore[union-attr,misc]


@pytest.mark.parametrize("seconds_only", [False, True], ids=["joined_at_ms", "older-server"])
def test_a_page_is_the_slice_of_everyone_by_join_time_then_identity(seconds_only: bool) -> None:
    """Sorted and filtered on the messages (not on converted models), a page is still exactly the slice a plain
    sort of the converted participants gives, kind by kind, cursor after cursor; a server that gives whole
    seconds only (no joined_at_ms) is ordered by those."""
    from livekit import api

    from livekit_mcp.livekit_backend import _convert
    from livekit_mcp.livekit_backend._participants import page

    rng = random.Random(7)
    kinds = ["STANDARD", "STANDARD", "AGENT", "SIP", "INGRESS"]
    everyone = []
    for n in range(60):
        info = _info(f"p-{rng.randrange(1000):03d}-{n}", 1_700_000_000_000 + rng.randrange(5) * 700, rng.choice(kinds))
        if n % 7 == 0:  # an older agent: STANDARD with permission.agent
            info.kind = api.ParticipantInfo.Kind.STANDARD
            info.permission.CopyFrom(api.ParticipantPermission(agent=True))
        if seconds_only:
            info.joined_at_ms = 0
        everyone.append(info)
    rng.shuffle(everyone)
    converted = [_convert.participant(p) for p in everyone]
    for kind in (None, "STANDARD", "AGENT", "SIP", "INGRESS", "EGRESS", "CONNECTOR"):
        want = sorted(
            (p for p in converted if kind is None or p.effective_kind == kind), key=lambda p: (p.joined_at, p.identity)
        )
        got: list[str] = []
        after = None
        while True:
            one = page(everyone, kind=kind, limit=7, after=after)
            assert one.total == len(want)
            assert one.anyone
            got += [p.identity for p in one.participants]
            if not one.more:
                break
            last = one.participants[-1]
            after = (last.joined_at, last.identity)
        assert got == [p.identity for p in want], kind
    assert page([], kind=None, limit=5, after=None) == ([], 0, False, False)


def test_a_census_counts_everyone_and_converts_only_the_non_standard() -> None:
    from livekit import api

    from livekit_mcp.livekit_backend._participants import census

    old_agent = _info("old-bot", 3, permission=api.ParticipantPermission(agent=True))
    old_agent.attributes["lk.agent_name"] = "legacy"
    room = [
        _info("guest-1", 1, is_publisher=True),
        _info("guest-2", 2),
        old_agent,
        _info("agent-1", 4, "AGENT", attributes={"lk.agent_name": "helper"}),
        _info("caller", 5, "SIP", is_publisher=True),
    ]
    counted = census(room)
    assert counted.total == 5
    assert counted.by_kind == {"STANDARD": 2, "AGENT": 2, "SIP": 1}
    assert counted.publishers == ["guest-1", "caller"]
    assert counted.present == {"guest-1", "guest-2", "old-bot", "agent-1", "caller"}
    assert [p.identity for p in counted.notable] == ["old-bot", "agent-1", "caller"]
    assert [(p.identity, p.agent_name) for p in counted.agents] == [("old-bot", "legacy"), ("agent-1", "helper")]
