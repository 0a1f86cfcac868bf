"""Hostile arguments to every tool, through the MCP SDK's client, generated with hypothesis from each tool's own
input schema: unicode, control characters, huge strings, wrong types, nested junk, missing and unknown fields,
mixed with plausible values so that many calls get past validation to LiveKit.

Whatever comes in, the answer is a result or a tool error with a message (never a protocol error, a crash or a
traceback), and the sandbox changes only when a tool that changes things succeeded.

Examples per tool: HYPOTHESIS_PROFILE=ci (the default, for CI) or soak (thousands of calls in all).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import Tool

from livekit_mcp.config import TOOLSETS
from livekit_mcp.sandbox import SandboxAdmin
from tests.conftest import LiveKitTarget, Served, no_secret, text

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # CI runs the same examples every time, so a red run can be reproduced; soak explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# When a filtered draw is retried, hypothesis names the strategy in an event, and the repr of a strategy built
# from a whole input schema is large enough to earn its own warning: about hypothesis's bookkeeping, not our code.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")

# Names that exist in the sandbox the tests set up, so that plausible calls reach LiveKit and some succeed.
ROOM, EMPTY_ROOM, HUMAN, AGENT, AGENT_NAME = "r", "empty", "alice", "agent-1", "helper"
# Values of the SIP, egress and ingress arguments' shapes (ids, a phone number, a transfer target, a pull URL).
SHAPED = ["ST_x1", "EG_x1", "IN_x1", "+15550100", "tel:+15550100", "sip:desk@example.com", "https://x.test/a"]
NAMES = [ROOM, EMPTY_ROOM, HUMAN, AGENT, AGENT_NAME, *SHAPED]

unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # JSON cannot carry lone surrogates
control = st.builds(
    lambda a, c, b: a + c + b, st.sampled_from(NAMES), st.sampled_from(["\x00", "\n", "\x1b[2J", "\x7f"]), unicode
)


class Huge(str):
    """A long string that shows itself briefly when hypothesis reports an example."""

    def __repr__(self) -> str:
        return f"Huge({self[0]!r} * {len(self)})"


huge = st.builds(
    lambda c, n: Huge(c * n), st.sampled_from(["x", "é", "🙂", " "]), st.sampled_from([257, 1025, 70_000, 530_000])
)
names = st.sampled_from(NAMES)
strings = st.one_of(names, names, unicode, control, huge)  # one_of picks branches alike: names twice as often
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode, inner, max_size=4),
    max_leaves=8,
)


def plausible(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the schema's shape, some just outside its limits."""
    if "$ref" in schema:
        return plausible(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return st.one_of([plausible(branch, defs) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | strings
    match schema.get("type"):
        case "string":
            return strings
        case "integer":
            low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
            return st.integers(low - 1, high + 1) | st.sampled_from([low - 1, low, high, high + 1, 2**64])
        case "boolean":
            return st.booleans()
        case "array":
            return st.lists(plausible(schema.get("items", {}), defs), max_size=4)
        case "object" if "properties" in schema:
            return arguments(schema, defs)
        case "object":
            return st.dictionaries(strings, plausible(schema.get("additionalProperties", {}), defs), max_size=4)
        case "null":
            return st.none()
    return junk


def arguments(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Argument objects: each field plausible or junk, any of them missing, sometimes with unknown fields."""
    # Mostly of the right shape, so that many calls get past validation to LiveKit.
    fields = {
        name: st.one_of([plausible(prop, defs)] * 3 + [junk]) for name, prop in schema.get("properties", {}).items()
    }
    required = {name: fields[name] for name in schema.get("required", [])}
    complete = st.fixed_dictionaries(required, optional={k: v for k, v in fields.items() if k not in required})
    anything = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(unicode, junk, max_size=2)
    # Under the transport's 4 MiB limit on a request, which it answers with HTTP 413 before any tool sees it.
    return st.builds(lambda args, more: {**more, **args}, complete | anything, extra).filter(
        lambda args: len(json.dumps(args, ensure_ascii=False).encode()) < 3_500_000
    )


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread: hypothesis drives examples synchronously, the clients are async."""
    with start_blocking_portal("asyncio") as portal:
        yield portal


@pytest.fixture(scope="module")
def client(portal: BlockingPortal, livekit: LiveKitTarget, serve_http: Callable[..., Served]) -> Iterator[Client]:
    """Every toolset, recording to a stream."""
    env = livekit.env(LIVEKIT_MCP_EGRESS_OUTPUT="rtmp://live.example.com/app/key")
    served = serve_http("--toolsets", ",".join(TOOLSETS), env=env)
    with portal.wrap_async_context_manager(Client(served.url)) as client:
        yield client


@pytest.fixture(scope="module")
def sandbox(portal: BlockingPortal, livekit: LiveKitTarget) -> Iterator[SandboxAdmin]:
    with portal.wrap_async_context_manager(SandboxAdmin(livekit.url, livekit.api_key, livekit.api_secret)) as admin:
        yield admin


@pytest.fixture(scope="module")
def tools(portal: BlockingPortal, client: Client) -> dict[str, Tool]:
    return {tool.name: tool for tool in portal.call(client.list_tools).tools}


async def populate(admin: SandboxAdmin) -> dict[str, Any]:
    """A room with a human (with a track) and an agent, an empty room; the state the sandbox then has (its SIP,
    egress and ingress stores empty: a dial-out, a recording or an ingress that succeeds changes it)."""
    await admin.clear_faults()
    await admin.reset(seed=False)
    await admin.join(ROOM, HUMAN, tracks=[{"type": "AUDIO"}], attributes={"a": "1"})
    await admin.join_agent(ROOM, AGENT_NAME, identity=AGENT)
    await admin.join(EMPTY_ROOM, "x")
    await admin.leave(EMPTY_ROOM, "x")
    return await state(admin)


async def state(admin: SandboxAdmin) -> dict[str, Any]:
    snapshot = await admin.state()
    snapshot.pop("peak_in_flight", None)  # reads count there; it is not LiveKit's state
    return snapshot


# The SDK's whole text for a crash: the tool's name and nothing about why.
CRASH = re.compile(r"(Error executing tool \w+(: )?)+")


# Every tool of the public interface (the tools/list snapshot of every toolset).
SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


@pytest.mark.parametrize("tool", [t["name"] for t in json.loads(SNAPSHOT.read_text())])
def test_hostile_arguments_get_a_clean_answer_and_change_only_what_a_successful_change_asked_for(
    tool: str, portal: BlockingPortal, client: Client, sandbox: SandboxAdmin, tools: dict[str, Tool]
) -> None:
    schema = tools[tool].input_schema
    annotations = tools[tool].annotations
    changes = not (annotations and annotations.read_only_hint)
    before = [portal.call(populate, sandbox)]

    @PROFILE
    @given(args=arguments(schema, schema.get("$defs", {})))
    def answer_is_clean(args: dict[str, Any]) -> None:
        result = portal.call(client.call_tool, tool, args)  # a protocol error raises here and fails the test
        event("tool error" if result.is_error else "result")
        after = portal.call(state, sandbox)
        if result.is_error:
            message = text(result)
            assert message.strip()
            assert not CRASH.fullmatch(message.strip()), f"a crash: {message!r}"
            assert "Traceback" not in message
            no_secret(message)
        else:
            assert isinstance(result.structured_content, dict)
        if result.is_error or not changes:
            assert after == before[0], f"{tool}({args!r}) changed the sandbox and answered: {text(result)[:500]}"
        elif after != before[0]:
            before[0] = portal.call(populate, sandbox)  # a change that was asked for: start again from the setup

    answer_is_clean()


# Lone surrogates: valid JSON escapes, but no Python client encodes them, so they are sent by hand (2026-07-28,
# where a request needs no session).
CALL = (
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s,"_meta":{'
    '"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    '"io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},'
    '"io.modelcontextprotocol/clientCapabilities":{}}}}'
)


@pytest.mark.parametrize(
    ("tool", "arguments_json"),
    [
        ("list_rooms", r'{"names": ["\ud800r"]}'),
        ("get_room", r'{"room": "r\udc00"}'),
        ("update_participant", r'{"room": "r", "identity": "alice", "attributes": {"\ud800": "x"}}'),
        ("send_data", r'{"room": "r", "data": "\udbff"}'),
    ],
)
@pytest.mark.anyio
async def test_lone_surrogates_in_arguments_are_a_clean_tool_error(
    http_server: Served, tool: str, arguments_json: str
) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            content=(CALL % (tool, arguments_json)).encode(),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/call",
                "Mcp-Name": tool,
            },
        )
    result = response.json()["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith(f"invalid arguments for {tool}, nothing was sent to LiveKit: ")
    no_secret(response.text)
