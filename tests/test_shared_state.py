"""What replicas share through the store (issue 13, item 2): a confirm token acts once across all of them, and the
destructive-action budget is theirs together. Two real server processes on one real Redis, or one SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from livekit import api
from mcp import Client

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import LiveKitTarget, Served, call, identities, ok, text
from tests.test_guardrails import guarded

pytestmark = pytest.mark.anyio

KEY = "one-key-for-both-replicas-0123456789abcdef"


async def test_a_token_redeemed_on_one_replica_is_refused_on_the_other_even_in_flight(
    serve_http: Callable[..., Served],
    livekit: LiveKitTarget,
    admin: SandboxAdmin,
    lkapi: api.LiveKitAPI,
    redis_url: str,
) -> None:
    await admin.join("shared", "dana")
    env = guarded(livekit, confirm_key=KEY, store=redis_url)
    a, b = serve_http("--stateless", env=env), serve_http("--stateless", env=env)
    async with Client(a.url) as first:
        token = (await ok(first, "remove_participant", room="shared", identity="dana"))["confirm_token"]
    # LiveKit slow to remove her: the second replica plans while the first is still acting, and would act too.
    await admin.fault("RoomService/RemoveParticipant", latency_ms=1500, times=1)
    answers: dict[str, str] = {}

    async def redeem(name: str, served: Served) -> None:
        async with Client(served.url) as c:
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
    serve_http: Callable[..., Served],
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
    a, b = serve_http(env=env), serve_http(env=env)
    async with Client(a.url) as first, Client(b.url) as second:
        assert (await ok(first, "remove_participant", room=f"budget-{kind}", identity="ann"))["outcome"] == "done"
        refused = await call(second, "remove_participant", room=f"budget-{kind}", identity="ben")
    assert refused.is_error
    assert "max_destructive_per_minute" in text(refused)
    assert "across the replicas" in text(refused)
    assert await identities(lkapi, f"budget-{kind}") == {"ben"}
