"""The MCP Inspector CLI (a client we did not write, on Node 22) drives the server over stdio.

`scripts/check` installs the Inspector; run by hand without it, these tests skip unless
LIVEKIT_MCP_TEST_NODE_TOOLS=required (as in CI), where a missing Inspector is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from livekit import api

from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import LIVEKIT_MCP, LiveKitTarget, identities, no_secret

INSPECTOR = Path(__file__).parent.parent / "tools" / "node" / "node_modules" / ".bin" / "mcp-inspector"


def _node_major() -> int:
    node = shutil.which("node")
    if node is None:
        return 0
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    return int(version.lstrip("v").split(".")[0] or 0)


if not INSPECTOR.exists() or _node_major() < 22:
    if os.environ.get("LIVEKIT_MCP_TEST_NODE_TOOLS") == "required":
        raise RuntimeError("the MCP Inspector or Node 22 is missing: run scripts/node-tools")
    pytest.skip("MCP Inspector / Node 22 not installed (scripts/check installs them)", allow_module_level=True)


def inspector(livekit: LiveKitTarget, *args: str) -> subprocess.CompletedProcess[str]:
    """`mcp-inspector --cli` against `livekit-mcp` on stdio, with the LiveKit variables passed as a host would."""
    env_flags = [flag for k, v in livekit.env().items() if k.startswith("LIVEKIT_") for flag in ("-e", f"{k}={v}")]
    return subprocess.run(
        [str(INSPECTOR), "--cli", "--format", "json", "--quiet", *env_flags, LIVEKIT_MCP, *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=os.environ | {"NO_COLOR": "1"},
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The `result` of the Inspector's `--format json` envelope."""
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["result"]


def test_inspector_lists_the_tools_with_schemas_and_annotations(livekit: LiveKitTarget) -> None:
    listed = as_json(inspector(livekit, "--method", "tools/list"))
    tools = (
        {t["name"]: t for t in listed["result"]["tools"] if isinstance(t, dict)}
        if "result" in listed
        else {t["name"]: t for t in listed["tools"]}
    )
    assert len(tools) == 19
    assert tools["find_agent"]["annotations"]["readOnlyHint"] is True
    assert tools["delete_room"]["annotations"]["destructiveHint"] is True
    assert "room" in tools["list_participants"]["inputSchema"]["required"]


@pytest.mark.anyio
async def test_inspector_finds_the_agent_and_removes_it(livekit: LiveKitTarget, admin: SandboxAdmin) -> None:
    await admin.join("support", "customer")
    agent = await admin.join_agent("support", "support-agent", state="thinking")
    found = as_json(
        inspector(livekit, "--method", "tools/call", "--tool-name", "find_agent", "--tool-arg", "room=support")
    )
    assert found["structuredContent"]["agents"][0]["identity"] == agent["identity"]
    assert found["structuredContent"]["agents"][0]["state"] == "thinking"
    removed = inspector(
        livekit,
        "--method",
        "tools/call",
        "--tool-name",
        "remove_participant",
        "--tool-args-json",
        json.dumps({"room": "support", "identity": agent["identity"]}),
    )
    assert as_json(removed)["structuredContent"]["kind"] == "AGENT"
    no_secret(removed.stdout, removed.stderr)
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        assert await identities(lk, "support") == {"customer"}


def test_inspector_sees_a_tool_error_for_a_missing_room(livekit: LiveKitTarget) -> None:
    done = inspector(livekit, "--method", "tools/call", "--tool-name", "delete_room", "--tool-arg", "room=ghost")
    assert done.returncode == 5  # the Inspector's exit code for an isError result
    assert "does not exist" in done.stdout + done.stderr
