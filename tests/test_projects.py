"""Several LiveKit projects from one server, the way `lk` knows them (issue 15).

Two LiveKit servers at once with different keys: the REAL livekit-server (realkit/livekit_server.py) and the sandbox
of the session. The projects are read from `lk`'s own ~/.livekit/cli-config.yaml in a HOME of each test's own.
`lk` itself cannot be built here (the Go module proxy refuses livekit-cli), so the file is written in exactly the
bytes `lk project add` writes: yaml.v3's Marshal of livekit-cli's `config.CLIConfig` (`LK_WRITTEN` is what
yaml.v3 v3.0.1, the version lk pins, printed for it). Every change is checked on the servers themselves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from aiohttp import web
from livekit import api
from mcp import Client
from mcp.client.stdio import get_default_environment
from pydantic import SecretStr

from livekit_mcp.config import Settings
from livekit_mcp.projects import ProjectSpec, read_lk_file, toml_projects
from realkit.processes import free_port, stop
from tests.conftest import (
    SECRET,
    InProcess,
    LiveKitTarget,
    fails,
    http_in_process,
    impostor_livekit,
    ok,
    room_names,
    run_cli_here,
    spawn,
    text,
)
from tests.test_attacks_guardrails import bearer
from tests.test_webhooks import post, signed, webhook

pytestmark = pytest.mark.anyio

LK_WRITTEN = """\
default_project: staging
projects:
    - name: staging
      project_id: ""
      url: http://127.0.0.1:7880
      api_key: devkey
      api_secret: secret
    - name: "on"
      project_id: ""
      url: wss://x.livekit.cloud
      api_key: "12345"
      api_secret: 'a: b'
device_name: ""
theme: ""
"""
"""What yaml.v3 v3.0.1 writes for livekit-cli's CLIConfig with two projects (`lk project add` twice)."""


def lk_file(tmp_path: Path, projects: dict[str, LiveKitTarget], default: str, mode: int = 0o600) -> Path:
    """~/.livekit/cli-config.yaml as `lk project add NAME --url --api-key --api-secret` leaves it, in yaml.v3's
    layout (as `LK_WRITTEN`: four-space indent, every field, "" for empty ones; our values need no quotes)."""
    lines = [f"default_project: {default}", "projects:"]
    for name, target in projects.items():
        lines += [
            f"    - name: {name}",
            '      project_id: ""',
            f"      url: {target.url}",
            f"      api_key: {target.api_key}",
            f"      api_secret: {target.api_secret}",
        ]
    lines += ['device_name: ""', 'theme: ""']
    path = tmp_path / ".livekit" / "cli-config.yaml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(mode)
    return path


def env_of(home_dir: Path, **extra: str) -> dict[str, str]:
    """What a host gives the server: no LIVEKIT_* variables, only `lk`'s file under HOME."""
    return get_default_environment() | {
        "HOME": str(home_dir),
        "LIVEKIT_MCP_STORE": "memory",
        "LIVEKIT_MCP_CONFIRM": "off",
        **extra,
    }


@pytest.fixture
def both(livekit: LiveKitTarget, real_target: LiveKitTarget) -> dict[str, LiveKitTarget]:
    """The two servers, as the projects `real` (livekit-server) and `sandbox`."""
    assert livekit.api_key != real_target.api_key or livekit.api_secret != real_target.api_secret
    return {"real": real_target, "sandbox": livekit}


@pytest.fixture
async def rooms(lkapi: api.LiveKitAPI, real_lkapi: api.LiveKitAPI) -> AsyncIterator[Callable[[str], str]]:
    """Unique room names for a test; deleted afterwards from both servers, wherever the test made them."""
    created: list[str] = []

    def name(where: str) -> str:
        created.append(f"proj-{where}-{uuid.uuid4().hex[:8]}")
        return created[-1]

    yield name
    for client in (real_lkapi, lkapi):
        present = await room_names(client)
        for room in set(created) & present:
            await client.room.delete_room(api.DeleteRoomRequest(room=room))


async def make_room(client: api.LiveKitAPI, room: str) -> None:
    await client.room.create_room(api.CreateRoomRequest(name=room))


# --- Reading lk's file ---------------------------------------------------------------------------------------


def test_lks_own_file_is_read_as_lk_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "cli-config.yaml"
    path.write_text(LK_WRITTEN)
    path.chmod(0o600)
    specs, default = read_lk_file(path)
    assert default == "staging"
    assert [(s.name, s.url, s.api_key, s.api_secret.get_secret_value()) for s in specs] == [
        ("staging", "http://127.0.0.1:7880", "devkey", "secret"),
        ("on", "wss://x.livekit.cloud", "12345", "a: b"),  # yaml.v3 reads text into lk's string fields
    ]


def test_a_missing_file_is_no_projects_as_for_lk(tmp_path: Path) -> None:
    assert read_lk_file(tmp_path / "none.yaml") == ([], "")


def test_a_toml_entry_with_only_a_name_sets_the_policy_of_a_project_lk_knows(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[projects]]\nname = "prod"\nread_only = true\nprotected_kinds = ["sip"]\n')
    settings = Settings.load(config)
    known = [ProjectSpec("prod", "wss://p.livekit.cloud", "k", SecretStr("s"), "lk")]
    (spec,) = toml_projects(settings, known)
    assert spec.policy == {"read_only": True, "protected_kinds": ["SIP"]}
    assert spec.api_key == "k"


# --- Two servers, one MCP server ------------------------------------------------------------------------------


async def test_the_same_tool_shows_each_projects_own_rooms(
    in_process: InProcess,
    tmp_path: Path,
    both: dict[str, LiveKitTarget],
    lkapi: api.LiveKitAPI,
    real_lkapi: api.LiveKitAPI,
    rooms: Callable[[str], str],
) -> None:
    on_real, on_sandbox = rooms("real"), rooms("sandbox")
    await make_room(real_lkapi, on_real)
    await make_room(lkapi, on_sandbox)
    lk_file(tmp_path, both, default="real")
    async with Client(in_process(env=env_of(tmp_path))) as client:
        listed = await ok(client, "list_projects")
        real = await ok(client, "list_rooms", project="real", limit=500)
        sandbox = await ok(client, "list_rooms", project="sandbox", limit=500)
        default = await ok(client, "list_rooms", limit=500)
        unknown = await fails(client, "list_rooms", project="staging")
        resource = await client.read_resource("livekit://projects/sandbox/rooms")
        history = await ok(client, "room_history", project="sandbox", room=on_sandbox)
        projects_text = text(await client.call_tool("list_projects", {}))
    assert listed == {
        "projects": [
            {"name": "real", "url": both["real"].url, "default": True, "read_only": False},
            {"name": "sandbox", "url": both["sandbox"].url, "default": False, "read_only": False},
        ]
    }
    for secret in (SECRET, both["real"].api_secret):
        assert secret not in json.dumps(listed) + projects_text
    real_names = {r["name"] for r in real["rooms"]}
    sandbox_names = {r["name"] for r in sandbox["rooms"]}
    assert on_real in real_names
    assert on_real not in sandbox_names
    assert on_sandbox in sandbox_names
    assert on_sandbox not in real_names
    assert {r["name"] for r in default["rooms"]} == real_names
    assert "no project 'staging'" in unknown
    assert "'real', 'sandbox'" in unknown
    assert on_sandbox in getattr(resource.contents[0], "text", "")
    assert history["history"] == "off"
    assert "default project only" in history["note"]


async def test_a_read_only_project_refuses_changes_while_the_other_makes_them(
    in_process: InProcess,
    tmp_path: Path,
    both: dict[str, LiveKitTarget],
    lkapi: api.LiveKitAPI,
    real_lkapi: api.LiveKitAPI,
    rooms: Callable[[str], str],
) -> None:
    kept, made = rooms("real"), rooms("sandbox")
    await make_room(real_lkapi, kept)
    # `real` from lk's file, made read-only by our config; `sandbox` declared in our config, its secret by reference.
    lk_file(tmp_path, {"real": both["real"]}, default="real")
    config = tmp_path / "livekit-mcp.toml"
    sandbox = both["sandbox"]
    config.write_text(
        '[[projects]]\nname = "real"\nread_only = true\n\n'
        f'[[projects]]\nname = "sandbox"\nurl = "{sandbox.url}"\napi_key = "{sandbox.api_key}"\n'
        'api_secret_env = "SANDBOX_LIVEKIT_SECRET"\n'
    )
    audit = tmp_path / "audit.jsonl"
    env = env_of(tmp_path, SANDBOX_LIVEKIT_SECRET=sandbox.api_secret, LIVEKIT_MCP_AUDIT_LOG=str(audit))
    async with Client(in_process(env=env, config=config)) as client:
        listed = await ok(client, "list_projects")
        refused = await fails(client, "delete_room", project="real", room=kept)
        created = await ok(client, "create_room", project="sandbox", room=made)
    assert [(p["name"], p["read_only"]) for p in listed["projects"]] == [("real", True), ("sandbox", False)]
    assert "project 'real': refused by policy (read_only)" in refused
    assert created["room"]["name"] == made
    assert kept in await room_names(real_lkapi)
    assert made in await room_names(lkapi)
    assert made not in await room_names(real_lkapi)
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["project"], line["tool"], line["outcome"]) for line in lines if line["outcome"] != "attempted"] == [
        ("real", "delete_room", "refused by policy"),
        ("sandbox", "create_room", "done"),
    ]
    assert sandbox.api_secret not in audit.read_text()


async def test_a_confirm_token_from_one_project_is_refused_on_the_other(
    in_process: InProcess,
    tmp_path: Path,
    both: dict[str, LiveKitTarget],
    lkapi: api.LiveKitAPI,
    real_lkapi: api.LiveKitAPI,
    rooms: Callable[[str], str],
) -> None:
    room = rooms("both")
    await make_room(real_lkapi, room)
    await make_room(lkapi, room)
    lk_file(tmp_path, both, default="real")
    async with Client(in_process(env=env_of(tmp_path, LIVEKIT_MCP_CONFIRM="auto"))) as client:
        asked = await client.call_tool("delete_room", {"project": "sandbox", "room": room})
        assert isinstance(asked.structured_content, dict)
        token = asked.structured_content["confirm_token"]
        elsewhere = await fails(client, "delete_room", project="real", room=room, confirm_token=token)
        assert room in await room_names(real_lkapi)
        assert room in await room_names(lkapi)
        done = await ok(client, "delete_room", project="sandbox", room=room, confirm_token=token)
    assert "[project sandbox]" in text(asked)
    assert "issued for another project" in elsewhere
    assert done["outcome"] == "done"
    assert room not in await room_names(lkapi)
    assert room in await room_names(real_lkapi)


async def test_replicas_sharing_a_store_keep_a_destructive_budget_per_project(
    in_process: InProcess,
    tmp_path: Path,
    both: dict[str, LiveKitTarget],
    lkapi: api.LiveKitAPI,
    real_lkapi: api.LiveKitAPI,
    rooms: Callable[[str], str],
) -> None:
    first, second, on_real = rooms("sandbox"), rooms("sandbox"), rooms("real")
    for client, room in ((lkapi, first), (lkapi, second), (real_lkapi, on_real)):
        await make_room(client, room)
    lk_file(tmp_path, both, default="real")
    env = env_of(
        tmp_path, LIVEKIT_MCP_STORE=str(tmp_path / "shared.sqlite3"), LIVEKIT_MCP_MAX_DESTRUCTIVE_PER_MINUTE="1"
    )
    async with Client(in_process(env=env)) as one, Client(in_process(env=env)) as other:
        await ok(one, "delete_room", project="sandbox", room=first)
        elsewhere = await ok(other, "delete_room", project="real", room=on_real)  # its own budget
        refused = await fails(other, "delete_room", project="sandbox", room=second)
    assert elsewhere["outcome"] == "done"
    assert "project 'sandbox': refused by policy (max_destructive_per_minute)" in refused
    assert "across the replicas" in refused
    assert second in await room_names(lkapi)
    assert first not in await room_names(lkapi)
    assert on_real not in await room_names(real_lkapi)


async def test_a_project_that_does_not_answer_neither_holds_up_nor_breaks_the_other(
    in_process: InProcess,
    tmp_path: Path,
    both: dict[str, LiveKitTarget],
    real_lkapi: api.LiveKitAPI,
    rooms: Callable[[str], str],
) -> None:
    room = rooms("real")
    await make_room(real_lkapi, room)
    arrived, release = anyio.Event(), anyio.Event()

    async def stuck(_: web.Request) -> web.Response:
        arrived.set()
        await release.wait()  # until the other project has answered: its call cannot have waited on this one
        return web.Response(status=503, text="down for maintenance")

    finished: list[str] = []
    async with impostor_livekit(stuck) as down_url:
        # A secret of 32 bytes at least: a shorter one makes PyJWT warn, an error under pytest.
        projects = {**both, "down": LiveKitTarget(down_url, "downkey", "down-secret-0123456789-0123456789abcdef")}
        lk_file(tmp_path, projects, default="real")
        async with Client(in_process(env=env_of(tmp_path, LIVEKIT_MCP_RETRIES="0"))) as client:
            down_said: list[str] = []

            async def on_down() -> None:
                down_said.append(await fails(client, "list_rooms", project="down"))
                finished.append("down")

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(on_down)
                    await arrived.wait()
                    real = await ok(client, "list_rooms", project="real", limit=500)
                    finished.append("real")
                    release.set()
    assert finished == ["real", "down"]
    assert room in {r["name"] for r in real["rooms"]}
    assert "project 'down':" in down_said[0]


def test_check_prints_a_line_per_project(tmp_path: Path, both: dict[str, LiveKitTarget]) -> None:
    projects = {**both, "gone": LiveKitTarget(f"http://127.0.0.1:{free_port()}", "gonekey", "gone-secret-xyz")}
    lk_file(tmp_path, projects, default="sandbox")
    done = run_cli_here("check", env=env_of(tmp_path))
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert [line.split(":")[0] for line in lines] == ["real", "sandbox (default)", "gone"]
    assert "accepted" in lines[0]
    assert "accepted" in lines[1]
    assert "no answer" in lines[2]
    for secret in (SECRET, both["real"].api_secret, "gone-secret-xyz"):
        assert secret not in done.stdout + done.stderr


def test_a_project_file_others_may_read_is_warned_about_as_lk_does(tmp_path: Path, livekit: LiveKitTarget) -> None:
    path = lk_file(tmp_path, {"sandbox": livekit}, default="sandbox", mode=0o644)
    done = run_cli_here("check", env=env_of(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"config file {path} should have permissions 600" in done.stderr
    assert done.stderr.count("should have permissions") == 1


async def test_sandbox_serves_two_demo_projects(tmp_path: Path, in_process: InProcess) -> None:
    async with Client(in_process(env=env_of(tmp_path), credentials="sandbox")) as client:
        listed = await ok(client, "list_projects")
        production = await ok(client, "list_rooms", project="production")
        staging = await ok(client, "list_rooms")
    assert [(p["name"], p["default"]) for p in listed["projects"]] == [("staging", True), ("production", False)]
    assert production["total"] > 0
    assert staging["total"] > 0


async def test_an_http_token_limited_to_a_project_cannot_use_another(
    tmp_path: Path, both: dict[str, LiveKitTarget]
) -> None:
    lk_file(tmp_path, both, default="real")
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        '[[tokens]]\nprincipal = "staging-bot"\nrole = "read"\n'
        'token = "staging-bot-token-0123"\nprojects = ["sandbox"]\n'
    )
    async with (
        http_in_process(env_of(tmp_path, LIVEKIT_MCP_AUTH_FILE=str(tokens))) as server,
        server.client(bearer("staging-bot-token-0123")) as client,
    ):
        listed = await ok(client, "list_projects")
        allowed = await ok(client, "list_rooms", project="sandbox")
        refused = await fails(client, "list_rooms", project="real")
        by_default = await fails(client, "list_rooms")
        unknown = await fails(client, "list_rooms", project="prod")
    assert [p["name"] for p in listed["projects"]] == ["sandbox"]
    assert "total" in allowed
    assert "known: 'sandbox' (omit" in unknown  # the projects it may not use are not named to it
    for message in (refused, by_default):
        assert "refused by policy (projects): 'staging-bot' may use project(s) sandbox only" in message


async def test_webhooks_are_taken_signed_with_the_default_projects_key(
    tmp_path: Path, both: dict[str, LiveKitTarget]
) -> None:
    lk_file(tmp_path, both, default="sandbox")
    env = env_of(tmp_path, LIVEKIT_MCP_STORE=str(tmp_path / "history.sqlite3"))
    process, port = spawn(["webhooks", "--port", "0"], env, tmp_path / "log")
    try:
        body = webhook("room_finished", roomEndReason="ROOM_END_API_DELETE")
        url = f"http://127.0.0.1:{port}/webhooks/livekit"
        sandbox, real = both["sandbox"], both["real"]
        taken = await post(url, body, signed(body, sandbox.api_key, sandbox.api_secret))
        other = await post(url, body, signed(body, real.api_key, real.api_secret))
    finally:
        stop(process)
    assert taken.status_code == 200
    assert other.status_code == 401


# --- Bad input at start --------------------------------------------------------------------------------------


BAD_FILES = {
    "not YAML": ("projects: [\n  - name: a\n", "is not YAML lk can read"),
    "two of a name": (
        "projects:\n"
        + "".join(
            f"    - name: twin\n      url: http://127.0.0.1:7880\n      api_key: k{i}\n      api_secret: {SECRET}\n"
            for i in range(2)
        ),
        "project 'twin' (entry 2) is named twice",
    ),
    "no secret": ("projects:\n    - name: nosecret\n      url: http://h:1\n      api_key: k\n", "has no api_secret"),
    "no key": (f"projects:\n    - name: nokey\n      url: http://h:1\n      api_secret: {SECRET}\n", "has no api_key"),
    "no name": (
        f"projects:\n    - url: http://h:1\n      api_key: k\n      api_secret: {SECRET}\n",
        "entry 1 has no name",
    ),
    "a password in the url": (
        f"projects:\n    - name: pw\n      url: https://u:{SECRET}@h\n      api_key: k\n      api_secret: x\n",
        "project 'pw' (entry 1): its url must not carry a user or password",
    ),
    "an unknown default": (
        f"default_project: prod\nprojects:\n    - name: dev\n      url: http://h:1\n      api_key: k\n"
        f"      api_secret: {SECRET}\n",
        "default_project 'prod' is not one of its projects (dev)",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_project_file_stops_the_start_in_one_line_naming_file_and_entry(tmp_path: Path, case: str) -> None:
    content, said = BAD_FILES[case]
    path = tmp_path / ".livekit" / "cli-config.yaml"
    path.parent.mkdir()
    path.write_text(content)
    path.chmod(0o600)
    done = run_cli_here(env=env_of(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert str(path) in done.stderr
    assert said in done.stderr
    assert SECRET not in done.stderr


def test_an_unreadable_project_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / ".livekit" / "cli-config.yaml"
    path.mkdir(parents=True)  # a directory where the file should be: unreadable whoever runs the test (even root)
    done = run_cli_here(env=env_of(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == f"livekit-mcp: cannot read {path}: Is a directory"


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (f'name = "p"\nurl = "http://h:1"\napi_key = "k"\napi_secret = "{SECRET}"', "api_secret is never written here"),
        (
            'name = "p"\nurl = "http://h:1"\napi_key = "k"\napi_secret_env = "UNSET_VAR_XYZ"',
            "UNSET_VAR_XYZ, which is not",
        ),
        ('name = "p"\nurl = "http://h:1"\napi_secret_env = "HOME"', "[[projects]] 'p' (entry 1) has no api_key"),
        ('name = "nothere"\nread_only = true', "no project of that name"),
        ('name = "p q"', "name must be letters, digits, - and _"),
    ],
)
def test_a_bad_projects_table_stops_the_start(tmp_path: Path, entry: str, said: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[[projects]]\n{entry}\n")
    done = run_cli_here("--config", str(config), env=env_of(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert str(config) in done.stderr
    assert said in done.stderr
    assert SECRET not in done.stderr


def test_an_unknown_project_flag_lists_the_known_ones(tmp_path: Path, livekit: LiveKitTarget) -> None:
    lk_file(tmp_path, {"dev": livekit, "qa": livekit}, default="dev")
    done = run_cli_here("--project", "prod", env=env_of(tmp_path))
    assert done.returncode == 2
    assert "names 'prod', which is not a project" in done.stderr
    assert "(known: dev, qa)" in done.stderr


def test_several_projects_without_a_default_say_how_to_choose(tmp_path: Path, livekit: LiveKitTarget) -> None:
    path = lk_file(tmp_path, {"dev": livekit, "qa": livekit}, default="")
    path.write_text(path.read_text().replace("default_project: \n", ""))
    done = run_cli_here(env=env_of(tmp_path))
    assert done.returncode == 2
    assert "none is the default: `lk project set-default NAME`, or pass --project NAME" in done.stderr
    served = run_cli_here("check", "--project", "qa", env=env_of(tmp_path))
    assert served.returncode == 0, served.stdout + served.stderr
    assert "qa (default):" in served.stdout


def test_the_environment_still_makes_one_unnamed_project(tmp_path: Path, livekit: LiveKitTarget) -> None:
    done = run_cli_here("check", env=livekit.env(HOME=str(tmp_path)))
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].startswith("URL ")  # as before: two lines, no project name
