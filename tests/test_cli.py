"""The command line as a new user meets it: missing credentials, check, sandbox, demo."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import pytest
from livekit import api
from mcp import Client
from mcp.client.stdio import get_default_environment

from realkit.livekit_server import RealLiveKitServer
from realkit.processes import free_port, stop
from tests.conftest import SECRET, LiveKitTarget, no_secret, run_cli, run_cli_here, spawn, stdio


def test_missing_credentials_is_one_line_on_stderr_naming_them_and_exit_status_2() -> None:
    done = run_cli_here()
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert name in lines[0]


def test_only_the_missing_variables_are_named() -> None:
    env = get_default_environment() | {"LIVEKIT_URL": "http://127.0.0.1:1", "LIVEKIT_API_KEY": "k"}
    done = run_cli_here("serve", "--transport", "http", env=env)
    assert done.returncode == 2
    assert "LIVEKIT_API_SECRET" in done.stderr
    assert "LIVEKIT_URL" not in done.stderr


def test_an_invalid_setting_names_the_setting() -> None:
    env = get_default_environment() | {"LIVEKIT_MCP_TIMEOUT": "soon"}
    done = run_cli_here("--sandbox", env=env)
    assert done.returncode == 2
    assert "timeout" in done.stderr


def test_version_is_printed() -> None:
    done = run_cli_here("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("livekit-mcp ")


def test_check_says_the_url_answers_and_the_key_is_accepted(livekit: LiveKitTarget) -> None:
    done = run_cli_here("check", env=livekit.env())
    assert done.returncode == 0, done.stderr
    assert "answers" in done.stdout
    assert "accepted" in done.stdout
    no_secret(done.stdout, done.stderr)


def test_check_says_the_key_is_rejected(livekit: LiveKitTarget) -> None:
    done = run_cli_here("check", env=livekit.env(LIVEKIT_API_SECRET="wrong-secret-xyz"))
    assert done.returncode == 1
    assert "answers" in done.stdout
    assert "rejected" in done.stdout
    assert "wrong-secret-xyz" not in done.stdout + done.stderr


def test_check_says_the_url_does_not_answer(livekit: LiveKitTarget) -> None:
    done = run_cli_here("check", env=livekit.env(LIVEKIT_URL=f"http://127.0.0.1:{free_port()}"))
    assert done.returncode == 1
    assert "no answer" in done.stdout
    no_secret(done.stdout, done.stderr)


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the public dev secret is short
@pytest.mark.parametrize(("flags", "seeded"), [((), True), (("--empty",), False)])
async def test_sandbox_command_serves_livekit_to_the_official_client(
    tmp_path: Path, flags: tuple[str, ...], seeded: bool
) -> None:
    process, port = spawn(["sandbox", "--port", "0", *flags], get_default_environment(), tmp_path / "log")
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
    process, _ = spawn(["sandbox", "--port", "7880"], get_default_environment(), tmp_path / "log")
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


# -- `demo --dev` / `demo --env`: the tour on a real livekit-server --------------------------------------


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (the demo's agent worker carries its unique name)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_demo_on_a_real_livekit_server_tours_it_and_leaves_nothing_behind(
    real_livekit: RealLiveKitServer,
) -> None:
    # `demo --dev` is this with http://localhost:7880 and devkey/secret; the fixture's server is on a free port.
    env = get_default_environment() | {
        "LIVEKIT_URL": real_livekit.url,
        "LIVEKIT_API_KEY": real_livekit.api_key,
        "LIVEKIT_API_SECRET": real_livekit.api_secret,
    }
    done = run_cli("demo", "--env", env=env, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    suffix = re.search(r"support-call-([0-9a-f]{6})", done.stdout)
    assert suffix, done.stdout
    support, town_hall, standup = (f"{room}-{suffix[1]}" for room in ("support-call", "town-hall", "standup"))
    out = done.stdout
    assert 'sip_+15550100001 "Caller" SIP ACTIVE' in out  # the caller, joined over WebRTC with the SIP kind
    assert f"1 agent(s) in room '{support}'" in out  # found by the real worker's kind AGENT
    assert f"agent=demo-agent-{suffix[1]} state=listening" in out
    assert "[the server asks the user] This removes agent(s)" in out
    assert re.search(rf"Removed 1 agent\(s\) from '{support}': deleted dispatch AD_\w+", out)
    assert f"Deleted room '{town_hall}'; disconnected 3 STANDARD" in out
    assert "confirm_token=" in out
    assert f"Deleted room '{standup}'; disconnected 1 STANDARD" in out
    no_secret(out, done.stderr)
    assert real_livekit.api_secret not in out + done.stderr
    # Nothing is left: no room of the demo's (the support call went at the end, with its people), no worker.
    async with api.LiveKitAPI(real_livekit.url, real_livekit.api_key, real_livekit.api_secret) as lk:
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
    assert not [r.name for r in rooms if r.name.endswith(suffix[1])]
    assert not _processes_mentioning(f"demo-agent-{suffix[1]}")
    real_livekit.check_alive()


def test_demo_dev_without_a_livekit_server_says_so_in_one_line() -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7880)) == 0:
            pytest.skip("port 7880 is taken on this machine")
    done = run_cli("demo", "--dev", timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "livekit-mcp demo: no LiveKit server answers at http://localhost:7880; start one with `livekit-server --dev`"
    ]


def test_demo_dev_without_the_demo_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # The extra's modules made unfindable, as in an install without `livekit-mcp[demo]`.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('livekit.rtc', 'livekit.agents'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Missing())\n"
    )
    done = run_cli("demo", "--dev", env=get_default_environment() | {"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "livekit-mcp: demo --dev needs the LiveKit real-time SDK and livekit-agents: pip install 'livekit-mcp[demo]'"
    ]
