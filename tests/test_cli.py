"""The command line as a new user meets it: missing credentials, check, sandbox, demo."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from livekit import api
from mcp import Client
from mcp.client.stdio import get_default_environment

from tests.conftest import SECRET, LiveKitTarget, free_port, no_secret, run_cli, spawn, stdio, stop


def test_missing_credentials_is_one_line_on_stderr_naming_them_and_exit_status_2() -> None:
    done = run_cli()
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert name in lines[0]


def test_only_the_missing_variables_are_named() -> None:
    env = get_default_environment() | {"LIVEKIT_URL": "http://127.0.0.1:1", "LIVEKIT_API_KEY": "k"}
    done = run_cli("serve", "--transport", "http", env=env)
    assert done.returncode == 2
    assert "LIVEKIT_API_SECRET" in done.stderr
    assert "LIVEKIT_URL" not in done.stderr


def test_an_invalid_setting_names_the_setting() -> None:
    env = get_default_environment() | {"LIVEKIT_MCP_TIMEOUT": "soon"}
    done = run_cli("--sandbox", env=env)
    assert done.returncode == 2
    assert "timeout" in done.stderr


def test_version_is_printed() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("livekit-mcp ")


def test_check_says_the_url_answers_and_the_key_is_accepted(livekit: LiveKitTarget) -> None:
    done = run_cli("check", env=livekit.env())
    assert done.returncode == 0, done.stderr
    assert "answers" in done.stdout
    assert "accepted" in done.stdout
    no_secret(done.stdout, done.stderr)


def test_check_says_the_key_is_rejected(livekit: LiveKitTarget) -> None:
    done = run_cli("check", env=livekit.env(LIVEKIT_API_SECRET="wrong-secret-xyz"))
    assert done.returncode == 1
    assert "answers" in done.stdout
    assert "rejected" in done.stdout
    assert "wrong-secret-xyz" not in done.stdout + done.stderr


def test_check_says_the_url_does_not_answer(livekit: LiveKitTarget) -> None:
    done = run_cli("check", env=livekit.env(LIVEKIT_URL=f"http://127.0.0.1:{free_port()}"))
    assert done.returncode == 1
    assert "no answer" in done.stdout
    no_secret(done.stdout, done.stderr)


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the public dev secret is short
@pytest.mark.parametrize(("flags", "seeded"), [((), True), (("--empty",), False)])
async def test_sandbox_command_serves_livekit_to_the_official_client(
    tmp_path: Path, flags: tuple[str, ...], seeded: bool
) -> None:
    port = free_port()
    process = spawn(["sandbox", "--port", str(port), *flags], get_default_environment(), tmp_path / "log", port)
    try:
        async with api.LiveKitAPI(f"http://127.0.0.1:{port}", "devkey", "secret") as lk:
            rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
            assert bool(rooms) is seeded
            created = await lk.room.create_room(api.CreateRoomRequest(name="mine"))
            assert created.sid.startswith("RM_")
    finally:
        stop(process)


def test_demo_finds_the_agent_removes_it_and_deletes_a_room() -> None:
    done = run_cli("demo", timeout=90)
    assert done.returncode == 0, done.stderr
    for step in (">>> list_rooms", ">>> find_agent", ">>> remove_agent", ">>> delete_room"):
        assert step in done.stdout
    assert "[the server asks the user] This removes agent(s)" in done.stdout
    assert "Removed 1 agent(s) from 'support-call-1042'" in done.stdout
    assert "confirm_token=" in done.stdout  # the bot part: a token instead of a question
    assert "deleted dispatch" in done.stdout
    assert "Deleted room 'town-hall'" in done.stdout
    assert SECRET not in done.stdout


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the public dev secret is short
async def test_dev_flag_uses_the_lk_dev_defaults_like_a_local_livekit_server(tmp_path: Path) -> None:
    # `livekit-mcp sandbox` on :7880 with devkey/secret stands in for `livekit-server --dev`.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7880)) == 0:
            pytest.skip("port 7880 is taken on this machine")
    process = spawn(["sandbox", "--port", "7880"], get_default_environment(), tmp_path / "log", 7880)
    try:
        checked = run_cli("check", "--dev")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "http://localhost:7880: answers" in checked.stdout
        assert "API key 'devkey' and secret: accepted" in checked.stdout
        async with Client(stdio(get_default_environment(), "--dev")) as client:
            rooms = await client.call_tool("list_rooms", {})
        assert not rooms.is_error
        assert isinstance(rooms.structured_content, dict)
        assert rooms.structured_content["total"] > 0
    finally:
        stop(process)
