"""What replicas share through the store (issue 13, item 2): a confirm token acts once across all of them, and the
destructive-action budget is theirs together, and so is room history. Two servers built in process on one real
Redis or one SQLite file, each with its own connection to it, as two processes have; two real server processes where
the sandbox must post its webhooks to one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import api
from mcp import Client
from mcp.server.mcpserver import MCPServer

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import InProcess, LiveKitTarget, Served, call, identities, ok, text
from tests.test_guardrails import guarded

pytestmark = pytest.mark.anyio

KEY = "one-key-for-both-replicas-0123456789abcdef"


async def test_a_token_redeemed_on_one_replica_is_refused_on_the_other_even_in_flight(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    redis_url: str,
) -> None:
    await admin.join("shared", "dana")
    env = guarded(livekit, confirm_key=KEY, store=redis_url)
    a, b = in_process(env=env), in_process(env=env)
    async with Client(a) as first:
        token = (await ok(first, "remove_participant", room="shared", identity="dana"))["confirm_token"]
    # LiveKit slow to remove her: the second replica plans while the first is still acting, and would act too.
    await admin.fault("RoomService/RemoveParticipant", latency_ms=1500, times=1)
    answers: dict[str, str] = {}

    async def redeem(name: str, served: MCPServer[Any]) -> None:
        async with Client(served) as c:
            result = await call(c, "remove_participant", room="shared", identity="dana", confirm_token=token)
            answers[name] = "error: " + text(result) if result.is_error else str(result.structured_content)

    async with anyio.create_task_group() as tg:
        tg.start_soon(redeem, "a", a)
        await anyio.sleep(0.5)
        tg.start_soon(redeem, "b", b)
    done = [name for name, answer in answers.items() if "'outcome': 'done'" in answer]
    refused = [name for name, answer in answers.items() if "already used" in answer]
    assert (len(done), len(refused)) == (1, 1), answers
    assert "confirm_token" in answers[refused[0]]
    assert await identities(lkapi, "shared") == set()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_the_destructive_budget_is_counted_across_replicas(
    in_process: InProcess,
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    store = str(tmp_path / "shared.sqlite3") if kind == "sqlite" else request.getfixturevalue("redis_url")
    if kind == "redis":
        import redis.asyncio

        async with redis.asyncio.Redis.from_url(store) as r:
            await r.flushdb()
    for who in ("ann", "ben"):
        await admin.join(f"budget-{kind}", who)
    env = livekit.env(LIVEKIT_MCP_STORE=store, LIVEKIT_MCP_MAX_DESTRUCTIVE_PER_MINUTE="1")
    a, b = in_process(env=env), in_process(env=env)
    async with Client(a) as first, Client(b) as second:
        assert (await ok(first, "remove_participant", room=f"budget-{kind}", identity="ann"))["outcome"] == "done"
        refused = await call(second, "remove_participant", room=f"budget-{kind}", identity="ben")
    assert refused.is_error
    assert "max_destructive_per_minute" in text(refused)
    assert "across the replicas" in text(refused)
    assert await identities(lkapi, f"budget-{kind}") == {"ben"}


async def test_two_replicas_on_one_redis_answer_the_same_history_whichever_received_the_webhooks(
    serve_http: Callable[..., Served],
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    redis_url: str,
) -> None:
    """The sandbox's webhooks reach replica A alone; replica B answers room_history and find_agent from the same
    Redis, and a change made through B is in the history A tells."""
    env = livekit.env(LIVEKIT_MCP_STORE=redis_url)
    a, b = serve_http(env=env), serve_http(env=env)
    room = f"replicated-{uuid.uuid4().hex[:6]}"
    await admin.send_webhooks_to([a.url.removesuffix("/mcp") + "/webhooks/livekit"])
    try:
        await admin.join(room, "dana", name="Dana")
        agent = await admin.join_agent(room, "support-agent")
        async with Client(a.url) as first, Client(b.url) as second:
            with anyio.fail_after(30):
                while "support-agent" not in text(await call(second, "room_history", room=room)):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            found = await ok(second, "find_agent")
            assert (room, agent["identity"]) in {(x["room"], x["identity"]) for x in found["agents"]}
            assert found["rooms_from_history"] >= 1
            await ok(second, "remove_participant", room=room, identity="dana")
            with anyio.fail_after(30):
                while "ran remove_participant" not in (told := text(await call(first, "room_history", room=room))):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
        assert "'dana' (Dana) joined" in told
        # Told as the effect of the change made through B (issue 22, item 12), with LiveKit's reason.
        assert "'dana' (Dana) left because anonymous (HTTP) ran remove_participant through livekit-mcp" in told
        assert "LiveKit's reason: PARTICIPANT_REMOVED" in told
        assert await identities(lkapi, room) == {agent["identity"]}
    finally:
        await admin.send_webhooks_to([])
