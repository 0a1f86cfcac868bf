"""Start-up: the server answers its first client without loading what only a LiveKit call needs.

livekit-api's Twirp client (with aiohttp), PyJWT, protobuf's json_format, livekit's protocol modules (the agent
dispatch one first) and rich's console took ~90 ms of the cold start and ~20 MiB of idle memory, and no answer
before the first LiveKit call needs them (bench/README.md, figures 2 and 7). One process, started as a host starts
it, is asked `initialize` and `tools/list`; what it had imported when it exits is what start-up cost.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment

from livekit_mcp import heap
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio

LOADED_BY_THE_FIRST_LIVEKIT_CALL = [
    "livekit.api.twirp_client",
    "livekit.api.livekit_api",
    "aiohttp.client",
    "jwt",
    "google.protobuf.json_format",
    "livekit.protocol.agent_dispatch",
    "rich.console",
]
# And what only serving HTTP (uvicorn's h11 protocol; uvicorn itself comes with the SDK) or reading lk's own file
# of projects (PyYAML) needs: ~25 ms more.
LOADED_BY_HTTP_OR_LKS_FILE = ["h11", "uvicorn.protocols.http.h11_impl", "yaml"]

# The command line's own entry, run as `python -c`: once it exits, it writes the names of the modules imported, and
# how many objects the garbage collector was told to leave alone (`livekit_mcp.heap`).
ENTRY = """
import atexit, gc, json, sys
out = sys.argv.pop(1)
state = lambda: {"modules": sorted(sys.modules), "frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
atexit.register(lambda: open(out, "w").write(json.dumps(state())))
from livekit_mcp.cli import main
main()
"""


async def test_the_first_answers_load_nothing_only_a_livekit_call_needs(tmp_path: Path) -> None:
    modules = tmp_path / "modules.json"
    env = get_default_environment() | {
        # No LiveKit answers here: no call can have been made, whatever the server tried.
        "LIVEKIT_URL": "http://127.0.0.1:9",
        "LIVEKIT_API_KEY": "startup",
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_MCP_STORE": "memory",  # history on (the default), in memory: its webhook receiver is built too
        "HOME": str(tmp_path),  # no ~/.livekit/cli-config.yaml
    }
    server = StdioServerParameters(command=sys.executable, args=["-c", ENTRY, str(modules)], env=env)
    async with Client(server, mode="legacy") as client:  # initialize, then tools/list
        assert len((await client.list_tools()).tools) > 10
    state = json.loads(modules.read_text())
    loaded = set(state["modules"])
    assert {"livekit_mcp.app", "livekit_mcp.livekit_backend"} <= loaded  # the entry did run the server
    assert [m for m in LOADED_BY_THE_FIRST_LIVEKIT_CALL + LOADED_BY_HTTP_OR_LKS_FILE if m in loaded] == []
    # What start-up loaded is frozen (tens of thousands of objects), and the young are collected less often.
    assert state["frozen"] > 10_000
    assert state["young"] == heap.YOUNG_OBJECTS


async def test_the_seam_used_in_another_process_leaves_its_garbage_collector_alone() -> None:
    """Only the server's own entry (`app.run`) freezes its heap: a test, or a host that uses the LiveKit seam as a
    library, keeps its collector as it was, the first LiveKit call included."""
    from aiohttp import web
    from pydantic import SecretStr

    from livekit_mcp.livekit_backend import LiveKit
    from tests.conftest import impostor_livekit

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="application/protobuf")

    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    async with impostor_livekit(empty) as url, LiveKit(url, "key", SecretStr(SECRET), timeout=5, concurrency=2) as lk:
        assert await lk.list_participants("room") == []
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, threshold)
