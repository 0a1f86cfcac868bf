"""What a new user sees when something is off, or when all is well (issue 22, item 13): one line and exit 2 for a
sandbox on a busy port, no PyJWT warning for `--dev`'s short secret, start-up notices at INFO, and a mistyped room
name reported as a mismatch rather than as "the user declined".

The CLI runs in this process (`livekit_mcp.cli.main`, read with capsys); the server is built in process and driven
with the SDK's client.
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest
from livekit import api
from mcp import Client

from livekit_mcp.cli import main
from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from tests.conftest import InProcess, LiveKitTarget, Served, call, room_names, text
from tests.test_guardrails import answering, guarded, support_room


def test_the_sandbox_on_a_busy_port_says_so_in_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            main(["sandbox", "--port", str(port)])
    assert exited.value.code == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err.splitlines() == [
        f"livekit-mcp: the sandbox cannot listen on 127.0.0.1 port {port}: Address already in use; --port picks another"
    ]


@pytest.mark.anyio
async def test_dev_s_short_secret_brings_no_pyjwt_warning(in_process: InProcess, tmp_path: Path) -> None:
    """`--dev` is livekit-server --dev's key and 6-byte secret "secret": a sandbox with that key stands in for it."""
    async with Sandbox(keys={"devkey": "secret"}, seed=True) as sandbox:
        dev = LiveKitTarget(sandbox.url, "devkey", "secret")
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            async with Client(in_process(env=dev.env(LIVEKIT_MCP_TOOLSETS="rooms,tokens"))) as bot:
                rooms = await call(bot, "list_rooms")
                token = await call(bot, "create_join_token", room="lobby", identity="ann")
    assert not rooms.is_error, text(rooms)
    assert not token.is_error, text(token)
    assert [str(w.message) for w in seen if "HMAC key" in str(w.message)] == []


def test_the_start_up_notice_is_info_and_still_shown_by_default(http_server: Served) -> None:
    (notice,) = [line for line in http_server.stderr().splitlines() if "serving MCP over HTTP" in line]
    assert " INFO livekit_mcp.started " in notice
    assert " WARNING " not in notice


@pytest.mark.anyio
async def test_a_mistyped_room_name_is_a_mismatch_naming_the_room_not_a_refusal(
    in_process: InProcess, livekit: LiveKitTarget, admin: SandboxAdmin, lkapi: api.LiveKitAPI
) -> None:
    await support_room(admin)
    asked: list[str] = []
    async with Client(in_process(env=guarded(livekit)), elicitation_callback=answering("accept", asked, "suport")) as c:
        result = await call(c, "delete_room", room="support")
    assert not result.is_error, text(result)
    said = text(result)
    assert said.startswith(
        "Not done: the name typed, 'suport', is not the room's name 'support'. Nothing was changed. "
        "Call delete_room again and type 'support' exactly to go ahead."
    )
    assert "declined" not in said
    assert "support" in await room_names(lkapi)
