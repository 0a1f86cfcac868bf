"""Confirmation on MCP 2026-07-28 across replicas (issue 23, item 1).

On 2026-07-28 a question is a round of the call: the server answers `input_required` with a sealed `requestState`,
and the client echoes it with the person's answer on the next round, which a load balancer may send to another
replica. Two stateless HTTP replicas are built in this process with the same settings (the same confirm key, one
real Redis as their shared store), behind `RoundRobin`, a load balancer that sends each request to the next replica
and records which one got it. The SDK's client speaks 2026-07-28 to it. What the sandbox (LiveKit) holds is checked
after every round.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, InputRequiredResult
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from livekit_mcp.config import Settings
from livekit_mcp.request_state import REFUSED
from livekit_mcp.sandbox import SandboxAdmin
from tests.asgi import asgi_client
from tests.conftest import InProcess, LiveKitTarget, http_in_process, identities, ok, room_names, text
from tests.test_guardrails import guarded

pytestmark = pytest.mark.anyio

KEY = "the-confirm-key-every-replica-holds-0123456789"
NEXT_KEY = "the-next-confirm-key-rolled-out-0123456789abc"
ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
TOKENS = f"alice:write:{ALICE},bob:write:{BOB}"
TTL = 120.0
URL = "http://127.0.0.1:8000/mcp"


@dataclass
class RoundRobin:
    """A load balancer: each HTTP request to the next replica, in turn; `routed` says which replica got which
    JSON-RPC method, and whether it echoed a requestState."""

    replicas: list[ASGIApp]
    routed: list[tuple[int, str, bool]] = field(default_factory=list)
    _turn: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        sent = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        replica, self._turn = self._turn, (self._turn + 1) % len(self.replicas)
        request = json.loads(body) if body else {}
        if isinstance(request, dict):
            params = request.get("params") or {}
            self.routed.append((replica, str(request.get("method")), "requestState" in params))
        await self.replicas[replica](scope, replay, send)

    def rounds(self, method: str = "tools/call") -> list[int]:
        """The replica of each round of `method`, in order."""
        return [replica for replica, name, _ in self.routed if name == method]


class Clock:
    """The replicas' clock, moved on by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def replicas(
    env: dict[str, str], clock: Callable[[], float] = time.time, second: dict[str, str] | None = None
) -> AsyncIterator[RoundRobin]:
    """Two stateless HTTP replicas of `env` (the second of `second`, when given: a rolling change), running."""
    async with (
        http_in_process(env, clock=clock, stateless=True) as a,
        http_in_process(second or env, clock=clock, stateless=True) as b,
    ):
        yield RoundRobin([a.app, b.app])


@contextlib.asynccontextmanager
async def through(balancer: RoundRobin, token: str = ALICE, **options: Any) -> AsyncIterator[Client]:
    """The SDK's 2026-07-28 client over streamable HTTP to the balancer, with `token` (and `headers`)."""
    headers = {"Authorization": f"Bearer {token}", **options.pop("headers", {})}
    async with (
        asgi_client(balancer, headers) as http,
        Client(streamable_http_client(URL, http_client=http), mode="2026-07-28", **options) as client,
    ):
        yield client


def fleet_env(livekit: LiveKitTarget, redis_url: str, **settings: str) -> dict[str, str]:
    return guarded(livekit, **({"confirm_key": KEY, "store": redis_url, "auth_tokens": TOKENS} | settings))


def person(answer: dict[str, Any], asked: list[str]) -> Callable[..., Any]:
    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content=answer)

    return user


def modern(balancer: RoundRobin, token: str = ALICE, **headers: str) -> contextlib.AbstractAsyncContextManager[Client]:
    """A 2026-07-28 client that can elicit, through the balancer; the test drives its rounds (the session's calls
    with `allow_input_required`), so its callback is never called."""
    return through(balancer, token, headers=headers, elicitation_callback=never)


async def never(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    raise AssertionError("the rounds are driven by the test")


# --- Confirmed across replicas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "answer"), [("remove_participant", {"confirm": True}), ("delete_room", {"room": "{room}"})]
)
async def test_a_person_confirms_on_one_replica_and_the_other_acts(
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    redis_url: str,
    tool: str,
    answer: dict[str, Any],
) -> None:
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana", name="Dana")
    await admin.join(room, "eve")
    args = {"room": room, "identity": "dana"} if tool == "remove_participant" else {"room": room}
    asked: list[str] = []
    async with replicas(fleet_env(livekit, redis_url)) as balancer:
        typed = {k: v.format(room=room) if isinstance(v, str) else v for k, v in answer.items()}
        async with through(balancer, elicitation_callback=person(typed, asked)) as c:
            result = await c.call_tool(tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == "done"
    (question,) = asked
    assert ("Type the room's name" in question) is (tool == "delete_room")
    first, second = balancer.rounds()
    assert first != second, balancer.routed  # the answer reached the replica that did not ask
    assert [has_state for _, name, has_state in balancer.routed if name == "tools/call"] == [False, True]
    if tool == "remove_participant":
        assert await identities(lkapi, room) == {"eve"}
    else:
        assert room not in await room_names(lkapi)


async def test_a_mistyped_room_name_on_the_other_replica_deletes_nothing(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    mistyped = person({"room": room + "x"}, [])
    async with (
        replicas(fleet_env(livekit, redis_url)) as balancer,
        through(balancer, elicitation_callback=mistyped) as c,
    ):
        data = await ok(c, "delete_room", room=room)
    assert data["outcome"] == "declined"
    assert len(set(balancer.rounds())) == 2
    assert room in await room_names(lkapi)
    assert await identities(lkapi, room) == {"dana"}


# --- The rounds driven by hand: what a hostile client can send back --------------------------------------------


async def first_round(client: Client, room: str, identity: str = "dana") -> tuple[str, dict[str, Any]]:
    """Round one of removing `identity`: the sealed state and the person's yes to the question it asked."""
    asked = await client.session.call_tool(
        "remove_participant", {"room": room, "identity": identity}, allow_input_required=True
    )
    assert isinstance(asked, InputRequiredResult), asked
    assert asked.request_state
    assert asked.input_requests
    (key,) = asked.input_requests
    return asked.request_state, {key: ElicitResult(action="accept", content={"confirm": True})}


async def second_round(
    client: Client, room: str, state: str, answers: dict[str, Any], identity: str = "dana"
) -> CallToolResult:
    result = await client.session.call_tool(
        "remove_participant",
        {"room": room, "identity": identity},
        input_responses=answers,
        request_state=state,
        allow_input_required=True,
    )
    assert isinstance(result, CallToolResult), result
    return result


async def refused(client: Client, room: str, state: str, answers: dict[str, Any]) -> None:
    with pytest.raises(MCPError) as caught:
        await second_round(client, room, state, answers)
    assert caught.value.message == REFUSED


def outcome(result: CallToolResult) -> Any:
    return (result.structured_content or {}).get("outcome")


def tampered(state: str) -> str:
    """The state with one character of its sealed body changed (still well-formed base64url)."""
    i = len(state) // 2
    return state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1 :]


async def test_a_tampered_state_is_refused_and_nobody_leaves(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    async with replicas(fleet_env(livekit, redis_url)) as balancer, modern(balancer) as c:
        state, yes = await first_round(c, room)
        await refused(c, room, tampered(state), yes)
        assert await identities(lkapi, room) == {"dana"}
        # Nor does an answer without the state count: the person's yes must answer a question the server put.
        result = await c.session.call_tool(
            "remove_participant", {"room": room, "identity": "dana"}, input_responses=yes, allow_input_required=True
        )
        assert isinstance(result, InputRequiredResult)
        assert await identities(lkapi, room) == {"dana"}
        # The state untouched still works: the refusals spent nothing.
        done = await second_round(c, room, state, yes)
    assert outcome(done) == "done", text(done)
    assert await identities(lkapi, room) == set()


async def test_an_expired_state_is_refused_by_the_servers_clock(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    """Answered a second before LIVEKIT_MCP_CONFIRM_TTL is up, a state acts; a second after, it is refused."""
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    await admin.join(room, "eve")
    clock = Clock()
    async with replicas(fleet_env(livekit, redis_url, confirm_ttl=str(TTL)), clock) as balancer, modern(balancer) as c:
        state, yes = await first_round(c, room)
        clock.now += TTL - 1
        done = await second_round(c, room, state, yes)
        assert outcome(done) == "done", text(done)
        state, yes = await first_round(c, room, "eve")
        clock.now += TTL + 1
        with pytest.raises(MCPError) as caught:
            await second_round(c, room, state, yes, "eve")
        assert caught.value.message == REFUSED
    assert await identities(lkapi, room) == {"eve"}


async def test_a_state_used_once_is_refused_on_either_replica_even_in_flight(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    async with replicas(fleet_env(livekit, redis_url)) as balancer, modern(balancer) as c:
        state, yes = await first_round(c, room)
        # LiveKit slow to remove her: the same answer sent twice at once, one to each replica; both would act.
        await admin.fault("RoomService/RemoveParticipant", latency_ms=1000, times=1)
        outcomes: list[str] = []

        async def answer() -> None:
            try:
                result = await second_round(c, room, state, yes)
                outcomes.append(
                    str((result.structured_content or {}).get("outcome")) if not result.is_error else "error"
                )
            except MCPError as exc:
                outcomes.append(exc.message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            tg.start_soon(answer)
        assert sorted(outcomes) == sorted(["done", REFUSED]), outcomes
        assert len(set(balancer.rounds()[-2:])) == 2  # one to each replica
        assert await identities(lkapi, room) == set()
        # Replayed later, on either replica, after she rejoined: refused, she stays.
        await admin.join(room, "dana")
        await refused(c, room, state, yes)
        await refused(c, room, state, yes)
        assert len(set(balancer.rounds()[-2:])) == 2
    assert await identities(lkapi, room) == {"dana"}


async def test_another_principals_state_is_refused(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    """Bob's token, or Alice's bot acting for someone else (X-On-Behalf-Of), cannot send Alice's state back; she
    still can, since the refusals did not spend it."""
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    async with (
        replicas(fleet_env(livekit, redis_url)) as balancer,
        modern(balancer, ALICE, **{"X-On-Behalf-Of": "carol"}) as alice,
    ):
        state, yes = await first_round(alice, room)
        async with modern(balancer, BOB, **{"X-On-Behalf-Of": "carol"}) as bob:
            await refused(bob, room, state, yes)
        async with modern(balancer, ALICE, **{"X-On-Behalf-Of": "mallory"}) as other:
            await refused(other, room, state, yes)
        assert await identities(lkapi, room) == {"dana"}
        done = await second_round(alice, room, state, yes)
    assert outcome(done) == "done", text(done)
    assert await identities(lkapi, room) == set()


# --- Keys: another deployment's refused, a rotation refuses nothing ---------------------------------------------


async def test_a_state_sealed_under_another_key_or_for_another_deployment_is_refused(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    base = fleet_env(livekit, redis_url)
    other_key = fleet_env(livekit, redis_url, confirm_key=NEXT_KEY)
    other_deployment = fleet_env(livekit, redis_url, public_url="https://other.example.com/mcp")
    for second in (other_key, other_deployment):
        async with replicas(base, second=second) as balancer, modern(balancer) as c:
            state, yes = await first_round(c, room)  # sealed by the first replica, answered to the second
            await refused(c, room, state, yes)
            assert balancer.rounds()[-2:] == [0, 1]
    assert await identities(lkapi, room) == {"dana"}


async def test_rotating_the_key_refuses_no_confirmation_in_flight(
    livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI, redis_url: str
) -> None:
    """Mid-rotation one replica still seals with the old key and the other with the new one, each accepting the
    other's: a question asked by either is answered on the other. Once the old key is dropped, its states are not."""
    room = f"fleet-{uuid.uuid4().hex[:6]}"
    for who in ("dana", "eve", "finn"):
        await admin.join(room, who)
    old = fleet_env(livekit, redis_url, confirm_previous_keys=NEXT_KEY)
    new = fleet_env(livekit, redis_url, confirm_key=NEXT_KEY, confirm_previous_keys=KEY)
    async with replicas(old, second=new) as balancer:
        for who in ("dana", "eve"):
            async with through(balancer, elicitation_callback=person({"confirm": True}, [])) as c:
                data = await ok(c, "remove_participant", room=room, identity=who)
            assert data["outcome"] == "done"
        first, second, third, fourth = balancer.rounds()
        assert (first, second, third, fourth) == (0, 1, 1, 0)  # asked by the old key's replica, then by the new's
    assert await identities(lkapi, room) == {"finn"}
    done = fleet_env(livekit, redis_url, confirm_key=NEXT_KEY)
    async with replicas(old, second=done) as balancer, modern(balancer) as c:
        await admin.join(room, "dana")
        state, yes = await first_round(c, room)  # sealed with the old key, which the second no longer holds
        await refused(c, room, state, yes)
    assert await identities(lkapi, room) == {"dana", "finn"}


async def test_a_confirm_token_signed_with_the_previous_key_still_acts(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    room = f"rotate-{uuid.uuid4().hex[:6]}"
    await admin.join(room, "dana")
    before = in_process(env=guarded(livekit, confirm_key=KEY))
    after = in_process(env=guarded(livekit, confirm_key=NEXT_KEY, confirm_previous_keys=KEY))
    dropped = in_process(env=guarded(livekit, confirm_key=NEXT_KEY))
    async with Client(before) as c:
        token = (await ok(c, "remove_participant", room=room, identity="dana"))["confirm_token"]
    async with Client(dropped) as c:
        result = await c.call_tool("remove_participant", {"room": room, "identity": "dana", "confirm_token": token})
    assert result.is_error
    assert "not a token this server issued" in text(result)
    assert await identities(lkapi, room) == {"dana"}
    async with Client(after) as c:
        assert (await ok(c, "remove_participant", room=room, identity="dana", confirm_token=token))["outcome"] == "done"
    assert await identities(lkapi, room) == set()


def test_previous_keys_are_refused_when_short_or_without_a_key_and_are_kept_out_of_logs() -> None:
    with pytest.raises(ValidationError, match="LIVEKIT_MCP_CONFIRM_PREVIOUS_KEYS entry needs 32 bytes"):
        Settings(confirm_key=KEY, confirm_previous_keys="short")
    with pytest.raises(ValidationError, match="without LIVEKIT_MCP_CONFIRM_KEY"):
        Settings(confirm_previous_keys=KEY)
    settings = Settings(confirm_key=NEXT_KEY, confirm_previous_keys=f"{KEY}, {KEY[::-1]}")
    assert settings.confirm_keys() == [NEXT_KEY.encode(), KEY.encode(), KEY[::-1].encode()]
    assert {KEY, KEY[::-1], NEXT_KEY} <= set(settings.secrets())
    assert KEY not in repr(settings)


@pytest.mark.parametrize("key", [None, KEY])
async def test_stateless_replicas_without_a_confirm_key_are_warned_about_at_start(
    livekit: LiveKitTarget, caplog: pytest.LogCaptureFixture, key: str | None
) -> None:
    env = guarded(livekit, **({"confirm_key": key} if key else {}))
    with caplog.at_level(logging.WARNING, logger="livekit_mcp.app"):
        async with http_in_process(env, stateless=True):
            pass
    warned = [r.getMessage() for r in caplog.records if "LIVEKIT_MCP_CONFIRM_KEY" in r.getMessage()]
    assert len(warned) == (0 if key else 1), warned
