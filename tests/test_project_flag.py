"""`--project NAME` at the edges (issue 22, finding 3): every command that takes it acts on that project alone,
with that project's own key and secret, even when LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET of another
deployment are in the environment (as `lk --project NAME` ignores them).

The receivers are built in this process from their settings and posted to over ASGI, with webhooks signed as
LiveKit's URL notifier signs them; `check` runs in process; the Slack app's part is in tests/test_slack.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from livekit import api
from mcp import Client
from mcp.client.stdio import get_default_environment

from livekit_mcp.app import webhooks_app
from livekit_mcp.check import run_check
from livekit_mcp.config import Settings
from livekit_mcp.errors import StartupError
from livekit_mcp.sandbox import SandboxAdmin
from livekit_mcp.slack.mcp_client import LiveKitTools
from livekit_mcp.store import MemoryStore, Store, open_store
from tests.asgi import asgi_client
from tests.conftest import InProcess, LiveKitTarget, environment, http_in_process, identities, ok, run_cli_here
from tests.test_projects import lk_file
from tests.test_webhooks import signed, webhook

pytestmark = pytest.mark.anyio

ELSEWHERE = LiveKitTarget("http://127.0.0.1:9", "APIelsewhere", "secret-of-another-deployment-0123456789")
"""Another deployment, named by the LIVEKIT_* variables: nothing listens there (the discard port)."""
PATH = "http://127.0.0.1:8000/webhooks/livekit"


def env_with_both(home: Path, livekit: LiveKitTarget) -> dict[str, str]:
    """lk's file with project `prod` (the sandbox, its own key), and the LIVEKIT_* variables of another deployment."""
    lk_file(home, {"prod": livekit, "broken": ELSEWHERE}, default="broken")
    return get_default_environment() | {
        "HOME": str(home),
        "LIVEKIT_URL": ELSEWHERE.url,
        "LIVEKIT_API_KEY": ELSEWHERE.api_key,
        "LIVEKIT_API_SECRET": ELSEWHERE.api_secret,
        "LIVEKIT_MCP_STORE": "memory",
    }


async def deliver(http: httpx2.AsyncClient, body: bytes, key: str, secret: str) -> int:
    answer = await http.post(
        PATH,
        content=body,
        headers={"Authorization": signed(body, key, secret), "Content-Type": "application/webhook+json"},
    )
    return answer.status_code


async def kept_ids(store: Store) -> set[str]:
    return {event.id for event in (await store.events(None, 0, 100)).events}


async def test_serve_with_project_takes_that_projects_webhooks_and_refuses_the_other_deployments(
    tmp_path: Path, livekit: LiveKitTarget
) -> None:
    own, other = webhook("room_started", event_id="EV_own"), webhook("room_started", event_id="EV_other")
    kept = tmp_path / "history.sqlite3"
    env = env_with_both(tmp_path, livekit) | {"LIVEKIT_MCP_STORE": str(kept)}
    async with http_in_process(env, project="prod") as served, asgi_client(served.app) as http:
        assert await deliver(http, own, livekit.api_key, livekit.api_secret) == 200
        assert await deliver(http, other, ELSEWHERE.api_key, ELSEWHERE.api_secret) == 401
    store = open_store(str(kept))
    try:
        assert await kept_ids(store) == {"EV_own"}
    finally:
        await store.aclose()


@asynccontextmanager
async def webhooks_command(env: dict[str, str], **flags: str) -> AsyncIterator[tuple[httpx2.AsyncClient, Store]]:
    """`livekit-mcp webhooks` built in this process as the command line builds it, posted to over ASGI."""
    store = MemoryStore()
    with environment(env):
        app = webhooks_app(Settings.load(None, **flags), store)
    async with asgi_client(app) as http:
        yield http, store


async def test_the_webhooks_command_with_project_takes_that_projects_key_not_the_environments(
    tmp_path: Path, livekit: LiveKitTarget
) -> None:
    own, other = webhook("room_started", event_id="EV_own"), webhook("room_started", event_id="EV_other")
    async with webhooks_command(env_with_both(tmp_path, livekit), project="prod") as (http, store):
        assert await deliver(http, other, ELSEWHERE.api_key, ELSEWHERE.api_secret) == 401
        assert await deliver(http, own, livekit.api_key, livekit.api_secret) == 200
        assert await kept_ids(store) == {"EV_own"}
    # Without --project, the variables are the project (lk's order): their webhooks are the ones taken.
    async with webhooks_command(env_with_both(tmp_path, livekit)) as (http, store):
        assert await deliver(http, own, livekit.api_key, livekit.api_secret) == 401
        assert await deliver(http, other, ELSEWHERE.api_key, ELSEWHERE.api_secret) == 200
        assert await kept_ids(store) == {"EV_other"}


def test_check_with_project_checks_that_project_alone(
    tmp_path: Path, livekit: LiveKitTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    with environment(env_with_both(tmp_path, livekit)):
        settings = Settings.load(None, project="prod", timeout=2.0)
        assert run_check(settings) == 0  # `broken` and the variables' deployment do not answer: not checked
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(
        f"prod (default): URL {livekit.url}: answers; API key '{livekit.api_key}' and secret: accepted"
    )


@pytest.mark.parametrize(
    ("command", "source", "said"),
    [
        ("serve", "--dev", "but --dev is `lk --dev`'s project alone: give one or the other"),
        ("slack", "--dev", "but --dev is `lk --dev`'s project alone: give one or the other"),
        ("slack", "--sandbox", "which is not a project of --sandbox (known: staging, production)"),
    ],
)
def test_a_project_the_source_has_not_is_refused_at_start_rather_than_ignored(
    command: str, source: str, said: str, tmp_path: Path
) -> None:
    env = get_default_environment() | {"HOME": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x"}
    done = run_cli_here(command, source, "--project", "prod", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"livekit-mcp: --project/LIVEKIT_MCP_PROJECT names 'prod', {said}"]


async def test_the_slack_apps_calls_name_its_project_whatever_the_servers_default(
    tmp_path: Path, livekit: LiveKitTarget, in_process: InProcess, admin: SandboxAdmin
) -> None:
    """`slack --project prod --mcp-url …` against a service whose default is another project: every call (a
    destructive one's confirmation too) names prod."""
    await admin.join("prod-room", "someone")
    server = in_process(env=env_with_both(tmp_path, livekit) | {"LIVEKIT_MCP_CONFIRM": "auto"}, project="broken")
    async with LiveKitTools(server=server, project="prod") as tools:
        rooms = await tools.call("list_rooms", {}, "slack:U1")
        asked = await tools.call("remove_participant", {"room": "prod-room", "identity": "someone"}, "slack:U1")
        token = asked.data["confirm_token"]
        done = await tools.call(
            "remove_participant", {"room": "prod-room", "identity": "someone", "confirm_token": token}, "slack:U1"
        )
    assert rooms.ok, rooms.text
    assert "prod-room" in {r["name"] for r in rooms.data["rooms"]}
    assert (asked.outcome, done.outcome) == ("confirmation_required", "done")
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        assert await identities(lk, "prod-room") == set()


async def test_sandbox_with_project_makes_that_sandbox_the_default_and_its_webhooks_the_history(
    in_process: InProcess, livekit: LiveKitTarget
) -> None:
    server = in_process(env=livekit.env(), credentials="sandbox", project="production")
    async with Client(server) as client:
        listed = await ok(client, "list_projects")
        await ok(client, "create_room", room="made-in-production")  # no project: the default's
        with anyio.fail_after(20):
            while not (await ok(client, "room_history", room="made-in-production")).get("sessions"):  # noqa: ASYNC110
                await anyio.sleep(0.05)  # the sandbox's webhook reaches the receiver in its own time
        staging = await ok(client, "list_rooms", project="staging", limit=500)
    assert [(p["name"], p["default"]) for p in listed["projects"]] == [("staging", False), ("production", True)]
    assert "made-in-production" not in {r["name"] for r in staging["rooms"]}
    with pytest.raises(StartupError, match="names 'prod', which is not a project of --sandbox"):
        in_process(env=livekit.env(), credentials="sandbox", project="prod")
