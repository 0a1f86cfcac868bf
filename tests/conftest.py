"""Fixtures shared by the server's end-to-end tests.

The LiveKit sandbox runs on a real socket in a thread of the test process. The MCP server is built in the test
process from its settings (`in_process`) and driven by the MCP SDK's own client in memory, when what is tested is
the server's behaviour (policy, confirmation, projects, audit, settings); it runs as a separate process, started
the way a user's MCP host starts it, when what is tested needs one (the command line, stdio, HTTP, signals).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest
from aiohttp import web
from livekit import api
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from starlette.applications import Starlette

from livekit_mcp import cli
from livekit_mcp.app import build_server, http_app, open_shared_store, token_verifier
from livekit_mcp.config import Settings
from livekit_mcp.sandbox import Sandbox, SandboxAdmin
from livekit_mcp.store import Store
from realkit.agents import RealAgentWorker, start_real_agent_worker
from realkit.livekit_server import KEY as REAL_KEY
from realkit.livekit_server import SECRET as REAL_SECRET
from realkit.livekit_server import RealLiveKitServer, running_real_livekit, start_real_redis
from realkit.participants import RealPeople, real_people_on
from realkit.processes import Unavailable, stop, tail

from .asgi import asgi_client

BIN = Path(sys.executable).parent
LIVEKIT_MCP = str(BIN / "livekit-mcp")
# A secret nobody would print by accident: tests look for it in every output.
SECRET = "s3cr3t-never-shown-0123456789abcdef"
MODES = ["legacy", "2026-07-28"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class LiveKitTarget:
    url: str
    api_key: str
    api_secret: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a host would give the server: almost nothing, plus the LiveKit variables."""
        return get_default_environment() | {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
            # Tools act at once unless a test is about confirmation (tests/test_guardrails.py).
            "LIVEKIT_MCP_CONFIRM": "off",
            # History in memory unless a test is about it: test servers leave nothing in the user's state directory.
            "LIVEKIT_MCP_STORE": "memory",
            **extra,
        }


@pytest.fixture(scope="session")
def livekit() -> Iterator[LiveKitTarget]:
    """A sandbox on a real port for the whole session, in its own thread and event loop."""
    loop = asyncio.new_event_loop()
    sandbox = Sandbox(keys={"devkey": SECRET}, seed=True)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sandbox.start(host="127.0.0.1", port=0))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sandbox.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="sandbox", daemon=True)
    thread.start()
    assert ready.wait(15), "the sandbox did not start"
    yield LiveKitTarget(sandbox.url, "devkey", SECRET)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(15)


@pytest.fixture
async def admin(livekit: LiveKitTarget) -> AsyncIterator[SandboxAdmin]:
    """The sandbox's admin API, on an empty sandbox: each test sets up the rooms it needs."""
    async with SandboxAdmin(livekit.url, livekit.api_key, livekit.api_secret) as client:
        await client.clear_faults()
        await client.reset(seed=False)
        yield client
        await client.clear_faults()


@pytest.fixture
async def lkapi(livekit: LiveKitTarget) -> AsyncIterator[api.LiveKitAPI]:
    """The official `livekit-api` client: how tests look at the sandbox's state after a change."""
    client = api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret)
    yield client
    await client.aclose()


async def identities(lk: api.LiveKitAPI, room: str) -> set[str]:
    response = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity for p in response.participants}


async def room_names(lk: api.LiveKitAPI) -> set[str]:
    return {r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms}


# What our servers say on stderr once they listen, with the port they were given (port 0: a free one, picked by the
# kernel at bind time, so no other process can take it between our choosing it and the server binding it).
LISTENING = re.compile(r"serving [\w ]+ over HTTP on \S+ port (\d+)|LiveKit sandbox .* on http://[^:]+:(\d+)")


def wait_for_listening(process: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> int:
    """Bounded wait until a spawned server says it listens; its port (or fail with its stderr)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (found := LISTENING.search(log.read_text(errors="replace"))) is not None:
            return int(found.group(1) or found.group(2))
        if process.poll() is not None:
            raise AssertionError(f"server exited with status {process.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"server did not say it listens within {seconds} s")


@dataclass
class Served:
    """A server process on HTTP, with what it wrote to stderr kept in a file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`livekit-mcp ARGS` to completion, with the nearly empty environment a host gives (unless `env`)."""
    return subprocess.run(
        [LIVEKIT_MCP, *args],
        env=get_default_environment() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Ran:
    """What `livekit-mcp ARGS` said and how it ended, as subprocess.CompletedProcess has it."""

    returncode: int
    stdout: str
    stderr: str


def run_cli_here(*args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> Ran:
    """`livekit-mcp ARGS` run in this process (its `main`, with exactly `env` as the environment and stdout, stderr
    and the root logger's output captured): for a command that stops before serving, as a refused setting or file
    does, at a fraction of a process's start-up. One that serves instead is a failure after `timeout`, not a hang."""
    out, err = io.StringIO(), io.StringIO()
    ended: list[int] = []
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run() -> None:
        try:
            cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
            ended.append(code if isinstance(code, int) else (0 if code is None else 1))
            if isinstance(code, str):
                print(code, file=sys.stderr)
            return
        except BaseException:  # a crash: what a process would end with, status 1 and its traceback
            traceback.print_exc()
            ended.append(1)
            return
        ended.append(0)

    root.handlers[:] = []  # so that main's logging.basicConfig writes to the captured stderr, as in a process
    try:
        with (
            environment(get_default_environment() if env is None else env),
            redirect_stdout(out),
            redirect_stderr(err),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("default")  # as a process prints them, not the test run's warnings-as-errors
            worker = threading.Thread(target=run, name=f"livekit-mcp {' '.join(args)}", daemon=True)
            worker.start()
            worker.join(timeout)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert ended, f"livekit-mcp {' '.join(args)} was still running after {timeout} s; its stderr:\n{err.getvalue()}"
    return Ran(ended[0], out.getvalue(), err.getvalue())


def spawn(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`livekit-mcp ARGS` (which should ask for port 0), once it listens; the process and its port."""
    with log.open("wb") as err:
        process = subprocess.Popen([LIVEKIT_MCP, *args], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = wait_for_listening(process, log)
    except AssertionError as exc:
        process.kill()
        raise AssertionError(f"{exc}; its stderr:\n{log.read_text(errors='replace')}") from None
    return process, port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of its own for the session (the shared store of replicas)."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = start_real_redis(tmp_path_factory.mktemp("redis") / "redis.log", processes)
    except Unavailable as exc:
        unavailable(str(exc))
    yield f"redis://127.0.0.1:{port}/0"
    stop(*processes)


@pytest.fixture(scope="session")
def serve_http(livekit: LiveKitTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Served]]:
    """Start `livekit-mcp --transport http|sse` processes against the session sandbox; all stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str, transport: str = "http", env: dict[str, str] | None = None) -> Served:
        log = tmp_path_factory.mktemp("server") / "stderr.log"
        args = ["serve", "--transport", transport, "--port", "0", *flags]
        process, port = spawn(args, env if env is not None else livekit.env(), log)
        started.append(process)
        path = "/mcp" if transport == "http" else "/sse"
        return Served(f"http://127.0.0.1:{port}{path}", process, log)

    yield start
    stop(*started)  # together: each waits out its own graceful shutdown


@pytest.fixture(scope="session")
def http_server(serve_http: Callable[..., Served]) -> Served:
    """One streamable-HTTP server for the session: most tool tests go through it (the server keeps no state)."""
    return serve_http()


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment is exactly `env` inside the block (what a spawned server would have been given)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class InProcess(Protocol):
    """`in_process(env=..., config=..., **flags)`: a server built as those settings make it."""

    def __call__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config: Path | None = None,
        clock: Callable[[], float] = time.time,
        **flags: Any,
    ) -> MCPServer[Any]: ...


@pytest.fixture
async def in_process(livekit: LiveKitTarget) -> AsyncIterator[InProcess]:
    """The MCP server built in this process, as `livekit-mcp serve` builds it for stdio: its settings read from
    `env` (the environment a host would give the process; the session sandbox's by default), the --config file
    and the command line's `flags` (keyword arguments named as the settings, e.g. `toolsets="rooms,sip"`,
    `read_only=True`), its store opened from them, confirm tokens expiring by `clock`. Drive it with
    `mcp.Client(server)`: no process, no port.

    Each client connected to it runs the server's lifespan of its own, as each stdio process does."""
    stores: list[Store] = []

    def build(
        *,
        env: Mapping[str, str] | None = None,
        config: Path | None = None,
        clock: Callable[[], float] = time.time,
        **flags: Any,
    ) -> MCPServer[Any]:
        # Settings are read from the environment when built, and the projects' files and secrets when the server
        # is built: nothing of the environment is read later.
        with environment(livekit.env() if env is None else env):
            settings = Settings.load(config, **flags)
            stores.append(open_shared_store(settings))
            return build_server(settings, store=stores[-1], clock=clock)

    yield build
    for store in stores:
        await store.aclose()


@dataclass
class InProcessHTTP:
    """The streamable HTTP app of `livekit-mcp serve --transport http`, in this process: its callers are HTTP
    callers (bearer tokens, X-On-Behalf-Of), its requests go through no socket."""

    app: Starlette
    url: str = "http://127.0.0.1:8000/mcp"

    @contextlib.asynccontextmanager
    async def client(self, headers: dict[str, str] | None = None, **options: Any) -> AsyncIterator[Client]:
        """The SDK's client over streamable HTTP to the app, sending `headers` with every request."""
        async with (
            asgi_client(self.app, headers) as http,
            Client(streamable_http_client(self.url, http_client=http), **options) as client,
        ):
            yield client


@contextlib.asynccontextmanager
async def http_in_process(
    env: Mapping[str, str], config: Path | None = None, clock: Callable[[], float] = time.time, **flags: Any
) -> AsyncIterator[InProcessHTTP]:
    """`livekit-mcp serve --transport http` built in this process from `env`, the --config file and `flags` (as
    `in_process`), with its bearer tokens, confirmations expiring by `clock`; running (its lifespan entered) inside
    the block."""
    with environment(env):
        settings = Settings.load(config, **({"transport": "http"} | flags))
        verifier = token_verifier(settings)
        store = open_shared_store(settings)
        app = http_app(build_server(settings, verifier, store, clock=clock), settings, verifier)
    try:
        async with app.router.lifespan_context(app):
            yield InProcessHTTP(app)
    finally:
        await store.aclose()


def stdio(env: dict[str, str], *args: str) -> StdioServerParameters:
    """The server as Claude Desktop would launch it."""
    return StdioServerParameters(command=LIVEKIT_MCP, args=list(args), env=env)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def call(client: Client, tool: str, **args: Any) -> CallToolResult:
    return await client.call_tool(tool, args)


async def ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await call(client, tool, **args)
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def fails(client: Client, tool: str, **args: Any) -> str:
    """Call a tool that must fail as a tool error; the message the model reads."""
    result = await call(client, tool, **args)
    assert result.is_error, f"{tool} should have failed: {text(result)}"
    return text(result)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: the 2025-11-25 handshake and the stateless 2026-07-28."""
    return str(request.param)


def no_secret(*outputs: str) -> None:
    for output in outputs:
        assert SECRET not in output


# -- the real LiveKit server and its counterparts (realkit/) -------------------------------------------


def unavailable(reason: str) -> NoReturn:
    """A real counterpart cannot run here: fail when the run requires it, skip otherwise."""
    if os.environ.get("LIVEKIT_MCP_TEST_REAL") == "required":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class WebhookRecorder:
    """A bare HTTP endpoint that keeps every webhook posted to it as sent (headers and body): what LiveKit sends,
    before any parsing of ours."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                recorder.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self, room: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """The webhooks about `room`, in the order they arrived: their headers and their JSON."""
        parsed = [(headers, json.loads(body)) for headers, body in list(self.received)]
        return [(headers, event) for headers, event in parsed if event.get("room", {}).get("name") == room]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def real_webhook_recorder() -> Iterator[WebhookRecorder]:
    """The raw webhooks of the session's real server (the reference for the sandbox's)."""
    recorder = WebhookRecorder()
    yield recorder
    recorder.close()


@dataclass
class Receiver:
    """`livekit-mcp webhooks` for the real server's webhooks, and the SQLite store it keeps them in."""

    url: str
    store: Path
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def real_webhooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """The receiver the session's real server posts its webhooks to (started first: the server is told its URL)."""
    where = tmp_path_factory.mktemp("webhooks")
    env = get_default_environment() | {
        "LIVEKIT_API_KEY": REAL_KEY,
        "LIVEKIT_API_SECRET": REAL_SECRET,
        "LIVEKIT_MCP_STORE": str(where / "history.sqlite3"),
    }
    process, port = spawn(["webhooks", "--port", "0", "--log-level", "INFO"], env, where / "stderr.log")
    yield Receiver(
        f"http://127.0.0.1:{port}/webhooks/livekit", where / "history.sqlite3", process, where / "stderr.log"
    )
    stop(process)


@pytest.fixture(scope="session")
def real_livekit(
    tmp_path_factory: pytest.TempPathFactory, real_webhooks: Receiver, real_webhook_recorder: WebhookRecorder
) -> Iterator[RealLiveKitServer]:
    """One real `livekit-server --dev` with its Redis for the session, on free loopback ports, posting its webhooks
    to `real_webhooks` and to `real_webhook_recorder`."""
    urls = [real_webhooks.url, real_webhook_recorder.url]
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_real_livekit(tmp_path_factory.mktemp("livekit-server"), urls))
        except Unavailable as exc:
            unavailable(str(exc))
        except RuntimeError as exc:  # it did not start
            pytest.fail(str(exc), pytrace=False)
        yield server


@pytest.fixture
async def real_people(real_livekit: RealLiveKitServer) -> AsyncIterator[RealPeople]:
    """Real participants (WebRTC through the `livekit` SDK), all gone at the end of the test."""
    real_livekit.check_alive()
    async with real_people_on(real_livekit) as crowd:
        yield crowd


@pytest.fixture(scope="session")
def agent_worker(
    real_livekit: RealLiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], RealAgentWorker]]:
    """A registered `livekit-agents` worker for an agent name, started once per name for the session."""
    workers: dict[str, RealAgentWorker] = {}
    logs = tmp_path_factory.mktemp("agent-workers")

    def get(agent_name: str) -> RealAgentWorker:
        if agent_name not in workers:
            workers[agent_name] = start_real_agent_worker(real_livekit, agent_name, logs)
        return workers[agent_name]

    yield get
    stop(*(worker.process for worker in workers.values()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the real server shows the last lines of its log (and of its workers')."""
    report = yield
    if report.failed and "real_livekit" in getattr(item, "fixturenames", ()):
        server = item.funcargs.get("real_livekit") if hasattr(item, "funcargs") else None
        if isinstance(server, RealLiveKitServer):
            if death := server.died():
                report.sections.append(("livekit-server", death))
            report.sections.append(("livekit-server log (last lines)", tail(server.log, 40)))
            for log in sorted(server.logs.parent.glob("agent-workers*/*.log")):
                report.sections.append((f"{log.name} (last lines)", tail(log, 20)))
    return report


# -- the MCP server against the real LiveKit server (tests/test_real_tools.py) --------------------------


@pytest.fixture(scope="session")
def real_target(real_livekit: RealLiveKitServer) -> LiveKitTarget:
    return LiveKitTarget(real_livekit.url, real_livekit.api_key, real_livekit.api_secret)


@pytest.fixture(scope="session")
def real_http(real_target: LiveKitTarget, serve_http: Callable[..., Served]) -> Served:
    """One `livekit-mcp --transport http` process against the real server for the session."""
    return serve_http(env=real_target.env())


@pytest.fixture
async def real_lkapi(real_target: LiveKitTarget) -> AsyncIterator[api.LiveKitAPI]:
    """`livekit-api` on the real server: how tests look at its state after a change."""
    client = api.LiveKitAPI(real_target.url, real_target.api_key, real_target.api_secret)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def impostor_livekit(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """Something that is not LiveKit at a loopback URL, answering every request with `handler`; yields the URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"  # the port the kernel gave
    finally:
        await runner.cleanup()


# -- the quick benchmark, beside the suite (tests/test_bench_smoke.py) -------------------------------------

QUICK_BENCH_TEST = "tests/test_bench_smoke.py::test_the_quick_benchmark_exits_0_and_prints_every_figure"


@dataclass
class QuickBench:
    """`python -m bench --quick`, started once the tests are collected: it runs its own servers (~1 minute, much of
    it waiting on them) while the rest of the suite runs; its test comes last and reads what it printed."""

    process: subprocess.Popen[bytes]
    out: tempfile.TemporaryDirectory[str]

    def finished(self, seconds: float) -> tuple[int, str, str]:
        """Its exit status, stdout and stderr, once it has ended."""
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            stop(self.process)
            raise
        folder = Path(self.out.name)
        return self.process.returncode, (folder / "stdout").read_text(), (folder / "stderr").read_text()


QUICK_BENCH = pytest.StashKey[QuickBench]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.nodeid == QUICK_BENCH_TEST]
    for item in ours:
        items.remove(item)
    items.extend(ours)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(item.nodeid == QUICK_BENCH_TEST for item in session.items):
        return
    out = tempfile.TemporaryDirectory(prefix="quick-bench-")
    folder = Path(out.name)
    with (folder / "stdout").open("wb") as stdout, (folder / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench", "--quick"],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=stdout,
            stderr=stderr,
        )
    session.config.stash[QUICK_BENCH] = QuickBench(process, out)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if (bench := session.config.stash.get(QUICK_BENCH, None)) is not None:
        stop(bench.process)  # a run cut short: nothing left behind
        bench.out.cleanup()


@pytest.fixture
def quick_bench(request: pytest.FixtureRequest) -> QuickBench:
    return request.config.stash[QUICK_BENCH]
