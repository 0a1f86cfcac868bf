"""Guardrails end to end: policy, confirmation (elicitation in both eras, and the two-step token), audit log.

Every destructive path is checked by looking at the sandbox afterwards with the official `livekit-api` client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from livekit import api
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from livekit_mcp.confirm import Plan, Tokens
from livekit_mcp.errors import InvalidInput
from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import (
    InProcess,
    LiveKitTarget,
    call,
    fails,
    http_in_process,
    identities,
    ok,
    room_names,
    run_cli_here,
    text,
)

pytestmark = pytest.mark.anyio

Answer = Literal["accept", "decline", "cancel"]


def guarded(livekit: LiveKitTarget, **settings: str) -> dict[str, str]:
    """The server's environment with confirmation on (the test default is off) and these LIVEKIT_MCP_ settings."""
    return livekit.env(LIVEKIT_MCP_CONFIRM="auto", **{f"LIVEKIT_MCP_{k.upper()}": v for k, v in settings.items()})


async def support_room(admin: SandboxAdmin) -> dict[str, Any]:
    await admin.join("support", "customer", name="Dana")
    await admin.join("support", "caller", kind="SIP")
    return await admin.join_agent("support", "support-agent")


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- Policy ------------------------------------------------------------------------------------------


async def test_rooms_outside_allowed_rooms_are_invisible_and_refused_by_rule(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    await admin.join_agent("secret-board", "note-taker")
    server = in_process(env=livekit.env(LIVEKIT_MCP_ALLOWED_ROOMS="support*,demo-*"))
    async with Client(server) as client:
        rooms = await ok(client, "list_rooms")
        agents = await ok(client, "find_agent")
        listing = await fails(client, "list_participants", room="secret-board")
        deleting = await fails(client, "delete_room", room="secret-board")
        resource = await client.read_resource("livekit://rooms")
    assert [r["name"] for r in rooms["rooms"]] == ["support"]
    assert {a["room"] for a in agents["agents"]} == {"support"}
    for message in (listing, deleting):
        assert "refused by policy (allowed_rooms)" in message
    assert "secret-board" not in getattr(resource.contents[0], "text", "")
    assert await room_names(lkapi) == {"support", "secret-board"}


async def test_protected_rooms_are_visible_but_never_changed(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await admin.join("town-hall", "presenter")
    server = in_process(env=livekit.env(LIVEKIT_MCP_PROTECTED_ROOMS="town-*"))
    async with Client(server) as client:
        seen = await ok(client, "list_participants", room="town-hall")
        messages = [
            await fails(client, "delete_room", room="town-hall"),
            await fails(client, "remove_participant", room="town-hall", identity="presenter"),
            await fails(client, "update_room_metadata", room="town-hall", metadata="x"),
            await fails(client, "send_data", room="town-hall", data="x"),
        ]
    assert seen["total"] == 1
    for message in messages:
        assert "refused by policy (protected_rooms): room 'town-hall' is protected (matches 'town-*')" in message
    assert await identities(lkapi, "town-hall") == {"presenter"}
    assert (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["town-hall"]))).rooms[0].metadata == ""


async def test_protected_kinds_are_never_disconnected(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    agent = await support_room(admin)
    server = in_process(env=livekit.env(LIVEKIT_MCP_PROTECTED_KINDS="sip"))
    async with Client(server) as client:
        caller = await fails(client, "remove_participant", room="support", identity="caller")
        room = await fails(client, "delete_room", room="support")
        await ok(client, "remove_participant", room="support", identity="customer")
    assert "refused by policy (protected_kinds)" in caller
    assert "1 SIP" in room
    assert await identities(lkapi, "support") == {"caller", agent["identity"]}


async def test_destructive_actions_beyond_the_rate_limit_are_refused(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    for name in ("a", "b", "c"):
        await admin.join("r", name)
    server = in_process(env=livekit.env(LIVEKIT_MCP_MAX_DESTRUCTIVE_PER_MINUTE="2"))
    async with Client(server) as client:
        await ok(client, "remove_participant", room="r", identity="a")
        await ok(client, "remove_participant", room="r", identity="b")
        third = await fails(client, "remove_participant", room="r", identity="c")
        still_reads = await ok(client, "list_participants", room="r")
    assert "refused by policy (max_destructive_per_minute)" in third
    assert still_reads["total"] == 1
    assert await identities(lkapi, "r") == {"c"}


async def test_a_toml_config_file_sets_policy_and_the_environment_beats_it(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await admin.join("town-hall", "presenter")
    await admin.join("lobby", "guest")
    config = tmp_path / "livekit-mcp.toml"
    await admin.join("hidden", "someone")
    config.write_text('protected_rooms = ["town-*", "lobby"]\nallowed_rooms = ["town-*", "lobby"]\n')
    env = livekit.env(LIVEKIT_MCP_PROTECTED_ROOMS="lobby")  # the variable wins over the file
    server = in_process(env=env, config=config)
    async with Client(server) as client:
        rooms = await ok(client, "list_rooms")
        lobby = await fails(client, "remove_participant", room="lobby", identity="guest")
        await ok(client, "remove_participant", room="town-hall", identity="presenter")
    assert [r["name"] for r in rooms["rooms"]] == ["lobby", "town-hall"]  # the file's allowed_rooms
    assert "protected_rooms" in lobby


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("bogus = 1\n", "unknown setting bogus"),
        ('api_secret = "x"\n', "api_secret cannot be set here"),
        ("protected_kinds = ['ROBOT']\n", "unknown participant kind ROBOT"),
        ("this is not toml", "cannot read"),
    ],
)
def test_a_bad_config_file_stops_the_server_with_one_clear_line(
    livekit: LiveKitTarget, tmp_path: Path, content: str, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    done = run_cli_here("--config", str(config), env=livekit.env())
    assert done.returncode == 2
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- Confirmation by elicitation (both protocol eras) ------------------------------------------------


def answering(answer: Answer, asked: list[str], typed: str | None = None) -> Callable[..., Any]:
    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if answer != "accept":
            return ElicitResult(action=answer)
        return ElicitResult(action="accept", content={"room": typed} if typed is not None else {"confirm": True})

    return user


@pytest.mark.parametrize(("answer", "outcome"), [("accept", "done"), ("decline", "declined"), ("cancel", "cancelled")])
async def test_remove_participant_asks_the_user_and_respects_the_answer(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    mode: str,
    answer: Answer,
    outcome: str,
) -> None:
    await support_room(admin)
    server = in_process(env=guarded(livekit))
    asked: list[str] = []
    async with Client(server, mode=mode, elicitation_callback=answering(answer, asked)) as client:
        result = await call(client, "remove_participant", room="support", identity="customer")
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == outcome
    (question,) = asked
    assert question.startswith(
        "This disconnects STANDARD participant 'customer' (\"Dana\") from room 'support'. Go ahead?"
    )
    gone = "customer" not in await identities(lkapi, "support")
    assert gone is (answer == "accept")
    if answer != "accept":
        assert "Nothing was changed" in text(result)


@pytest.mark.parametrize(("typed", "deleted"), [("support", True), ("suport", False)])
async def test_delete_room_asks_for_the_name_to_be_typed_with_the_blast_radius(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    mode: str,
    typed: str,
    deleted: bool,
) -> None:
    agent = await support_room(admin)
    server = in_process(env=guarded(livekit))
    asked: list[str] = []
    async with Client(server, mode=mode, elicitation_callback=answering("accept", asked, typed)) as client:
        data = await ok(client, "delete_room", room="support")
    assert data["outcome"] == ("done" if deleted else "declined")
    question = asked[0]
    assert "disconnects 3 participant(s): 1 AGENT, 1 SIP, 1 STANDARD" in question
    assert agent["identity"] in question
    assert "'caller'" in question
    assert "Type the room's name" in question
    assert ("support" not in await room_names(lkapi)) is deleted


async def test_policy_refuses_before_anyone_is_asked(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    await support_room(admin)
    server = in_process(env=guarded(livekit, protected_kinds="SIP"))
    asked: list[str] = []
    async with Client(server, mode=mode, elicitation_callback=answering("accept", asked)) as client:
        message = await fails(client, "remove_participant", room="support", identity="caller")
    assert "protected_kinds" in message
    assert asked == []
    assert "caller" in await identities(lkapi, "support")


# --- The two-step flow, for clients that cannot elicit -----------------------------------------------


async def test_two_step_confirmation_changes_nothing_first_then_acts_once_with_the_token(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, mode: str
) -> None:
    agent = await support_room(admin)
    server = in_process(env=guarded(livekit))
    async with Client(server, mode=mode) as bot:
        preview = await ok(bot, "remove_agent", room="support")
        assert preview["outcome"] == "confirmation_required"
        assert [a["identity"] for a in preview["removed"]] == [agent["identity"]]
        assert await identities(lkapi, "support") == {"customer", "caller", agent["identity"]}  # nothing yet
        done = await ok(bot, "remove_agent", room="support", confirm_token=preview["confirm_token"])
        again = await fails(bot, "remove_agent", room="support", confirm_token=preview["confirm_token"])
    assert done["outcome"] == "done"
    assert await identities(lkapi, "support") == {"customer", "caller"}
    assert "no agent matching" in again  # the token cannot act twice: its target is gone


async def test_a_token_is_refused_for_other_arguments_when_altered_and_when_the_target_changed(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    await admin.join("support", "bob")
    server = in_process(env=guarded(livekit))
    async with Client(server) as bot:
        token = (await ok(bot, "remove_participant", room="support", identity="customer"))["confirm_token"]
        other = await fails(bot, "remove_participant", room="support", identity="bob", confirm_token=token)
        other_tool = await fails(bot, "delete_room", room="support", confirm_token=token)
        expiry = token.split(".")[1]
        altered = await fails(
            bot,
            "remove_participant",
            room="support",
            identity="customer",
            confirm_token=token.replace(f".{expiry}.", f".{int(expiry) + 3600}."),
        )
        await admin.leave("support", "customer")
        await admin.join("support", "customer", name="Dana")  # rejoined: a new sid
        rejoined = await fails(bot, "remove_participant", room="support", identity="customer", confirm_token=token)
    assert "other arguments" in other
    assert "other arguments" in other_tool
    assert "altered" in altered
    assert "the target changed" in rejoined
    assert {"customer", "bob"} <= await identities(lkapi, "support")


async def test_a_token_from_one_replica_works_on_another_sharing_the_key(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    first = in_process(env=guarded(livekit, confirm_key="shared-key-of-the-replicas-0123456789"))
    second = in_process(env=guarded(livekit, confirm_key="shared-key-of-the-replicas-0123456789"))
    stranger = in_process(env=guarded(livekit, confirm_key="another-key-of-another-server-0123456789"))
    async with Client(first) as a:
        token = (await ok(a, "delete_room", room="support"))["confirm_token"]
    async with Client(stranger) as c:
        refused = await fails(c, "delete_room", room="support", confirm_token=token)
    assert "not a token this server issued" in refused
    assert "support" in await room_names(lkapi)
    async with Client(second) as b:
        assert (await ok(b, "delete_room", room="support", confirm_token=token))["outcome"] == "done"
    assert "support" not in await room_names(lkapi)


def test_tokens_expire_and_name_the_reason() -> None:
    tokens = Tokens(b"k" * 32, ttl=120)
    plan = Plan("delete_room", "r", {"room": "r"}, ["RM_1"], "q")
    token, expiry = tokens.issue(plan, "alice", now=1000.0)
    assert expiry == 1120
    tokens.check(token, plan, "alice", now=1119.0)
    with pytest.raises(InvalidInput, match="expired"):
        tokens.check(token, plan, "alice", now=1121.0)
    with pytest.raises(InvalidInput, match="not a token"):
        tokens.check("v1.garbage", plan, "alice", now=1000.0)
    with pytest.raises(InvalidInput, match="not a token"):
        tokens.check(token.replace("v3.", "v3.\u0661"), plan, "alice", now=1000.0)  # a non-ASCII digit
    with pytest.raises(InvalidInput, match="another principal"):
        tokens.check(token, plan, "bob", now=1000.0)


# --- Audit log ---------------------------------------------------------------------------------------


async def test_the_audit_log_has_one_line_per_attempt_in_every_outcome(
    livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path, mode: str
) -> None:
    await support_room(admin)
    audit = tmp_path / "audit.jsonl"
    env = guarded(livekit, audit_log=str(audit), protected_kinds="SIP")
    async with (
        http_in_process(env) as server,
        server.client({"X-On-Behalf-Of": "U024BE7LH (Slack)"}, mode=mode) as bot,
    ):
        token = (await ok(bot, "remove_participant", room="support", identity="customer"))["confirm_token"]
        await ok(bot, "remove_participant", room="support", identity="customer", confirm_token=token)
        await fails(bot, "remove_participant", room="support", identity="caller")
        await fails(bot, "remove_participant", room="support", identity="ghost")
        await fails(bot, "update_participant", room="support", identity="caller")
        await fails(bot, "delete_room", room="  ")  # refused by argument validation, before the tool runs
        await ok(bot, "update_room_metadata", room="support", metadata="m")
        await ok(bot, "list_participants", room="support")  # reads are not audited
    written = audit_lines(audit)
    assert [(line["tool"], line["outcome"]) for line in written] == [
        ("remove_participant", "confirmation_required"),  # changed nothing: no attempted line
        ("remove_participant", "attempted"),  # written ahead of the change
        ("remove_participant", "done"),
        ("remove_participant", "refused by policy"),
        ("remove_participant", "failed"),  # the target was not found while planning: nothing attempted
        ("update_participant", "attempted"),
        ("update_participant", "invalid"),
        ("delete_room", "invalid"),
        ("update_room_metadata", "attempted"),
        ("update_room_metadata", "done"),
    ]
    assert written[1]["before"] == written[2]["before"]  # the attempted line says what is about to change
    lines = [line for line in written if line["outcome"] != "attempted"]
    for line in written:
        assert line["principal"] == "anonymous (HTTP)"
        assert line["on_behalf_of"] == "U024BE7LH (Slack)"
        assert line["time"].endswith("Z")
        assert line["duration_ms"] >= 0
    assert lines[1]["arguments"] == {"room": "support", "identity": "customer", "confirm_token": "(given)"}
    assert lines[1]["before"]["targets"][0].startswith("PA_")
    assert "protected_kinds" in lines[2]["reason"]
    assert "ghost" in lines[3]["reason"]
    assert lines[5]["arguments"] == {"room": "  "}
    assert "room: must not be empty" in lines[5]["reason"]
    raw = audit.read_text()
    assert token not in raw
    assert livekit.api_secret not in raw


async def test_elicited_outcomes_are_audited_with_the_local_user_on_stdio(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, tmp_path: Path
) -> None:
    await support_room(admin)
    audit = tmp_path / "audit.jsonl"
    asked: list[str] = []
    server = in_process(env=guarded(livekit, audit_log=str(audit)))
    async with Client(server, elicitation_callback=answering("decline", asked)) as client:
        await ok(client, "remove_participant", room="support", identity="customer")
    (line,) = audit_lines(audit)
    assert line["outcome"] == "declined"
    assert line["principal"].endswith("(stdio)")
    assert "on_behalf_of" not in line


async def test_an_unwritable_audit_log_blocks_every_change(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
) -> None:
    await support_room(admin)
    server = in_process(env=livekit.env(LIVEKIT_MCP_AUDIT_LOG=str(tmp_path / "no-such-dir" / "audit.jsonl")))
    async with Client(server) as client:
        removing = await fails(client, "remove_participant", room="support", identity="customer")
        updating = await fails(client, "update_room_metadata", room="support", metadata="m")
        reading = await ok(client, "list_participants", room="support")
    for message in (removing, updating):
        assert "audit log" in message
        assert "no change was made" in message
    assert reading["total"] == 3
    assert "customer" in await identities(lkapi, "support")


async def test_confirmation_off_acts_at_once(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    server = in_process(env=livekit.env(LIVEKIT_MCP_CONFIRM="off"))
    async with Client(server, elicitation_callback=answering("decline", [])) as client:
        assert (await ok(client, "remove_participant", room="support", identity="customer"))["outcome"] == "done"
    assert "customer" not in await identities(lkapi, "support")
